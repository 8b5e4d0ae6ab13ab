"""Connector credentials are encrypted at rest and never returned (issue 14)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.node._asgi import AsgiNode

SECRET = "sk-very-secret-value-123"
CONNECTOR = {"name": "c", "version": 1, "protocol": "http", "parameters": {"endpoint": "127.0.0.1"},
             "credential": {"api_key": SECRET},
             "actions": [{"action_type": "predict", "method": "POST", "url": "http://127.0.0.1:9/x",
                          "headers": {"Authorization": "Bearer ${credential.api_key}"}, "request_body": "{}"}]}


def test_connector_credentials_are_encrypted_and_never_returned(tmp_path: Path) -> None:
    n = AsgiNode(tmp_path / "data")
    n.ok("PUT", "/_cluster/settings", {"persistent": {
        "plugins.ml_commons.trusted_connector_endpoints_regex": ["^http://127\\.0\\.0\\.1:.*$"],
        "plugins.ml_commons.connector.private_ip_enabled": True}})
    cid = n.ok("POST", "/_plugins/_ml/connectors/_create", CONNECTOR)["connector_id"]
    n.ok("POST", "/_plugins/_ml/models/_register", {"name": "m", "function_name": "remote", "connector": CONNECTOR})
    assert SECRET not in n.request("GET", f"/_plugins/_ml/connectors/{cid}").text
    assert SECRET not in n.request("POST", "/_plugins/_ml/connectors/_search", {"query": {"match_all": {}}}).text
    assert SECRET not in n.request("POST", "/_plugins/_ml/models/_search", {"query": {"match_all": {}}}).text
    raw = n.request("POST", "/.plugins-ml-connector/_search", {"query": {"match_all": {}}}).text
    assert SECRET not in raw and "oskit-enc:v1:" in raw
    n.ok("PUT", f"/_plugins/_ml/connectors/{cid}", {"credential": {"api_key": SECRET + "2"}})
    # what the connector sends is the clear value (decrypted in memory for the call)
    stored = n.engine.ml._get(".plugins-ml-connector", cid)
    assert n.engine.ml.cipher.open(stored)["credential"] == {"api_key": SECRET + "2"}
    n.close()
    with sqlite3.connect(tmp_path / "data" / "node.sqlite3") as db:
        dump = "\n".join(db.iterdump())
    assert SECRET not in dump
    assert oct((tmp_path / "data" / "ml-credential.key").stat().st_mode & 0o777) == "0o600"

"""ML Commons safety (issue 14): connector credentials encrypted at rest and never returned; models redeployed at start per model_auto_redeploy."""

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


def _restart(n: AsgiNode, data: Path) -> AsgiNode:
    n.close()
    again = AsgiNode(data)
    for t in list(again.engine.ml._threads):  # the start-up redeploy runs in the background
        t.join(timeout=30)
    return again


def _deploy_tasks(n: AsgiNode, model_id: str) -> int:
    res = n.ok("POST", "/_plugins/_ml/tasks/_search", {"query": {"bool": {"filter": [
        {"term": {"model_id": model_id}}, {"term": {"task_type": "DEPLOY_MODEL"}}]}}})
    return int(res["hits"]["total"]["value"])


def test_models_are_redeployed_at_start_within_the_retry_limit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    n = AsgiNode(data)
    n.ok("PUT", "/_cluster/settings", {"persistent": {
        "plugins.ml_commons.trusted_connector_endpoints_regex": ["^http://127\\.0\\.0\\.1:.*$"],
        "plugins.ml_commons.connector.private_ip_enabled": True}})
    mid = n.ok("POST", "/_plugins/_ml/models/_register", {"name": "m", "function_name": "remote",
                                                            "connector": CONNECTOR}, params={"deploy": "true"})["model_id"]
    assert _deploy_tasks(n, mid) == 1
    n = _restart(n, data)
    model = n.ok("GET", f"/_plugins/_ml/models/{mid}")
    assert (model["model_state"], model["auto_redeploy_retry_times"], _deploy_tasks(n, mid)) == ("DEPLOYED", 0, 2)
    # lifetime_retry_times: a model whose redeploys kept failing is left alone
    n.engine.ml._update(".plugins-ml-model", mid, {"auto_redeploy_retry_times": 3})
    n = _restart(n, data)
    assert _deploy_tasks(n, mid) == 2
    n.ok("PUT", "/_cluster/settings", {"persistent": {"plugins.ml_commons.model_auto_redeploy.lifetime_retry_times": 5}})
    n = _restart(n, data)
    assert _deploy_tasks(n, mid) == 3
    n.close()

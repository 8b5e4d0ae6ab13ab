"""Credentials given in --url never reach output, plans, logs or errors (issue 17)."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from clihelp import oskit

SECRET = "S3cret-pw"


def _with_creds(url: str) -> str:
    return url.replace("http://", f"http://admin:{SECRET}@", 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_split_and_redact() -> None:
    from kit.cluster.client import redact_url, split_credentials

    assert split_credentials("https://ad%40min:p%3Aw@h.example:9200/x") == (
        "https://h.example:9200/x", "ad@min", "p:w")
    assert split_credentials("http://h:9200") == ("http://h:9200", None, None)
    assert redact_url("http://u:pw@[::1]:9200") == "http://[::1]:9200"
    assert redact_url("http://u:pw@host:notaport") == "http://host:notaport"


def test_plan_with_credentials_in_the_url_shows_them_nowhere(auth_node: object, project_dir: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    url = auth_node.url  # type: ignore[attr-defined]
    out = tmp_path / "plan.json"
    caplog.set_level(logging.DEBUG)
    res = oskit("plan", "--project", str(project_dir), "--url", _with_creds(url), "--out", str(out), "-vv")
    assert res.exit_code == 0, res.stderr
    assert f"→ {url} (" in res.stdout  # the header line names the cluster, without credentials
    res_json = oskit("plan", "--project", str(project_dir), "--url", _with_creds(url), "--json")
    assert res_json.exit_code == 0, res_json.stderr
    assert json.loads(res_json.stdout)["target"]["url"] == url
    for text in (res.stdout, res.stderr, res_json.stdout, res_json.stderr, out.read_text(), caplog.text):
        assert SECRET not in text


def test_wrong_password_in_the_url_is_refused_without_echoing_it(auth_node: object, project_dir: Path) -> None:
    url = auth_node.url  # type: ignore[attr-defined]
    res = oskit("status", "--project", str(project_dir), "--url", url.replace("http://", "http://admin:nope-pw@"))
    assert res.exit_code == 1
    assert f"the cluster at {url} refused the request for user 'admin'" in res.stderr
    assert "nope-pw" not in res.stderr + res.stdout


def test_unreachable_error_names_the_url_without_credentials(project_dir: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    res = oskit("plan", "--project", str(project_dir), "--url", _with_creds(url), "--timeout", "2")
    assert res.exit_code == 1
    assert f"cannot connect to the cluster at {url}" in res.stderr
    assert "Connection refused" in res.stderr
    assert SECRET not in res.stderr + res.stdout


def test_user_without_password_says_the_password_is_missing(project_dir: Path) -> None:
    res = oskit("status", "--project", str(project_dir), "--user", "admin")
    assert res.exit_code == 1
    assert "--user admin was given without a password" in res.stderr
    assert "OPENSEARCH_PASSWORD" in res.stderr


def test_https_against_plain_http_says_so(auth_node: object, project_dir: Path) -> None:
    url = auth_node.url  # type: ignore[attr-defined]
    tls_url = url.replace("http://", "https://")
    res = oskit("status", "--project", str(project_dir), "--url", tls_url, "--timeout", "5",
                env={"OPENSEARCH_USER": "admin", "OPENSEARCH_PASSWORD": SECRET})
    assert res.exit_code == 1
    assert f"the cluster at {tls_url} does not speak TLS: https:// was used against a plain-HTTP endpoint" in res.stderr
    assert f"use --url {url}" in res.stderr
    assert "ca-certs" not in res.stderr

"""Every --json command prints JSON on stdout, also when it fails (issue 17)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from clihelp import oskit
from provision_helpers import edit


def test_validate_json_failure_prints_the_problems(project_dir: Path) -> None:
    edit(project_dir / "models/ocr.yaml", "read_timeout: 120", "read_timeout: 120\n    zzz: 3")
    res = oskit("validate", "--project", str(project_dir), "--no-spec", "--json")
    assert res.exit_code == 1
    assert json.loads(res.stdout) == {"error": {
        "type": "ConfigError", "message": "1 problem in the project", "hint": None, "exit_code": 1,
        "problems": [{"file": "models/ocr.yaml", "path": "connector.client_config", "message": "unknown key 'zzz'",
                      "hint": "known keys: connection_timeout, max_connection, max_retry_times, read_timeout, "
                              "retry_backoff_millis, retry_backoff_policy, retry_timeout_seconds"}]}}
    assert res.stderr.startswith("error: models/ocr.yaml: connector.client_config: unknown key 'zzz'")


def test_failed_ingest_json_prints_the_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "a.png").write_bytes(b"x")
    res = oskit("ingest", str(tmp_path), "--url", f"http://127.0.0.1:{port}", "--json", "--no-progress",
                "--timeout", "2", env={"OSKIT_MODEL_SERVER_URL": "http://127.0.0.1:9"})
    assert res.exit_code == 1
    err = json.loads(res.stdout)["error"]
    assert (err["type"], err["method"], err["path"], err["status"]) == ("Unreachable", "GET", "/images", None)
    assert err["message"].startswith(f"cannot connect to the cluster at http://127.0.0.1:{port}")
    assert err["hint"] == "check --url / OPENSEARCH_URL; for the embedded node run `oskit node start`"


def test_without_json_stdout_stays_empty_on_failure(project_dir: Path) -> None:
    edit(project_dir / "models/ocr.yaml", "read_timeout: 120", "read_timeout: 120\n    zzz: 3")
    res = oskit("validate", "--project", str(project_dir), "--no-spec")
    assert res.exit_code == 1 and res.stdout == ""


def test_diff_format_json_failure_prints_json(project_dir: Path) -> None:
    res = oskit("diff", "--project", str(project_dir), "--format", "json", "--url", "http://127.0.0.1:9")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["error"]["type"] == "Unreachable"

"""`oskit status` probes each remote model's endpoint (issue 17): with the model server stopped it no
longer shows only DEPLOYED, it names the model, its endpoint and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clihelp import oskit


def test_status_names_an_unreachable_model_server(applied: Any, fresh_node: Any, project_dir: Path) -> None:
    _, serve, _ = applied
    env = {"OSKIT_MODEL_SERVER_URL": serve.url}
    res = oskit("status", "--json", "--project", str(project_dir), "--url", fresh_node.url, env=env)
    assert res.exit_code == 0, res.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(res.stdout)["resources"]}
    assert rows[("endpoint", "clip")] == {"kind": "endpoint", "name": "clip", "state": "reachable",
                                          "detail": f"{serve.url}/clip/embed"}
    assert ("endpoint", "captions") not in rows  # disabled: not called
    serve.stop()
    res = oskit("status", "--project", str(project_dir), "--url", fresh_node.url, env=env)
    assert res.exit_code == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.strip().startswith("endpoint") and " clip " in x)
    assert line.split()[:3] == ["endpoint", "clip", "unreachable"]
    assert line.endswith(f"{serve.url}/clip/embed (connection refused): start `oskit serve` or set "
                         "OSKIT_MODEL_SERVER_URL (then `oskit apply`)")
    assert "  model " in res.stdout and "DEPLOYED" in res.stdout


def test_shown_endpoints_carry_no_credentials_or_query() -> None:
    from kit.cluster.endpoints import shown_url

    assert shown_url("https://u:pw@api.example.com/v1/embed?key=SECRET") == "https://api.example.com/v1/embed?…"
    assert shown_url("http://127.0.0.1:8765/clip/embed") == "http://127.0.0.1:8765/clip/embed"

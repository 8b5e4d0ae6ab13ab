"""`oskit validate|plan|apply|diff|status|destroy`: exact output, exit codes, help, golden plans.

Goldens live in tests/golden/; regenerate them with UPDATE_GOLDENS=1 (and review the diff).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from clihelp import oskit
from provision_helpers import ROOT, edit

GOLDEN = ROOT / "tests" / "golden"
COMMANDS = ["validate", "plan", "apply", "diff", "status", "destroy"]


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDENS") == "1" or not path.exists():
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed (UPDATE_GOLDENS=1 to accept)"


def _scrub(text: str, url: str) -> str:
    text = text.replace(url, "http://NODE").replace(os.environ.get("OSKIT_MODEL_SERVER_URL", "?"), "http://SERVE")
    return re.sub(r'"fingerprint": "[0-9a-f]+"', '"fingerprint": "…"', text)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    res = oskit(command, "--help")
    assert res.exit_code == 0
    assert "Example" in res.stdout and "oskit " + command in res.stdout


def test_validate_ok_and_errors(project_dir: Path, spec_dir: Path) -> None:
    res = oskit("validate", "--project", str(project_dir), "--spec", str(spec_dir))
    assert (res.exit_code, res.stdout, res.stderr) == (
        0, "ok: project oskit is valid (10 files; 39 requests checked against the OpenSearch API spec)\n", "")
    edit(project_dir / "models/ocr.yaml", "read_timeout: 120", "read_timeout: 120\n    zzz: 3")
    edit(project_dir / "pipelines/images-search.yaml", "technique: min_max", "technique: minmax")
    res = oskit("validate", "--project", str(project_dir), "--spec", str(spec_dir))
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr == (
        "error: models/ocr.yaml: connector.client_config: unknown key 'zzz' (hint: known keys: connection_timeout, "
        "max_connection, max_retry_times, read_timeout, retry_backoff_millis, retry_backoff_policy, "
        "retry_timeout_seconds)\n")
    edit(project_dir / "models/ocr.yaml", "\n    zzz: 3", "")
    res = oskit("validate", "--project", str(project_dir), "--spec", str(spec_dir))
    assert res.exit_code == 1
    assert res.stderr.startswith("error: pipelines/images-search.yaml: request does not fit the OpenSearch API spec: "
                                 "PUT /_search/pipeline/{id}: body.phase_results_processors[0]")
    assert "minmax" in res.stderr


def test_usage_errors_exit_2_and_errors_exit_1(project_dir: Path) -> None:
    res = oskit("diff", "--exit-cod", "--project", str(project_dir))
    assert (res.exit_code, res.stderr) == (2, "Usage: oskit diff [OPTIONS]\nTry 'oskit diff --help' for help.\n\n"
                                              "Error: No such option '--exit-cod'. Did you mean '--exit-code'?\n")
    res = oskit("plan", "--project", str(project_dir), "--url", "http://127.0.0.1:9")
    assert res.exit_code == 1
    assert res.stderr == ("error: cannot connect to the cluster at http://127.0.0.1:9 ([Errno 111] Connection refused) "
                          "(GET /)\n"
                          "hint: check --url / OPENSEARCH_URL; for the embedded node run `oskit node start`\n")
    res = oskit("plan", "--project", str(project_dir / "nope"))
    assert res.exit_code == 1 and "project folder not found" in res.stderr


def test_plan_apply_diff_status_destroy(fresh_node: Any, serve_env: str, project_dir: Path) -> None:
    p, url = str(project_dir), fresh_node.url
    res = oskit("plan", "--project", p, "--url", url, "--detailed-exitcode")
    assert res.exit_code == 3
    _golden("plan-fresh.txt", _scrub(res.stdout, url))
    res = oskit("plan", "--project", p, "--url", url, "--json")
    assert res.exit_code == 0
    _golden("plan-fresh.json", _scrub(res.stdout, url))
    assert json.loads(res.stdout)["summary"] == {"create": 15, "update": 0, "replace": 0, "redeploy": 0,
                                                "reindex": 0, "destroy": 0}

    res = oskit("apply", "--project", p, "--url", url)
    assert res.exit_code == 2 and "refusing to apply without confirmation: pass --yes" in res.stderr
    res = oskit("apply", "--yes", "--project", p, "--url", url)
    assert res.exit_code == 0, res.stderr
    assert re.search(r"Applied 15 changes in \d+\.\ds\.\n$", res.stdout)
    assert "… register model clip" in res.stderr  # progress goes to stderr

    res = oskit("diff", "--exit-code", "--project", p, "--url", url)
    assert res.exit_code == 0
    edit(project_dir / "mappings/images.yaml", "index.number_of_replicas: 0", "index.number_of_replicas: 1")
    res = oskit("diff", "--exit-code", "--project", p, "--url", url)
    assert res.exit_code == 3
    _golden("diff-replicas.txt", _scrub(res.stdout, url))
    res = oskit("diff", "--exit-code", "--format", "markdown", "--project", p, "--url", url)
    assert res.exit_code == 3
    _golden("diff-replicas.md", _scrub(res.stdout, url))

    res = oskit("status", "--json", "--project", p, "--url", url)
    rows = {(r["kind"], r["name"]): r["state"] for r in json.loads(res.stdout)["resources"]}
    assert rows[("model", "clip")] == "DEPLOYED" and rows[("model", "captions")] == "disabled"
    assert rows[("index", "images")] == "present"

    res = oskit("destroy", "--yes", "--project", p, "--url", url)
    assert res.exit_code == 0, res.stderr
    assert "-   destroy   index" in res.stdout
    res = oskit("status", "--project", p, "--url", url)
    assert "  index            images         missing" in res.stdout


def test_saved_plan_is_applied_only_while_it_still_holds(fresh_node: Any, serve_env: str, project_dir: Path,
                                                          tmp_path: Path) -> None:
    p, url, saved = str(project_dir), fresh_node.url, str(tmp_path / "plan.json")
    assert oskit("plan", "--out", saved, "--project", p, "--url", url).exit_code == 0
    assert oskit("apply", "--yes", "--project", p, "--url", url).exit_code == 0  # someone applied meanwhile
    res = oskit("apply", "--plan", saved, "--project", p, "--url", url)
    assert res.exit_code == 1
    assert res.stderr == (f"error: the saved plan {saved} no longer matches the cluster and the project\n"
                          "hint: run oskit plan --out again and review it\n")
    edit(project_dir / "mappings/images.yaml", "index.number_of_replicas: 0", "index.number_of_replicas: 1")
    assert oskit("plan", "--out", saved, "--project", p, "--url", url).exit_code == 0
    res = oskit("apply", "--plan", saved, "--json", "--project", p, "--url", url)
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["result"]["applied"] == [{"action": "update", "kind": "index", "name": "images"}]
    assert "sup3r" not in Path(saved).read_text()

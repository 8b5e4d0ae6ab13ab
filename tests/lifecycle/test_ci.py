"""The GitHub Actions example (docs/github-actions/oskit.yml): its own commands, run against the node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from lifeserve import LifeServe

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "github-actions" / "oskit.yml"


def run_workflow(project_dir: Path, url: str, tmp_path: Path) -> tuple[int, list[str], str]:
    """Run the job's steps as Actions would (``run:`` in bash -e, ``if:`` on the diff's output); skip what
    needs GitHub (``pip install``, ``gh``, ``uses:``). Returns (job exit code, steps run, step summary)."""
    job = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["oskit"]
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    summary.write_text(""), output.write_text("")
    env = dict(os.environ, OPENSEARCH_URL=url, GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(output),
               PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("OPENSEARCH_USER", None)
    ran: list[str] = []
    for step in job["steps"]:
        script = step.get("run")
        if script is None or script.startswith("pip install") or "gh pr comment" in script:
            continue
        cond = step.get("if")
        if cond == "steps.diff.outputs.exit_code == '3'":
            outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
            if outputs.get("exit_code") != "3":
                continue
        elif cond not in (None, "always()"):
            raise AssertionError(f"the test does not know the condition {cond!r}")
        ran.append(step["name"])
        proc = subprocess.run(["bash", "-e", "-c", script], cwd=project_dir, env=env, capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            return proc.returncode, ran, summary.read_text() + proc.stderr
    return 0, ran, summary.read_text()


def test_the_workflow_passes_when_in_sync(applied: Any, project_dir: Path, tmp_path: Path) -> None:
    code, ran, summary = run_workflow(project_dir, applied.url, tmp_path)
    assert code == 0, summary
    assert ran == ["Validate (offline)", "Pipeline contract tests", "Drift"]
    assert "No drift: the cluster matches the project." in summary
    assert (project_dir / "oskit-test.xml").read_text().startswith("<?xml")


def test_a_pipeline_recreated_by_hand_is_drift_not_an_error(applied: Any, project_dir: Path, tmp_path: Path) -> None:
    body = applied.request("GET", "/_search/pipeline/images-search")["images-search"]
    applied.request("DELETE", "/_search/pipeline/images-search")
    body["description"] = "recreated by hand in Dev Tools"
    applied.request("PUT", "/_search/pipeline/images-search", body=body)
    code, ran, summary = run_workflow(project_dir, applied.url, tmp_path)
    assert code == 3, summary
    assert ran[-1] == "Fail on drift"
    assert "| `?` | unmanaged | search-pipeline | `images-search` | exists without oskit's marker" in summary
    assert (project_dir / "oskit-diff.md").read_text() == summary


def test_swapped_model_weights_fail_the_job_naming_the_model(applied: Any, project_dir: Path, tmp_path: Path,
                                                             life: LifeServe) -> None:
    life.variant = "colour-v2"
    code, _, summary = run_workflow(project_dir, applied.url, tmp_path)
    assert code == 3, summary
    assert "| `!` | reindex | index | `images` | model clip's outputs no longer match" in summary

"""Switching CLIP is the one line ``open_clip:`` in models/clip.yaml: `oskit plan` (read-only, no model
loaded) labels the model `redeploy` and the index `reindex`, the dimension follows the architecture,
and the model's probe refuses a server that still answers at the old width. (The same switch with
real checkpoints, served, ingested and searched: tests/job/test_job_clip_switch.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clihelp import oskit
from provision_helpers import edit

LINE = "open_clip: {model: oskit-clip-tiny, pretrained: weights/oskit-clip-tiny.pt}"


def _rows(stdout: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] in ("create", "update", "replace", "redeploy", "reindex", "destroy"):
            rows.append((parts[1], parts[2], parts[3]))
    return rows


def test_plan_labels_a_clip_switch_redeploy_and_reindex(fresh_node: Any, serve_env: str, project_dir: Path,
                                                        tmp_path: Path) -> None:
    p, url = str(project_dir), fresh_node.url
    assert oskit("apply", "--yes", "--project", p, "--url", url).exit_code == 0
    assert oskit("plan", "--project", p, "--url", url, "--detailed-exitcode").exit_code == 0

    ckpt = tmp_path / "vit-b-32.pt"
    ckpt.write_bytes(b"weights a plan never loads")
    edit(project_dir / "models" / "clip.yaml", LINE, f"open_clip: {{model: ViT-B-32, pretrained: {ckpt}}}")
    assert oskit("validate", "--project", p).exit_code == 0
    res = oskit("plan", "--project", p, "--url", url, "--detailed-exitcode")
    assert res.exit_code == 3, res.stdout + res.stderr
    assert _rows(res.stdout) == [("redeploy", "model", "clip"), ("reindex", "index", "images")]
    assert "the served weights changed (oskit-clip-tiny weights/oskit-clip-tiny.pt → ViT-B-32 vit-b-32.pt sha256:" \
        in res.stdout
    # same width (512), other weights: the vectors cannot be mixed, so the index is recreated
    assert "mappings._meta.oskit.vectors.image_embedding cannot change in place" in res.stdout
    res = oskit("apply", "--yes", "--project", p, "--url", url)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert oskit("plan", "--project", p, "--url", url, "--detailed-exitcode").exit_code == 0

    # another width: the dimension follows the architecture (ViT-S-32: 384)
    edit(project_dir / "models" / "clip.yaml", f"{{model: ViT-B-32, pretrained: {ckpt}}}",
         f"{{model: ViT-S-32, pretrained: {ckpt}}}")
    res = oskit("plan", "--project", p, "--url", url, "--json")
    changes = {(c["action"], c["kind"], c["name"]): c for c in __import__("json").loads(res.stdout)["changes"]}
    assert set(changes) == {("redeploy", "model", "clip"), ("reindex", "index", "images")}
    dims = [d for d in changes[("reindex", "index", "images")]["details"]
            if d["path"] == "mappings.properties.image_embedding.dimension"]
    assert dims and (dims[0]["live"], dims[0]["desired"]) in (("512", "384"), (512, 384))
    # the fake server still answers 512-d: the redeploy's probe says so instead of reporting success
    res = oskit("apply", "--yes", "--project", p, "--url", url)
    assert res.exit_code == 1 and "returned a 512-d vector; its spec says 384" in res.stderr


def test_a_dimension_that_contradicts_the_architecture_is_a_config_error(project_dir: Path) -> None:
    edit(project_dir / "models" / "clip.yaml", "modality: image+text\n", "modality: image+text\ndimension: 768\n")
    res = oskit("validate", "--project", str(project_dir))
    assert res.exit_code == 1
    assert "models/clip.yaml" in res.stderr and "dimension 768 does not match serve.open_clip.model " \
        "oskit-clip-tiny (512-d)" in res.stderr

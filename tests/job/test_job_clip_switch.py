"""Real CLIP is one line: standard open_clip architectures, loaded from checkpoint files this test
writes (random weights, saved with torch.save), replace the offline CLIP by editing only
``open_clip:`` in models/clip.yaml. validate, plan (model redeploy, index reindex), apply, ingest,
search and similar then work at the new width. Slow (minutes): ViT-B-32 on CPU."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT

ARCHS = [("ViT-B-32", 512), ("ViT-S-32", 384)]  # the real CLIP's shape, and another width
LINE = "  open_clip: {model: oskit-clip-tiny, pretrained: weights/oskit-clip-tiny.pt}\n"


def _copy_project(dst: Path) -> Path:
    for name in ("models", "pipelines", "mappings", "environments"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dst / name)
    shutil.copy(ROOT / "cluster.yaml", dst / "cluster.yaml")
    return dst


def _write_checkpoint(arch: str, path: Path) -> None:
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None)
    torch.save(model.state_dict(), path)


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import os

    from kit.job.demo import start_stack, write_samples

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("OSKIT_", "OPENSEARCH_"))}
    base = tmp_path_factory.mktemp("clip-switch")
    os.environ["OSKIT_DATA_DIR"] = str(base / "oskit-data")
    os.environ["HF_HUB_OFFLINE"] = "1"
    project = _copy_project(base / "project")
    # the offline CLIP's weights stay where they are: the copied spec points at them by absolute path
    clip_yaml = project / "models" / "clip.yaml"
    text = clip_yaml.read_text()
    assert text.count(LINE) == 1, "models/clip.yaml no longer has the one open_clip line this test edits"
    clip_yaml.write_text(text.replace(LINE, LINE.replace("weights/", f"{ROOT}/models/weights/")))
    try:
        stack = start_stack(project, base / "stack", device="cpu")
    finally:
        os.environ.update(saved)
    samples = write_samples(base / "samples", 6, seed=11)
    yield {"stack": stack, "project": project, "base": base, "samples": samples, "clip_yaml": clip_yaml}
    stack.stop()


def _restart_model_server(stack: Any, project: Path) -> None:
    """The model server again, on the same port (the connectors' URL), with the edited specs."""
    from urllib.parse import urlparse

    from kit.job.demo import ServerThread, _wait_healthy
    from kit.serve.app import create_app
    from kit.serve.config import load_serve_config

    port = urlparse(stack.model_server_url).port
    stack.model_server.stop()
    stack.model_server = ServerThread(create_app(load_serve_config(project / "models", device="cpu")),
                                      port=port, name="model server")
    stack.model_server.start(timeout=600)
    _wait_healthy(stack.model_server_url, 600)


@pytest.mark.timeout(1800)
def test_one_line_switch_to_standard_open_clip(switch: dict[str, Any]) -> None:
    import httpx

    from kit.cluster.apply import apply
    from kit.cluster.plan import plan
    from kit.config import load_project
    from kit.job.ingest import ingest
    from kit.job.search import search
    from kit.job.similar import similar

    stack, project, base = switch["stack"], switch["project"], switch["base"]
    images = switch["samples"] / "images"
    env = {"OSKIT_MODEL_SERVER_URL": stack.model_server_url}
    assert ingest(stack.client, [images], index="images").failed == 0
    previous = "oskit-clip-tiny"
    for arch, dim in ARCHS:
        ckpt = base / f"{arch}.pt"
        _write_checkpoint(arch, ckpt)
        text = switch["clip_yaml"].read_text()
        old = next(line for line in text.splitlines(keepends=True) if line.startswith("  open_clip:"))
        new = f"  open_clip: {{model: {arch}, pretrained: {ckpt}}}\n"
        switch["clip_yaml"].write_text(text.replace(old, new))  # the one line

        loaded = load_project(project)  # validate: the dimension follows the architecture
        assert loaded.models["clip"].dimension == dim
        _restart_model_server(stack, project)
        health = httpx.get(f"{stack.model_server_url}/health").json()
        assert health["models"]["clip"]["model"] == arch and health["models"]["clip"]["dimension"] == dim
        assert "tags" in health["models"]  # tags follow the clip spec's CLIP

        p = plan(loaded, stack.client, environ=env)
        changes = {(c.action, c.kind, c.name) for c in p.changes}
        assert ("redeploy", "model", "clip") in changes, p.changes
        assert ("reindex", "index", "images") in changes, p.changes
        model_change = next(c for c in p.changes if c.kind == "model" and c.name == "clip")
        assert previous in model_change.reason and arch in model_change.reason
        assert not [c for c in p.changes if c.kind in ("connector", "ingest-pipeline", "search-pipeline")
                    or (c.kind == "model" and c.name != "clip")], p.changes
        apply(p, stack.client, allow_destroy=True)  # a reindex of an index with documents is destructive
        assert plan(load_project(project), stack.client, environ=env).changes == []

        result = ingest(stack.client, [images], index="images")
        assert result.failed == 0 and result.indexed == 6
        [mapping] = [v["mappings"] for v in stack.client.request("GET", "/images/_mapping").values()]  # images-vN behind the alias
        assert mapping["properties"]["image_embedding"]["dimension"] == dim
        assert arch in mapping["_meta"]["oskit"]["vectors"]["image_embedding"]
        hits = search(stack.client, "a red circle", k=3).hits
        assert len(hits) == 3
        first = sorted(images.iterdir())[0]
        same = similar(stack.client, first, k=3)
        assert same.hits[0].source["file_name"] == first.name and same.hits[0].label == "identical"
        assert same.hits[0].hash_distance == {"phash": 0, "colour": 0, "direct": 0}
        previous = arch

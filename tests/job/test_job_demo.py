"""`oskit demo`'s steps against the session stack: samples + a user folder, searches, evaluation, page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_demo_runs_every_step(stack: Any, tmp_path: Path) -> None:
    from kit.job.demo import run_demo

    extra = tmp_path / "mine"
    extra.mkdir()
    Image.new("RGB", (90, 70), "orange").save(extra / "orange.jpg")
    (extra / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    events: list[tuple[str, dict[str, Any]]] = []
    summary = run_demo(project_dir=ROOT, images=[extra], n_images=8, serve=False, port=0, data_dir=tmp_path / "d",
                       events=lambda kind, data: events.append((kind, data)), stack=stack)
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["step", "ingest"] and kinds[-1] == "ready"
    assert any("trained only on generated pictures" in d["message"] for k, d in events if k == "step")
    samples, mine = (d["result"] for k, d in events if k == "ingest")
    assert (samples.indexed + samples.skipped, samples.failed) == (8, 0)
    assert (mine.indexed + mine.skipped, mine.failed) == (1, 1)
    assert mine.failures[0].file.endswith("broken.png")
    titles = [d["title"] for k, d in events if k == "search"]
    assert any(t.startswith("text in the image") for t in titles)
    assert any(t.startswith("phone photo of") for t in titles)
    assert all(d["result"].hits for k, d in events if k == "search" and not d["title"].startswith("tags"))
    report = next(d["report"] for k, d in events if k == "eval")
    from kit.job.search import PromptTemplates

    recorded = PromptTemplates.for_project(ROOT)  # oskit eval --choose-templates' choice: compared with none
    baselines = {"vector (no template)", "hybrid (no template)"} if (recorded.word or recorded.phrase) else set()
    assert {r.config for r in report.rows} == {"tags", "vector", "hybrid"} | baselines
    image = report.row("vector", "image")
    assert image is not None and image.queries == 4  # max(4, n_images // 4) phone photos
    assert report.row("tags", "image") is None  # photo queries are vector-only
    assert report.row("tags", "text+ocr").queries == report.row("hybrid", "text+ocr").queries
    for row in report.rows:
        assert all(0.0 <= v <= 1.0 for v in row.metrics.values())
    # the page was up while the demo ran and is stopped afterwards (serve=False)
    assert summary["url"].startswith("http://127.0.0.1:")
    with pytest.raises(httpx.HTTPError):
        httpx.get(summary["url"], timeout=2.0)
    assert stack.client.request("GET", "/_cluster/health")["status"] in ("green", "yellow")

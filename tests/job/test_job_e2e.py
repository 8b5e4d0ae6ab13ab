"""The main job against the real embedded node + model server: ingest, search, similar, eval (library and CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from kit.cli import cli
from kit.errors import KitError
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _cli(stack: Any, *args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--url", stack.node_url], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, (SystemExit, KitError)):
        raise result.exception
    return result


def _oskit(stack: Any, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point (exact stderr and exit codes)."""
    return subprocess.run([sys.executable, "-c", "from kit.cli import main; main()", *args, "--url", stack.node_url],
                          capture_output=True, text=True, cwd=cwd or ROOT, timeout=300)


def _stems(hits: Any) -> list[str]:
    return [Path(h.source["file_name"]).stem for h in hits]


# ---------------------------------------------------------------------------------------------- ingest


def test_ingest_indexes_documents_as_the_contract_says(stack: Any, samples: Any, indexed: Any) -> None:
    assert indexed.indexed == len(list((samples.base_dir / "images").iterdir()))
    some = next((samples.base_dir / "images").iterdir())
    import hashlib

    doc_id = hashlib.sha256(some.read_bytes()).hexdigest()
    doc = stack.client.request("GET", f"/images/_doc/{doc_id}")
    src = doc["_source"]
    assert doc["found"] and "image" not in src  # removed by the pipeline's last processor
    assert src["file_name"] == some.name and src["sha256"] == doc_id and src["format"] == "png"
    assert src["metadata"]["id"] == some.stem  # joined from metadata.jsonl
    assert len(src["image_embedding"]) == 512
    assert isinstance(src["tags"], list) and src["thumbnail"]


def test_rerun_skips_everything(stack: Any, samples: Any, indexed: Any) -> None:
    from kit.job.evaluate import ingest_eval_set

    again = ingest_eval_set(stack.client, samples, index="images")
    assert (again.indexed, again.skipped, again.failed) == (0, indexed.indexed, 0)


def test_corrupt_files_fail_alone(stack: Any, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = []
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        p = folder / f"good{i}.{['png', 'jpg', 'webp', 'bmp'][i]}"
        Image.new("RGB", (80 + i, 60), colour).save(p)
        good.append(p)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not a png at all")
    (folder / "truncated.jpg").write_bytes(good[1].read_bytes()[:200])
    big = folder / "huge.png"
    Image.effect_noise((700, 700), 64).convert("RGB").save(big)
    report = tmp_path / "errors.jsonl"
    r = _cli(stack, "ingest", str(folder), "--report", str(report), "--no-progress", "--batch", "3",
             "--max-bytes", str(big.stat().st_size - 1))
    assert r.exit_code == 1
    assert "8 files: 4 indexed, 0 already indexed, 4 failed" in r.stderr
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    reasons = {Path(x["file"]).name: x["reason"] for x in lines}
    assert set(reasons) == {"empty.jpg", "text.png", "truncated.jpg", "huge.png"}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["text.png"] == "not an image (unrecognised format)"
    assert reasons["truncated.jpg"].startswith("corrupt image")
    assert reasons["huge.png"].startswith("file too large")
    import hashlib

    ids = [hashlib.sha256(p.read_bytes()).hexdigest() for p in good]
    got = stack.client.request("POST", "/images/_mget", body={"ids": ids}, params={"_source": "false"})
    assert all(d["found"] for d in got["docs"])


def test_ingest_of_a_missing_index_is_a_clear_error(stack: Any, tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    p = _oskit(stack, "ingest", str(tmp_path), "--index", "nope", "--no-progress")
    assert p.returncode == 1
    assert p.stderr.startswith("error: index 'nope' does not exist\nhint: create it first")


# ---------------------------------------------------------------------------------------------- search


def test_text_search_modes(stack: Any, samples: Any, indexed: Any) -> None:
    from kit.job.search import search

    cap = next(q for q in samples.queries if q.kind == "caption")
    vec = search(stack.client, cap.text, k=5)
    assert len(vec.hits) == 5 and all(0 < h.score <= 1 for h in vec.hits)
    assert all("image_embedding" not in h.source and "thumbnail" not in h.source for h in vec.hits)
    word = next(q for q in samples.queries if q.kind == "word")
    tags = search(stack.client, word.text, k=30, mode="tags")
    assert tags.hits, "the tags baseline found nothing for a vocabulary word"
    hyb = search(stack.client, word.text, k=10, mode="hybrid", thumbnails=True)
    assert hyb.hits and all(h.thumbnail for h in hyb.hits)
    assert all(0 <= h.score <= 1 for h in hyb.hits)  # min_max normalised


def test_ocr_field_search_finds_the_serial(stack: Any, samples: Any, indexed: Any) -> None:
    from kit.job.search import search

    q = next(q for q in samples.queries if q.type == "ocr")
    for mode in ("vector", "hybrid"):
        hits = search(stack.client, q.text, k=5, field="ocr_text", mode=mode).hits
        assert _stems(hits)[:1] == q.relevant, (mode, q.text, [h.source.get("ocr_text") for h in hits])


def test_search_cli_json_and_html(stack: Any, samples: Any, indexed: Any, tmp_path: Path) -> None:
    html = tmp_path / "g.html"
    r = _cli(stack, "search", "red circle", "-k", "3", "--json", "--html", str(html))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["hits"]) == 3
    assert set(out["hits"][0]) == {"id", "score", "source"}
    assert not {"image", "image_embedding", "thumbnail"} & set(out["hits"][0]["source"])
    assert "file_name" in out["hits"][0]["source"] and "metadata" in out["hits"][0]["source"]
    page = html.read_text()
    assert page.count("<figure") == 3 and "data:image/jpeg;base64," in page


def test_search_cli_table(stack: Any, indexed: Any) -> None:
    r = _cli(stack, "search", "square", "-k", "2", "--filter", "format=png")
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].split() == ["rank", "score", "id", "file", "metadata"], r.stdout
    assert [ln.split()[0] for ln in lines[1:]] == ["1", "2"]
    assert all(ln.split()[3].endswith(".png") for ln in lines[1:])
    none = _cli(stack, "search", "square", "-k", "2", "--filter", "format=tiff")
    assert (none.exit_code, none.stdout) == (0, "no results\n")


# --------------------------------------------------------------------------------------------- similar


def test_phone_photo_finds_its_source(stack: Any, samples: Any, indexed: Any) -> None:
    from kit.job.similar import similar

    photos = [q for q in samples.queries if q.type == "image"]
    top1 = [_stems(similar(stack.client, q.image, k=3).hits)[:1] == q.relevant for q in photos]
    assert sum(top1) / len(top1) >= 0.75  # the full-size held-out set is measured in the report


def test_same_file_is_identical_and_cli_labels(stack: Any, samples: Any, indexed: Any) -> None:
    original = sorted((samples.base_dir / "images").iterdir())[0]
    r = _cli(stack, "similar", str(original), "-k", "3", "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    assert hits[0]["source"]["file_name"] == original.name and hits[0]["label"] == "identical"
    assert hits[0]["hash_distance"] == {"phash": 0, "colour": 0, "direct": 0}
    assert all(h.get("label") in (None, "identical", "near-identical", "similar", "unrelated") for h in hits)


def test_calibration_is_stored_with_the_index_and_labels_every_hit(stack: Any, samples: Any, indexed: Any) -> None:
    from kit.job.evaluate import calibrate_from_queries
    from kit.job.similar import META_KEY, Bands, similar

    photo = next(q for q in samples.queries if q.type == "image")
    before = similar(stack.client, photo.image, k=5)
    if not Bands.for_index(stack.client, "images").calibrated:  # the first run of the session
        assert before.notes and "not calibrated" in before.notes[0]
        assert all(h.label in (None, "identical") for h in before.hits)
    bands = calibrate_from_queries(stack.client, samples, index="images")
    bands.store(stack.client, "images")
    [meta] = [v["mappings"]["_meta"] for v in stack.client.request("GET", "/images/_mapping").values()]  # images-vN
    assert meta["oskit"]["project"] == "oskit"  # the project's own _meta is kept
    assert meta[META_KEY]["model"] == meta["oskit"]["vectors"]["image_embedding"]
    assert "oskit-clip-tiny" in meta[META_KEY]["model"]
    assert Bands.for_index(stack.client, "images") == bands
    after = similar(stack.client, photo.image, k=5)
    assert not after.notes
    assert all(h.label in ("identical", "near-identical", "similar", "unrelated") for h in after.hits)
    assert after.hits[0].label in ("identical", "near-identical")  # the photographed image


def test_similar_rejects_a_non_image(stack: Any, tmp_path: Path) -> None:
    bad = tmp_path / "x.jpg"
    bad.write_text("hello")
    p = _oskit(stack, "similar", str(bad))
    assert (p.returncode, p.stderr) == (1, "error: the query file is not an image (JPEG, PNG, WebP, GIF, BMP or TIFF)\n")


# ------------------------------------------------------------------------------------------------ eval


def test_eval_cli_thresholds_and_exit_codes(stack: Any, samples: Any, indexed: Any) -> None:
    qfile = str(samples.path)
    ok = _oskit(stack, "eval", qfile, "--mode", "vector", "-k", "10", "--fail-under", "map=0.01")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0].split() == ["queries", "config", "n", "R@1", "P@10", "R@10", "F1@10", "mAP@10"]
    assert "ok: vector text+ocr mAP@10 = " in ok.stderr
    missed = _oskit(stack, "eval", qfile, "--mode", "tags", "-k", "10", "--fail-under", "tags:map=1.01")
    assert missed.returncode == 1
    assert missed.stderr.startswith("error: relevance below threshold: tags text+ocr mAP@10 = ")
    assert missed.stderr.rstrip().endswith("(threshold 1.01)\nhint: see the table above; lower --fail-under only "
                                           "if the drop is expected")
    typo = _oskit(stack, "eval", qfile, "--fail-under", "mapp=0.5")
    assert typo.returncode == 1 and "unknown metric in threshold 'mapp=0.5'" in typo.stderr

"""Ingest without a cluster: walking, metadata join, validation, thumbnails, bulk retry logic."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kit.cluster.client import Client
from kit.errors import ClusterError, IngestError
from kit.job.ingest import (
    ImageDoc,
    bulk_index,
    discover_files,
    load_metadata,
    prepare_file,
    with_retries,
)


def _img(path: Path, fmt: str = "PNG", size: tuple[int, int] = (64, 48), colour: str = "red", mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, fmt)
    return path


def test_discover_folders_globs_and_files(tmp_path: Path) -> None:
    a = _img(tmp_path / "a" / "one.png")
    b = _img(tmp_path / "a" / "sub" / "two.JPG", "JPEG")
    _img(tmp_path / "a" / ".hidden" / "three.png")
    (tmp_path / "a" / "notes.txt").write_text("x")
    c = _img(tmp_path / "b" / "four.webp", "WEBP")
    odd = tmp_path / "odd.dat"
    odd.write_bytes(b"not an image")
    files = discover_files([tmp_path / "a", str(tmp_path / "b" / "*.webp"), odd, a])
    assert files == sorted([a, b, c, odd])


def test_discover_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file or folder: .*nothere"):
        discover_files([tmp_path / "nothere"])
    with pytest.raises(IngestError):
        discover_files([str(tmp_path / "*.png")])


def test_metadata_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "m.csv"
    csv_file.write_text("file_name,colour,year\nphotos/one.png,red,2020\ntwo.jpg,blue,2021\n")
    assert load_metadata(csv_file) == {"one.png": {"colour": "red", "year": "2020"},
                                       "two.jpg": {"colour": "blue", "year": "2021"}}
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"file": "one.png", "year": 2020, "tags": ["a"]}\n\n{"filename": "x.png", "ok": true}\n')
    assert load_metadata(jl) == {"one.png": {"year": 2020, "tags": ["a"]}, "x.png": {"ok": True}}


def test_metadata_problems_reported_together(tmp_path: Path) -> None:
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"file_name": "a.png"}\nnot json\n{"colour": "red"}\n{"file_name": "a.png"}\n[1]\n')
    with pytest.raises(IngestError) as exc:
        load_metadata(jl)
    msg = str(exc.value)
    assert "line 2: invalid JSON" in msg
    assert "line 3: no file name" in msg
    assert "line 4: file name 'a.png' appears twice" in msg
    assert "line 5: expected a JSON object" in msg
    with pytest.raises(IngestError, match="unsupported metadata format"):
        (tmp_path / "m.xml").write_text("<x/>")
        load_metadata(tmp_path / "m.xml")


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"),
                                     ("BMP", "bmp"), ("TIFF", "tif")])
def test_prepare_every_format(tmp_path: Path, fmt: str, ext: str) -> None:
    path = _img(tmp_path / f"pic.{ext}", fmt, size=(600, 300))
    doc = prepare_file(path, metadata={"k": "v"})
    data = path.read_bytes()
    assert doc.id == hashlib.sha256(data).hexdigest()
    src = doc.source
    assert base64.b64decode(src["image"]) == data
    assert (src["file_name"], src["format"], src["width"], src["height"], src["bytes"]) == \
        (f"pic.{ext}", "jpeg" if fmt == "JPEG" else fmt.lower(), 600, 300, len(data))
    assert src["metadata"] == {"k": "v"} and src["sha256"] == doc.id
    assert src["source_uri"].startswith("file://")
    thumb = Image.open(io.BytesIO(base64.b64decode(src["thumbnail"])))
    assert thumb.format == "JPEG" and thumb.size == (256, 128)


def test_thumbnail_of_transparent_and_small_images(tmp_path: Path) -> None:
    rgba = _img(tmp_path / "t.png", size=(40, 80), colour=(0, 0, 0, 0), mode="RGBA")
    thumb = Image.open(io.BytesIO(base64.b64decode(prepare_file(rgba).source["thumbnail"])))
    assert thumb.size == (40, 80)  # never upscaled
    assert thumb.getpixel((20, 40)) == pytest.approx((255, 255, 255), abs=3)  # alpha flattened on white
    pal = tmp_path / "p.png"
    im = Image.new("P", (30, 30))
    im.info["transparency"] = 0
    im.save(pal)
    assert prepare_file(pal).source["format"] == "png"


def test_exif_orientation_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (200, 100), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    path = tmp_path / "r.jpg"
    im.save(path, "JPEG", exif=exif)
    src = prepare_file(path).source
    assert (src["width"], src["height"]) == (100, 200)


def test_bad_files_raise_with_reason(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("hello, I am not a PNG")
    good = _img(tmp_path / "good.jpg", "JPEG", size=(300, 300))
    truncated = tmp_path / "trunc.jpg"
    truncated.write_bytes(good.read_bytes()[:400])
    big = _img(tmp_path / "big.png")
    pdf = tmp_path / "doc.tiff"
    pdf.write_bytes(b"%PDF-1.4\n%...")
    cases = {empty: "empty file", text: "not an image", truncated: "corrupt image",
             pdf: "not an image"}
    for path, reason in cases.items():
        with pytest.raises(ValueError, match=reason):
            prepare_file(path)
    with pytest.raises(ValueError, match=r"file too large \(\d+ bytes > limit 10\)"):
        prepare_file(big, max_bytes=10)


# ------------------------------------------------------------------ retry logic (transport-level fakes)


class _Transport:
    """Stands in for opensearch-py's Transport: answers from a script of (status, body) pairs."""

    def __init__(self, script: list[tuple[int, Any]]) -> None:
        self.script = script
        self.calls: list[tuple[str, str, Any]] = []

    def perform_request(self, method: str, path: str, params: Any = None, body: Any = None, headers: Any = None) -> Any:
        from opensearchpy.exceptions import HTTP_EXCEPTIONS, TransportError

        self.calls.append((method, path, body))
        status, payload = self.script.pop(0)
        if status >= 400:
            raise HTTP_EXCEPTIONS.get(status, TransportError)(status, "error", payload)
        return payload


class _OS:
    def __init__(self, transport: _Transport) -> None:
        self.transport = transport


def _client(script: list[tuple[int, Any]]) -> tuple[Client, _Transport]:
    t = _Transport(script)
    return Client(_OS(t), "http://fake"), t


def _docs(n: int) -> list[ImageDoc]:
    return [ImageDoc(Path(f"/x/{i}.png"), f"id{i}", {"image": "AA==", "file_name": f"{i}.png"}) for i in range(n)]


def _ok(n: int) -> dict[str, Any]:
    return {"errors": False, "items": [{"index": {"_id": f"id{i}", "status": 201}} for i in range(n)]}


def test_with_retries_backs_off_on_429_and_5xx() -> None:
    sleeps: list[float] = []
    client, t = _client([(429, {"error": "busy"}), (503, {"error": "down"}), (200, {"ok": 1})])
    out = with_retries(lambda: client.request("GET", "/"), sleep=sleeps.append, base_delay=1.0)
    assert out == {"ok": 1} and len(t.calls) == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_with_retries_gives_up_and_does_not_retry_4xx() -> None:
    client, t = _client([(429, {})] * 3)
    with pytest.raises(ClusterError) as exc:
        with_retries(lambda: client.request("GET", "/"), attempts=3, sleep=lambda s: None)
    assert exc.value.status == 429 and len(t.calls) == 3
    client, t = _client([(400, {"error": {"type": "x", "reason": "bad"}})])
    with pytest.raises(ClusterError):
        with_retries(lambda: client.request("GET", "/"), sleep=lambda s: None)
    assert len(t.calls) == 1


def test_bulk_resends_only_items_rejected_with_429() -> None:
    first = {"errors": True, "items": [
        {"index": {"_id": "id0", "status": 201}},
        {"index": {"_id": "id1", "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
        {"index": {"_id": "id2", "status": 400, "error": {"type": "illegal_argument_exception", "reason": "bad image",
                                                           "caused_by": {"type": "x", "reason": "deep"}}}},
    ]}
    client, t = _client([(502, {}), (200, first), (200, {"errors": False, "items": [{"index": {"_id": "id1", "status": 201}}]})])
    ok, failed = bulk_index(client, "images", _docs(3), sleep=lambda s: None)
    assert [d.id for d in ok] == ["id0", "id1"]
    assert [(f.file, f.reason, f.stage) for f in failed] == [
        ("/x/2.png", "illegal_argument_exception: bad image (caused by x: deep)", "bulk")]
    assert len(t.calls) == 3
    resent = t.calls[2][2].strip().split("\n")
    assert json.loads(resent[0]) == {"index": {"_index": "images", "_id": "id1"}}
    assert len(resent) == 2


def test_bulk_item_count_mismatch_is_an_error() -> None:
    client, _ = _client([(200, _ok(1))])
    with pytest.raises(IngestError, match="1 items for 2 documents"):
        bulk_index(client, "images", _docs(2), sleep=lambda s: None)

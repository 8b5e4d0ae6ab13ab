"""Ingest folders of images into an index: walk, validate, thumbnail, join metadata, ``_bulk``.

The client sends plain base64 images and fields; embedding, OCR and tags happen inside the cluster
through the index's default ingest pipeline. Each document's ``_id`` is the sha256 of the file's
bytes, so a rerun asks the cluster which ids it already has (``_mget``) and skips them.

A bad file (empty, oversize, corrupt, not an image) and a document the cluster rejects fail only
themselves: they are recorded as :class:`Failure` (and, when a report path is given, appended as one
JSON line ``{"file", "reason", "stage"}``), and everything else goes on.

    >>> from kit.cluster.client import connect
    >>> result = ingest(connect("http://127.0.0.1:9200"), ["photos/"], index="images")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import csv
import glob
import hashlib
import io
import json
import logging
import random
import struct
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from kit.cluster.endpoints import explain, is_remote_model_error
from kit.errors import ClusterError, IngestError, NotFound, Unreachable
from kit.limits import Limits

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Discovery",
    "Failure",
    "ImageDoc",
    "IngestProgress",
    "IngestResult",
    "SUPPORTED_EXTENSIONS",
    "THUMBNAIL_SIZE",
    "bulk_index",
    "transient_item",
    "discover",
    "discover_files",
    "ingest",
    "load_metadata",
    "make_thumbnail",
    "prepare_file",
    "with_retries",
]

log = logging.getLogger("kit.job.ingest")

SUPPORTED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
# Pillow format names we accept; MPO is what many phones write for JPEG.
_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
DEFAULT_MAX_BYTES = Limits().max_file_bytes  # what the model server takes by default (kit/limits.py)
THUMBNAIL_SIZE = 256
# One _bulk request stays under this many bytes of body (OpenSearch's default http.max_content_length is 100mb).
MAX_BULK_BYTES = 32 * 1024 * 1024
_METADATA_KEYS = ("file_name", "filename", "file", "name", "path")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


# --------------------------------------------------------------------------------------------- data


@dataclass
class Failure:
    """One file (or document) that could not be indexed."""

    file: str
    reason: str
    stage: str = "read"  # read | decode | bulk

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason, "stage": self.stage}


@dataclass
class ImageDoc:
    """A validated image ready to send: ``id`` is the sha256 of the file bytes."""

    path: Path
    id: str
    source: dict[str, Any]

    @property
    def size(self) -> int:
        """Approximate bytes this document adds to a _bulk body."""
        return len(self.source.get("image", "")) + len(self.source.get("thumbnail", "")) + 512


@dataclass
class IngestProgress:
    """What a progress callback receives after each batch (counts are cumulative)."""

    total: int
    done: int
    indexed: int
    skipped: int
    failed: int


@dataclass
class IngestResult:
    """Summary of one ingest run."""

    index: str
    total: int = 0
    indexed: int = 0
    skipped: int = 0  # already in the index (same content hash)
    duplicates: int = 0  # same bytes as another file in this run
    failures: list[Failure] = field(default_factory=list)
    unmatched_metadata: int = 0  # metadata rows that named no ingested file
    seconds: float = 0.0
    report: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)  # the model server's, as used for this run
    skipped_links: list[Failure] = field(default_factory=list)  # dangling symlinks and loops (stage "walk")
    hint: str | None = None  # what to do about the failures, when known (e.g. the model server is down)

    @property
    def dangling_symlinks(self) -> int:
        return sum(1 for f in self.skipped_links if f.reason.startswith("dangling symlink"))

    @property
    def symlink_loops(self) -> int:
        return sum(1 for f in self.skipped_links if f.reason.startswith("symlink loop"))

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def rate(self) -> float:
        """Indexed images per second."""
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "total": self.total, "indexed": self.indexed, "skipped": self.skipped,
            "duplicates": self.duplicates, "failed": self.failed, "unmatched_metadata": self.unmatched_metadata,
            "seconds": round(self.seconds, 3), "images_per_second": round(self.rate, 2), "report": self.report,
            "limits": self.limits, "failures": [f.to_json() for f in self.failures],
            "dangling_symlinks": self.dangling_symlinks, "symlink_loops": self.symlink_loops,
            "skipped_links": [f.to_json() for f in self.skipped_links], "hint": self.hint,
        }


# ------------------------------------------------------------------------------------------- walking


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


@dataclass
class Discovery:
    """What a walk found: image files, and links it skipped (dangling, loops) as ``stage="walk"`` records."""

    files: list[Path]
    skipped: list[Failure] = field(default_factory=list)


def discover_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand folders (recursively, supported extensions only), globs and files into a sorted list.

    Files named explicitly are kept whatever their extension (validation reports them if they are not
    images). A path that exists nowhere and matches nothing is an :class:`IngestError`. See
    :func:`discover` for the links a walk skips.
    """
    return discover(paths).files


def discover(paths: Sequence[str | Path]) -> Discovery:
    """:func:`discover_files`, also returning the symlinks skipped on the way: dangling ones and loops
    (a link to a folder above it, or one the OS cannot resolve). Symlinked folders are followed once."""
    found: dict[Path, None] = {}
    skipped: list[Failure] = []
    missing: list[str] = []
    seen_dirs: set[tuple[int, int]] = set()
    for raw in paths:
        text = str(raw)
        p = Path(text).expanduser()
        if p.is_dir():
            _walk(p, found, skipped, seen_dirs)
        elif p.is_file():
            found[p] = None
        elif p.is_symlink():
            skipped.append(_bad_link(p))
        elif _is_glob(text):
            matches = sorted(glob.glob(str(p), recursive=True))
            if not matches:
                missing.append(text)
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    _walk(mp, found, skipped, seen_dirs)
                elif mp.is_file():
                    found[mp] = None
                elif mp.is_symlink():
                    skipped.append(_bad_link(mp))
        else:
            missing.append(text)
    if missing:
        raise IngestError(f"no such file or folder: {', '.join(missing)}",
                          hint="pass folders, files or quoted globs such as 'photos/**/*.jpg'")
    return Discovery(sorted(found), skipped)


def _bad_link(path: Path) -> Failure:
    """A symlink that does not resolve: dangling, or a loop the OS gave up on (ELOOP)."""
    import errno
    import os

    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Failure(str(path), "symlink loop (too many levels of symbolic links)", "walk")
        if exc.errno == errno.ENOENT:
            return Failure(str(path), f"dangling symlink (its target {os.readlink(path)} does not exist)", "walk")
        return Failure(str(path), f"cannot follow symlink: {exc.strerror or exc}", "walk")
    return Failure(str(path), "not a file or folder", "walk")


def _walk(root: Path, found: dict[Path, None], skipped: list[Failure], seen_dirs: set[tuple[int, int]]) -> None:
    import os

    def visit(folder: Path, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Failure(str(folder), f"cannot read folder: {exc.strerror or exc}", "walk"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks
                st = entry.stat() if is_dir or entry.is_symlink() else None
            except OSError:
                skipped.append(_bad_link(path))
                continue
            if entry.is_symlink() and st is None:
                skipped.append(_bad_link(path))
                continue
            if is_dir:
                assert st is not None
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    skipped.append(Failure(str(path), f"symlink loop (it points to {os.path.realpath(path)}, a folder "
                                           "above it)", "walk"))
                    continue
                if key in seen_dirs:  # reached again through another link: its files are found once
                    continue
                seen_dirs.add(key)
                visit(path, ancestors | {key})
            elif entry.is_file() and path.suffix.lower() in SUPPORTED_EXTENSIONS:
                found[path] = None

    st = root.stat()
    key = (st.st_dev, st.st_ino)
    if key not in seen_dirs:
        seen_dirs.add(key)
        visit(root, frozenset({key}))


# ------------------------------------------------------------------------------------------ metadata


def load_metadata(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a CSV (header row) or JSONL metadata file into ``{file name: {field: value}}``.

    The join column is the first of ``file_name``, ``filename``, ``file``, ``name``, ``path``; its value
    is reduced to the base name, which is what files are joined on. CSV values stay strings; JSONL keeps
    its JSON types. Every problem (missing join column, bad JSON line, a name twice) is reported at once.
    """
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"metadata file not found: {p}")
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"{p}: cannot read metadata: {exc}") from None
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise IngestError(f"{p}: empty CSV (a header row naming a file_name column is needed)")
        for i, row in enumerate(reader, start=2):
            if None in row:
                problems.append(f"line {i}: more values than header columns")
                continue
            rows.append((i, {k: v for k, v in row.items() if k is not None}))
    elif suffix in (".jsonl", ".ndjson", ".json"):
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"line {i}: invalid JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"line {i}: expected a JSON object")
                continue
            rows.append((i, obj))
    else:
        raise IngestError(f"{p}: unsupported metadata format {suffix or '(none)'}", hint="use .csv or .jsonl")

    out: dict[str, dict[str, Any]] = {}
    for line, row in rows:
        key = next((k for k in _METADATA_KEYS if row.get(k) not in (None, "")), None)
        if key is None:
            problems.append(f"line {line}: no file name (one of the columns {', '.join(_METADATA_KEYS)})")
            continue
        name = Path(str(row[key]).replace("\\", "/")).name
        if name in out:
            problems.append(f"line {line}: file name {name!r} appears twice")
            continue
        out[name] = {k: v for k, v in row.items() if k != key}
    if problems:
        shown = "; ".join(problems[:10]) + (f"; … {len(problems) - 10} more" if len(problems) > 10 else "")
        raise IngestError(f"{p}: {shown}")
    return out


# ------------------------------------------------------------------------------------------ images


class _TooManyPixels(ValueError):
    pass


def _open_checked(data: bytes, max_pixels: int | None = None, pixels_why: str = "") -> Any:
    """Decode fully with Pillow; raises ValueError with a readable reason when the bytes are not a usable image
    (or, with ``max_pixels``, one with more pixels than the model server takes: checked before decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format
            width, height = probe.size
            if max_pixels is not None and width * height > max_pixels:
                raise _TooManyPixels(f"image is {width}x{height} = {width * height} pixels, above the limit of "
                                     f"{max_pixels}{f' ({pixels_why})' if pixels_why else ''}")
            probe.verify()  # structure check (CRC for PNG, etc.)
            img = Image.open(io.BytesIO(data))
            img.load()  # full decode: catches truncated files verify() lets through
    except _TooManyPixels:
        raise
    except UnidentifiedImageError:
        raise ValueError("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError("image has too many pixels (decompression bomb limit)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        raise ValueError(f"corrupt image: {exc}") from None
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported image format {fmt}")
    return img


def make_thumbnail(img: Any, size: int = THUMBNAIL_SIZE, quality: int = 85) -> bytes:
    """A JPEG no larger than ``size`` × ``size`` (aspect kept, EXIF orientation applied, alpha on white)."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about palette transparency; we flatten it anyway
        im = ImageOps.exif_transpose(img)
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        if im.mode in ("P", "LA", "PA", "L;A") or "transparency" in im.info:
            im = im.convert("RGBA")
        if im.mode == "RGBA":
            bg = Image.new("RGB", im.size, (255, 255, 255))
            bg.paste(im, mask=im.getchannel("A"))
            im = bg
        elif im.mode != "RGB":
            im = im.convert("RGB")
        im = im.copy()
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def prepare_file(
    path: Path,
    *,
    metadata: dict[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    thumbnail_size: int = THUMBNAIL_SIZE,
    max_pixels: int | None = None,
    bytes_why: str = "",
    pixels_why: str = "",
) -> ImageDoc:
    """Read and validate one file and build the document the cluster's pipeline expects.

    Raises ``ValueError`` with the reason when the file cannot be indexed (the caller records it).
    ``bytes_why`` / ``pixels_why`` say where ``max_bytes`` / ``max_pixels`` come from, for the reason.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise ValueError("empty file")
    if size > max_bytes:
        raise ValueError(f"file too large ({size} bytes > limit {max_bytes}{f'; {bytes_why}' if bytes_why else ''})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    img = _open_checked(data, max_pixels, pixels_why)
    fmt = _FORMATS[img.format or ""]
    from PIL import ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oriented = ImageOps.exif_transpose(img)
    width, height = oriented.size
    thumb = make_thumbnail(img, thumbnail_size)
    digest = hashlib.sha256(data).hexdigest()
    source: dict[str, Any] = {
        "image": base64.b64encode(data).decode("ascii"),
        "thumbnail": base64.b64encode(thumb).decode("ascii"),
        "file_name": path.name,
        "source_uri": path.resolve().as_uri(),
        "sha256": digest,
        "format": fmt,
        "width": width,
        "height": height,
        "bytes": size,
        "metadata": dict(metadata or {}),
    }
    return ImageDoc(path=path, id=digest, source=source)


# ---------------------------------------------------------------------------------------- retrying


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, Unreachable):
        return True
    return isinstance(exc, ClusterError) and exc.status in _RETRY_STATUSES


def with_retries(
    fn: Callable[[], Any],
    *,
    attempts: int = 6,
    base_delay: float = 0.5,
    max_delay: float = 16.0,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "request",
) -> Any:
    """Call ``fn``; on 429/5xx or a lost connection wait (exponential backoff with jitter) and try again."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except ClusterError as exc:
            if not _retryable(exc) or attempt == attempts:
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _bulk_body(index: str, docs: Sequence[ImageDoc], pipeline: str | None) -> str:
    lines: list[str] = []
    for d in docs:
        action: dict[str, Any] = {"_index": index, "_id": d.id}
        if pipeline:
            action["pipeline"] = pipeline
        lines.append(json.dumps({"index": action}))
        lines.append(json.dumps(d.source, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def _item_reason(item: dict[str, Any]) -> str:
    err = item.get("error")
    if isinstance(err, dict):
        cause = err.get("caused_by")
        reason = f"{err.get('type', 'error')}: {err.get('reason', '')}".rstrip(": ")
        if isinstance(cause, dict) and cause.get("reason") and cause.get("reason") not in reason:
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return reason
    return str(err) if err else f"status {item.get('status')}"


# A document the cluster failed because the model server behind a connector was down or overloaded:
# worth sending again (a short outage must not fail the rest of an ingest). Matched in the item's reason.
_TRANSIENT_MARKERS = ("error communicating with remote model", "connection refused", "connection reset",
                      "all connection attempts failed", "timed out", "timeout", "returned error status 502",
                      "returned error status 503", "returned error status 504", "returned error status 429")
_RETRY_ITEM_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_RETRY_FOR = 120.0


def transient_item(status: int, reason: str) -> bool:
    """Whether a ``_bulk`` item error is worth retrying: back-pressure, a gateway error, or a 500 whose
    reason says the connector could not reach (or was refused by) its remote model."""
    if status in _RETRY_ITEM_STATUSES:
        return True
    return status == 500 and any(m in reason.lower() for m in _TRANSIENT_MARKERS)


def bulk_index(
    client: Any,
    index: str,
    docs: Sequence[ImageDoc],
    *,
    pipeline: str | None = None,
    attempts: int = 6,
    base_delay: float = 0.5,
    timeout: float = 600.0,
    sleep: Callable[[float], None] = time.sleep,
    retry_for: float = DEFAULT_RETRY_FOR,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[ImageDoc], list[Failure]]:
    """Send ``docs`` with ``_bulk``; returns (indexed, failed).

    The whole request is retried on 429/5xx; items that failed for a transient reason (429, 502/503/504,
    or a 500 because the model server behind a connector refused or reset the connection — see
    :func:`transient_item`) are resent alone with exponential backoff for up to ``retry_for`` seconds,
    then reported with the time spent; any other item error fails only that document.
    """
    pending = list(docs)
    ok: list[ImageDoc] = []
    failed: list[Failure] = []
    started = clock()
    attempt = 0
    while pending:
        attempt += 1
        body = _bulk_body(index, pending, pipeline)
        resp = with_retries(
            lambda: client.request("POST", "/_bulk", body=body,
                                   params={"request_timeout": timeout},
                                   headers={"Content-Type": "application/x-ndjson"}),
            attempts=attempts, base_delay=base_delay, sleep=sleep, what=f"_bulk of {len(pending)} images",
        )
        items = resp.get("items") if isinstance(resp, dict) else None
        if not isinstance(items, list) or len(items) != len(pending):
            raise IngestError(f"_bulk answered {len(items) if isinstance(items, list) else 'no'} items "
                              f"for {len(pending)} documents")
        delay = min(16.0, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        elapsed = clock() - started
        in_budget = elapsed + delay <= retry_for
        retry: list[ImageDoc] = []
        for doc, item in zip(pending, items):
            result = next(iter(item.values())) if isinstance(item, dict) and item else {}
            status = int(result.get("status", 500))
            if 200 <= status < 300:
                ok.append(doc)
                continue
            reason = _item_reason(result)
            if transient_item(status, reason):
                if in_budget:
                    retry.append(doc)
                    continue
                reason += f" (still failing after {attempt} attempts over {elapsed:.0f}s)"
            failed.append(Failure(str(doc.path), reason, "bulk"))
        pending = retry
        if pending:
            log.warning("%d documents failed for a transient reason; resending in %.1fs", len(pending), delay)
            sleep(delay)
    return ok, failed


def existing_ids(client: Any, index: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the index already holds (one ``_mget`` without sources)."""
    if not ids:
        return set()
    resp = with_retries(lambda: client.request("POST", f"/{index}/_mget", body={"ids": list(ids)},
                                               params={"_source": "false"}), what="_mget")
    return {d["_id"] for d in resp.get("docs", []) if d.get("found")}


# ------------------------------------------------------------------------------------------ driver


def _chunks(items: Sequence[Path], n: int) -> Iterator[list[Path]]:
    for i in range(0, len(items), n):
        yield list(items[i:i + n])


def _split_by_bytes(docs: list[ImageDoc], limit: int) -> Iterable[list[ImageDoc]]:
    part: list[ImageDoc] = []
    size = 0
    for d in docs:
        if part and size + d.size > limit:
            yield part
            part, size = [], 0
        part.append(d)
        size += d.size
    if part:
        yield part


def ingest(
    client: Any,
    paths: Sequence[str | Path],
    *,
    index: str = "images",
    metadata: str | Path | dict[str, dict[str, Any]] | None = None,
    workers: int = 2,
    batch: int = 16,
    report: str | Path | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    skip_existing: bool = True,
    pipeline: str | None = None,
    max_bytes: int | None = None,
    refresh: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    limits: Limits | None = None,
    retry_for: float = DEFAULT_RETRY_FOR,
) -> IngestResult:
    """Index every image under ``paths`` into ``index``; bad files are reported, never fatal.

    ``workers`` batches run concurrently (each: read + validate + thumbnail, ``_mget``, ``_bulk``).
    ``pipeline`` overrides the index's default ingest pipeline (normally left ``None``).
    ``limits`` are the model server's (:func:`kit.limits.fetch_limits`; the defaults when ``None``): a
    file it would refuse is reported with the reason and not sent. ``max_bytes`` may only lower them.
    ``retry_for`` is the time budget (seconds) for resending documents that failed for a transient reason
    (the model server briefly down or overloaded, see :func:`bulk_index`).
    """
    if batch < 1 or workers < 1:
        raise IngestError("--batch and --workers must be at least 1")
    start = time.perf_counter()
    found = discover(paths)
    files = found.files
    meta = metadata if isinstance(metadata, dict) else (load_metadata(metadata) if metadata else {})
    try:
        client.request("GET", f"/{index}")
    except NotFound:
        raise IngestError(f"index {index!r} does not exist",
                          hint="create it first: `oskit apply` (the default project defines 'images')") from None
    from kit.cluster.fingerprint import guard_ingest

    guard_ingest(client, index)  # vectors of two models never mix in one index

    lim = limits or Limits()
    pixels_why = f"the model server's limit, from {lim.source}"
    if max_bytes is not None and max_bytes < lim.max_file_bytes:
        file_limit, bytes_why = max_bytes, "--max-bytes"
    else:
        file_limit = lim.max_file_bytes
        bytes_why = (f"the model server takes request bodies up to {lim.max_body_bytes} bytes and base64 adds a "
                     f"third, from {lim.source}")
    result = IngestResult(index=index, total=len(files), limits={**lim.to_json(), "max_file_bytes": file_limit})
    report_path = Path(report) if report else None
    if report_path:  # a stale report from an earlier run would mislead; it is recreated on the first failure
        report_path.unlink(missing_ok=True)
    lock = threading.Lock()
    seen: dict[str, Path] = {}
    done = 0
    matched: set[str] = set()

    def record(failures: list[Failure], *, walk: bool = False) -> None:
        if not failures:
            return
        (result.skipped_links if walk else result.failures).extend(failures)
        if report_path:
            report_path.parent.mkdir(parents=True, exist_ok=True)
            result.report = str(report_path)
            with report_path.open("a", encoding="utf-8") as fh:
                for f in failures:
                    fh.write(json.dumps(f.to_json()) + "\n")

    def run_batch(chunk: list[Path]) -> None:
        nonlocal done
        docs: list[ImageDoc] = []
        fails: list[Failure] = []
        dups = 0
        for path in chunk:
            row = meta.get(path.name)
            try:
                doc = prepare_file(path, metadata=row, max_bytes=file_limit, max_pixels=lim.max_image_pixels,
                                   bytes_why=bytes_why, pixels_why=pixels_why)
            except ValueError as exc:
                fails.append(Failure(str(path), str(exc), "decode" if "image" in str(exc) else "read"))
                continue
            with lock:
                if row is not None:
                    matched.add(path.name)
                first = seen.setdefault(doc.id, path)
            if first != path:
                dups += 1
                log.info("%s has the same bytes as %s; indexed once", path, first)
                continue
            docs.append(doc)
        have = existing_ids(client, index, [d.id for d in docs]) if skip_existing else set()
        todo = [d for d in docs if d.id not in have]
        indexed = 0
        for part in _split_by_bytes(todo, MAX_BULK_BYTES):
            ok, bad = bulk_index(client, index, part, pipeline=pipeline, sleep=sleep, retry_for=retry_for)
            indexed += len(ok)
            fails.extend(bad)
        with lock:
            result.indexed += indexed
            result.skipped += len(docs) - len(todo)
            result.duplicates += dups
            record(fails)
            done += len(chunk)
            snapshot = IngestProgress(result.total, done, result.indexed, result.skipped, result.failed)
        if progress:
            progress(snapshot)

    record(found.skipped, walk=True)  # in the report too: a skipped link is never silent
    if progress:
        progress(IngestProgress(result.total, 0, 0, 0, 0))
    chunks = list(_chunks(files, batch))
    if workers == 1:
        for chunk in chunks:
            run_batch(chunk)
    else:
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oskit-ingest") as pool:
            futures = [pool.submit(run_batch, c) for c in chunks]
            try:
                for fut in cf.as_completed(futures):
                    fut.result()  # a cluster-wide error (auth, unreachable after retries) stops the run
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    if refresh and result.indexed:
        with_retries(lambda: client.request("POST", f"/{index}/_refresh"), what="_refresh")
    if any(f.stage == "bulk" and is_remote_model_error(f.reason) for f in result.failures):
        result.hint = explain(client)
    result.unmatched_metadata = len(set(meta) - matched)
    result.seconds = time.perf_counter() - start
    return result

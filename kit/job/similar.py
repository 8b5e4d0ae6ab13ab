"""Similar-photo search: a ``neural`` ``query_image`` over the image vectors, each hit labelled
identical / near-identical / similar / unrelated.

Labels come from score bands (:class:`Bands`). A hit whose id is the sha256 of the query file is the
same file, so it is ``identical`` whatever its score. The bands are calibrated on the generated
evaluation set by :func:`calibrate_bands` (see docs/similar-bands.md) and kept in
``data/similar-bands.json``; without that file the built-in defaults apply.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from kit.errors import EvalError, KitError
from kit.job.search import EXCLUDED_SOURCE, SearchResult, _IndexInfo, _neural, filter_clauses, parse_filters, run_query

__all__ = [
    "BAND_LABELS",
    "Bands",
    "DEFAULT_BANDS_FILE",
    "calibrate_bands",
    "encode_query_image",
    "label_hits",
    "similar",
]

log = logging.getLogger("kit.job.similar")

BAND_LABELS = ("identical", "near-identical", "similar", "unrelated")
DEFAULT_BANDS_FILE = Path("data") / "similar-bands.json"
# Query photos larger than this are downscaled before sending: CLIP sees 224 px anyway, and a 12 MP
# phone JPEG would otherwise travel as ~16 MB of base64 per query.
_MAX_QUERY_SIDE = 1024
_MAX_QUERY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Bands:
    """Lower score bounds (OpenSearch ``_score`` for cosinesimil, i.e. (1 + cos) / 2) of each label."""

    identical: float = 0.985
    near_identical: float = 0.92
    similar: float = 0.80
    source: str = "built-in defaults"
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not (self.identical >= self.near_identical >= self.similar):
            raise KitError(f"score bands must satisfy identical ≥ near-identical ≥ similar "
                           f"(got {self.identical}, {self.near_identical}, {self.similar})")

    def label(self, score: float) -> str:
        if score >= self.identical:
            return "identical"
        if score >= self.near_identical:
            return "near-identical"
        if score >= self.similar:
            return "similar"
        return "unrelated"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Bands":
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
            return cls(identical=float(raw["identical"]), near_identical=float(raw["near_identical"]),
                       similar=float(raw["similar"]), source=str(raw.get("source", str(p))),
                       details=dict(raw.get("details") or {}))
        except FileNotFoundError:
            raise KitError(f"score bands file not found: {p}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise KitError(f"{p}: not a score bands file ({exc})",
                           hint="regenerate it: oskit eval data/eval/queries.yaml --calibrate-bands " + str(p)) from None

    @classmethod
    def default(cls, project_dir: str | Path | None = None) -> "Bands":
        """The project's calibrated bands (``data/similar-bands.json``) if present, else built-in defaults."""
        p = Path(project_dir or ".") / DEFAULT_BANDS_FILE
        return cls.load(p) if p.is_file() else cls()


def encode_query_image(data: bytes) -> str:
    """Validate a query photo and return it as base64 (downscaled to ≤ 1024 px when it is large)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise KitError("the query photo is empty")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise KitError("the query file is not an image (JPEG, PNG, WebP, GIF, BMP or TIFF)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise KitError(f"the query photo is corrupt: {exc}") from None
    if len(data) <= _MAX_QUERY_BYTES and max(img.size) <= 2 * _MAX_QUERY_SIDE:
        return base64.b64encode(data).decode("ascii")
    img = ImageOps.exif_transpose(img).convert("RGB")
    img.thumbnail((_MAX_QUERY_SIDE, _MAX_QUERY_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def label_hits(result: SearchResult, bands: Bands, query_sha256: str | None = None) -> SearchResult:
    """Set ``label`` on each hit (in place) and return the result."""
    for hit in result.hits:
        same_file = query_sha256 is not None and (hit.id == query_sha256 or hit.source.get("sha256") == query_sha256)
        hit.label = "identical" if same_file else bands.label(hit.score)
    return result


def similar(
    client: Any,
    photo: str | Path | bytes,
    *,
    index: str = "images",
    k: int = 30,
    bands: Bands | None = None,
    filters: Mapping[str, Any] | Iterable[str] | None = None,
    thumbnails: bool = False,
) -> SearchResult:
    """Find images like ``photo`` (a path or the file's bytes); hits carry a ``label``."""
    if isinstance(photo, (str, Path)):
        p = Path(photo)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise KitError(f"cannot read the query photo {p}: {exc.strerror or exc}") from None
        name = p.name
    else:
        data, name = photo, "upload"
    if k < 1 or k > 10_000:
        raise KitError(f"-k must be between 1 and 10000 (got {k})")
    b64 = encode_query_image(data)
    mapping, _ = _IndexInfo.get(client, index)
    clauses = filter_clauses(parse_filters(filters), mapping)
    excludes = list(EXCLUDED_SOURCE) + ([] if thumbnails else ["thumbnail"])
    body = {"size": k, "query": _neural("image_embedding", k, clauses, query_image=b64),
            "_source": {"excludes": excludes}}
    result = run_query(client, index, body, query_text=name, mode="similar", field="image")
    result.body = {**body, "query": {"neural": {"image_embedding": {"query_image": f"<{len(b64)} base64 chars>",
                                                                    "k": k}}}}
    return label_hits(result, bands or Bands(), hashlib.sha256(data).hexdigest())


# --------------------------------------------------------------------------------------- calibration


def _best_threshold(upper: Sequence[float], lower: Sequence[float]) -> tuple[float, float]:
    """Threshold t maximising balanced accuracy of "upper ≥ t, lower < t"; returns (t, accuracy).

    Candidates are midpoints between consecutive distinct scores; among equally good ones we take
    the middle of the widest gap, so the band edge sits as far as possible from both classes.
    """
    scores = sorted(set(upper) | set(lower))
    if not scores:
        raise EvalError("no scores to calibrate on")
    candidates = [scores[0] - 1e-6] + [(a + b) / 2 for a, b in zip(scores, scores[1:])] + [scores[-1] + 1e-6]
    gaps = [0.0] + [b - a for a, b in zip(scores, scores[1:])] + [0.0]
    best: tuple[float, float, float] | None = None  # (accuracy, gap, t)
    for t, gap in zip(candidates, gaps):
        tpr = sum(s >= t for s in upper) / len(upper) if upper else 1.0
        tnr = sum(s < t for s in lower) / len(lower) if lower else 1.0
        acc = (tpr + tnr) / 2
        if best is None or (acc, gap) > (best[0], best[1]):
            best = (acc, gap, t)
    assert best is not None
    return best[2], best[0]


def calibrate_bands(samples: Mapping[str, Sequence[float]], *, source: str = "calibrated") -> Bands:
    """Band edges from labelled scores: ``{"identical": [...], "near-identical": [...], "similar": [...],
    "unrelated": [...]}``. Each edge maximises the balanced accuracy between the two labels it separates
    (identical | near-identical, near-identical | similar, similar | unrelated); edges are then made
    monotonic. A label with no samples keeps the default edges around it.
    """
    unknown = set(samples) - set(BAND_LABELS)
    if unknown:
        raise EvalError(f"unknown band labels: {', '.join(sorted(unknown))} (known: {', '.join(BAND_LABELS)})")
    defaults = Bands()
    edges: dict[str, float] = {}
    details: dict[str, Any] = {"counts": {lab: len(samples.get(lab, ())) for lab in BAND_LABELS}}
    for upper, lower, name, default in (
        ("identical", "near-identical", "identical", defaults.identical),
        ("near-identical", "similar", "near_identical", defaults.near_identical),
        ("similar", "unrelated", "similar", defaults.similar),
    ):
        up, low = list(samples.get(upper, ())), list(samples.get(lower, ()))
        if not up or not low:
            edges[name] = default
            details[f"{name}_accuracy"] = None
            continue
        t, acc = _best_threshold(up, low)
        edges[name] = round(t, 4)
        details[f"{name}_accuracy"] = round(acc, 4)
    # a later edge may not sit above an earlier one
    near = min(edges["near_identical"], edges["identical"])
    sim = min(edges["similar"], near)
    for lab in BAND_LABELS:
        vals = sorted(samples.get(lab, ()))
        if vals:
            details[f"{lab}_scores"] = {"min": round(vals[0], 4), "median": round(vals[len(vals) // 2], 4),
                                        "max": round(vals[-1], 4)}
    return Bands(identical=edges["identical"], near_identical=near, similar=sim, source=source, details=details)


def shares_object(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    """For generated images: do two metadata records share an object (same colour and shape)?
    ``None`` when either has no ``objects`` list (not a generated image)."""
    oa, ob = a.get("objects"), b.get("objects")
    if not isinstance(oa, list) or not isinstance(ob, list):
        return None
    pa = {(o.get("colour"), o.get("shape")) for o in oa if isinstance(o, dict)}
    pb = {(o.get("colour"), o.get("shape")) for o in ob if isinstance(o, dict)}
    return bool(pa & pb)


def shares_nothing(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """No colour and no shape in common (the "unrelated" class for calibration)."""
    oa, ob = a.get("objects") or [], b.get("objects") or []
    colours_a = {o.get("colour") for o in oa if isinstance(o, dict)}
    shapes_a = {o.get("shape") for o in oa if isinstance(o, dict)}
    return not any(isinstance(o, dict) and (o.get("colour") in colours_a or o.get("shape") in shapes_a) for o in ob)


def collect_band_samples(
    client: Any,
    pairs: Sequence[tuple[bytes, bytes, str]],
    *,
    index: str = "images",
    k: int = 30,
) -> dict[str, list[float]]:
    """Labelled scores for :func:`calibrate_bands` from generated images.

    ``pairs`` holds ``(original file bytes, phone photo bytes, source file name)``. Per pair:
    the original re-encoded as JPEG (same picture, other bytes) → its score is an *identical* sample;
    the phone photo → the source's score is *near-identical*, hits sharing an object (colour + shape)
    with the source are *similar*, hits sharing no colour and no shape are *unrelated*.
    """
    from PIL import Image

    samples: dict[str, list[float]] = {lab: [] for lab in BAND_LABELS}
    for original, photo, file_name in pairs:
        img = Image.open(io.BytesIO(original)).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=95)
        same = similar(client, buf.getvalue(), index=index, k=5)
        for h in same.hits:
            if h.source.get("file_name") == file_name:
                samples["identical"].append(h.score)
        res = similar(client, photo, index=index, k=k)
        src_meta = _metadata_of(client, index, file_name, res)
        for h in res.hits:
            if h.source.get("file_name") == file_name:
                samples["near-identical"].append(h.score)
            elif src_meta is not None:
                meta = h.source.get("metadata") or {}
                if shares_object(src_meta, meta):
                    samples["similar"].append(h.score)
                elif shares_nothing(src_meta, meta):
                    samples["unrelated"].append(h.score)
    return samples


def _metadata_of(client: Any, index: str, file_name: str, result: SearchResult) -> dict[str, Any] | None:
    for h in result.hits:
        if h.source.get("file_name") == file_name:
            meta = h.source.get("metadata")
            return meta if isinstance(meta, dict) else None
    resp = client.request("POST", f"/{index}/_search",
                          body={"size": 1, "query": {"term": {"file_name": file_name}}, "_source": ["metadata"]})
    hits = (resp.get("hits") or {}).get("hits") or []
    if not hits:
        return None
    meta = (hits[0].get("_source") or {}).get("metadata")
    return meta if isinstance(meta, dict) else None

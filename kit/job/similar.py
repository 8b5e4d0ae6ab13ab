"""Similar-photo search: a ``neural`` ``query_image`` over the image vectors, each hit labelled
identical / near-identical / similar / unrelated.

"identical" and "near-identical" never rest on the CLIP score alone: they also need the perceptual
hashes (pHash and a colour hash, computed by the model server at ingest and for the query, see
:mod:`kit.serve.hashes`) to be close. "similar" is a CLIP score band. Every bound is calibrated per
index and model by :func:`calibrate_bands` (``oskit eval … --calibrate-bands``) and stored in the
index's mapping ``_meta.oskit_similar`` together with the weights it was measured with; an index
without a calibration for its current weights labels only what the hashes prove (same file, same
hashes) and leaves the rest unlabelled. See docs/similar-bands.md.
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

from kit.errors import EvalError, KitError, NotFound
from kit.cluster.state import concrete_index
from kit.job.search import EXCLUDED_SOURCE, SearchResult, _IndexInfo, _neural, filter_clauses, parse_filters, run_query

__all__ = [
    "BAND_LABELS",
    "Bands",
    "FLAT_TOLERANCE",
    "META_KEY",
    "QueryHashes",
    "calibrate_bands",
    "collect_band_samples",
    "encode_query_image",
    "hamming",
    "label_hits",
    "query_hashes",
    "shares_nothing",
    "shares_object",
    "similar",
    "similar_to_id",
    "vectors_maker",
]

log = logging.getLogger("kit.job.similar")

BAND_LABELS = ("identical", "near-identical", "similar", "unrelated")
#: two plain colour fields whose average colours differ by at most this much per channel (of 255)
#: are the same picture: JPEG and resizing move a flat colour by a few levels, an edit by more
FLAT_TOLERANCE = 6
#: where the calibration lives in the index mapping's ``_meta``
META_KEY = "oskit_similar"
# Query photos larger than this are downscaled before sending: CLIP sees 224 px anyway, and a 12 MP
# phone JPEG would otherwise travel as ~16 MB of base64 per query.
_MAX_QUERY_SIDE = 1024
_MAX_QUERY_BYTES = 2 * 1024 * 1024


def hamming(a: str | None, b: str | None) -> int | None:
    """Bits that differ between two hex hashes of one length (None when either is missing)."""
    if not a or not b or len(a) != len(b):
        return None
    try:
        return bin(int(a, 16) ^ int(b, 16)).count("1")
    except ValueError:
        return None


@dataclass(frozen=True)
class Bands:
    """Calibrated bounds: a hit is *identical* when its pHash distance ≤ ``identical_phash``, its colour
    hash distance ≤ ``identical_colour`` and its score ≥ ``identical``; *near-identical* likewise with
    the ``near_*`` bounds; else *similar* when its score (OpenSearch ``_score`` for cosinesimil,
    (1 + cos) / 2) ≥ ``similar``; else *unrelated*. ``model`` names the weights they were measured
    with (the index's ``_meta.oskit.vectors.image_embedding``). Uncalibrated (``similar`` is None):
    only the same file or equal hashes are labelled (identical); other hits get no label."""

    identical: float | None = None
    near_identical: float | None = None
    similar: float | None = None
    identical_phash: int = 0
    identical_colour: int = 0
    near_phash: int = 0
    near_colour: int = 0
    model: str | None = None
    source: str = "uncalibrated"
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        edges = [e for e in (self.identical, self.near_identical, self.similar) if e is not None]
        if edges != sorted(edges, reverse=True):
            raise KitError(f"score bands must satisfy identical ≥ near-identical ≥ similar "
                           f"(got {self.identical}, {self.near_identical}, {self.similar})")

    @property
    def calibrated(self) -> bool:
        return self.similar is not None

    def label(self, score: float, phash: int | None = None, colour: int | None = None, *,
              flat: int | bool = False, direct: int | None = None) -> str | None:
        """The label of a hit with this score and these hash distances to the query (None = no hash).
        ``phash`` is the smallest distance over the query's turns and the stored crops; ``direct``
        (default ``phash``) the distance of the query as sent, which identical needs: a turned or
        cropped copy is near-identical. ``flat``: both pictures are plain colour fields (their
        pHashes agree whatever their colour): then the colour is the picture, so they are identical
        when their average colours differ by at most :data:`FLAT_TOLERANCE` per channel (the
        ``flat`` value; ``True`` = unknown), and otherwise different pictures — never near-identical."""
        hashed = phash is not None and colour is not None
        direct = phash if direct is None else direct
        if flat is not False and hashed:
            same = flat is not True and flat <= FLAT_TOLERANCE
            if same:
                return "identical"
            if not self.calibrated:
                return None
            assert self.similar is not None
            return "similar" if score >= self.similar else "unrelated"
        if not self.calibrated:
            return "identical" if hashed and direct == 0 and colour == 0 else None
        if hashed:
            assert phash is not None and colour is not None and direct is not None
            if (self.identical is not None and score >= self.identical and direct <= self.identical_phash
                    and colour <= self.identical_colour):
                return "identical"
            if (self.near_identical is not None and score >= self.near_identical and phash <= self.near_phash
                    and colour <= self.near_colour):
                return "near-identical"
        assert self.similar is not None
        return "similar" if score >= self.similar else "unrelated"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str) -> "Bands":
        try:
            def num(key: str) -> float | None:
                return None if raw.get(key) is None else float(raw[key])

            return cls(identical=num("identical"), near_identical=num("near_identical"), similar=num("similar"),
                       identical_phash=int(raw.get("identical_phash", 0)),
                       identical_colour=int(raw.get("identical_colour", 0)),
                       near_phash=int(raw.get("near_phash", 0)), near_colour=int(raw.get("near_colour", 0)),
                       model=raw.get("model"), source=str(raw.get("source", where)),
                       details=dict(raw.get("details") or {}))
        except (ValueError, TypeError, AttributeError) as exc:
            raise KitError(f"{where}: not a similar-photo calibration ({exc})",
                           hint="recalibrate: oskit eval data/eval/queries.yaml --ingest --calibrate-bands") from None

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
        except FileNotFoundError:
            raise KitError(f"score bands file not found: {p}") from None
        except ValueError as exc:
            raise KitError(f"{p}: not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise KitError(f"{p}: not a similar-photo calibration (expected a JSON object)")
        return cls.from_json(raw, str(p))

    @classmethod
    def for_index(cls, client: Any, index: str) -> "Bands":
        """The calibration stored with ``index`` if it was made with the index's current weights."""
        meta = _index_meta(client, index)
        raw = meta.get(META_KEY)
        if not isinstance(raw, dict):
            return cls(source=f"uncalibrated: index {index!r} has no calibration for its model")
        bands = cls.from_json(raw, f"index {index!r} _meta.{META_KEY}")
        maker = ((meta.get("oskit") or {}).get("vectors") or {}).get("image_embedding")
        if maker and bands.model and maker != bands.model:
            return cls(source=f"uncalibrated: the calibration of index {index!r} was made with {bands.model}, "
                              f"its vectors now come from {maker}")
        return bands

    def store(self, client: Any, index: str) -> None:
        """Write this calibration into ``index``'s ``_meta`` (other ``_meta`` keys kept: PUT _mapping
        replaces ``_meta`` whole)."""
        meta = dict(_index_meta(client, index))
        meta[META_KEY] = self.to_json()
        client.request("PUT", f"/{index}/_mapping", body={"_meta": meta})


def _index_meta(client: Any, index: str) -> dict[str, Any]:
    try:
        resp = client.request("GET", f"/{index}/_mapping")
    except NotFound:
        raise KitError(f"index {index!r} does not exist",
                       hint="create it with `oskit apply` and load images with `oskit ingest`") from None
    body = resp.get(index) if isinstance(resp, dict) else None
    if not isinstance(body, dict):
        body = next(iter(resp.values())) if isinstance(resp, dict) and resp else {}
    meta = (body.get("mappings") or {}).get("_meta") or {}
    return meta if isinstance(meta, dict) else {}


def vectors_maker(client: Any, index: str) -> str | None:
    """Which weights made the index's image vectors (``_meta.oskit.vectors.image_embedding``)."""
    value = ((_index_meta(client, index).get("oskit") or {}).get("vectors") or {}).get("image_embedding")
    return value if isinstance(value, str) else None


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


def _flat(h: str | None) -> bool:
    """A pHash with (almost) no bits set or cleared: a picture without structure (a plain field)."""
    try:
        ones = bin(int(h or "", 16)).count("1")
    except ValueError:
        return False
    return ones <= 3 or ones >= 61


@dataclass
class QueryHashes:
    """The query's hashes (:mod:`kit.serve.hashes`): ``phash`` of the photo as sent, then its probes
    (quarter turns, small rotations, a centre crop), and its ``colour`` hash."""

    phash: list[str]
    colour: str
    mean: str = ""

    def distances(self, source: Mapping[str, Any]) -> tuple[int | None, int | None]:
        """(smallest pHash distance between a query hash and a stored one (``phash`` + ``phash_crops``),
        colour-hash distance) to an indexed document; None where it has no hashes."""
        crops = source.get("phash_crops") or []
        stored = [source.get("phash")] + (list(crops) if isinstance(crops, list) else [crops])
        found = [d for d in (hamming(p, s) for p in self.phash for s in stored) if d is not None]
        return (min(found) if found else None), hamming(self.colour, source.get("colour_hash"))

    def direct(self, source: Mapping[str, Any]) -> int | None:
        """pHash distance of the query as sent to the document as stored: no turns, no crops (an
        identical picture needs none)."""
        return hamming(self.phash[0], source.get("phash")) if self.phash else None

    def both_flat(self, source: Mapping[str, Any]) -> bool:
        return bool(self.phash) and _flat(self.phash[0]) and _flat(source.get("phash"))

    def mean_distance(self, source: Mapping[str, Any]) -> int | None:
        """The largest difference of one channel between the two average colours (0–255)."""
        other = source.get("colour_mean")
        try:
            a, b = bytes.fromhex(self.mean), bytes.fromhex(str(other))
        except ValueError:
            return None
        return max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) == 3 else None


def _hash_model(client: Any, index: str) -> str | None:
    """The model id of the hash step (``ml_inference`` writing ``phash``) in the index's ingest pipeline:
    the query is hashed by the same model as the documents were."""
    try:
        settings = client.request("GET", f"/{index}/_settings")
    except NotFound:
        return None
    body = next(iter(settings.values()), {}) if isinstance(settings, dict) else {}
    idx = ((body.get("settings") or {}).get("index") or {})
    pipeline = idx.get("default_pipeline")
    if not pipeline or pipeline == "_none":
        return None
    try:
        resp = client.request("GET", f"/_ingest/pipeline/{pipeline}")
    except NotFound:
        return None
    for proc in ((resp or {}).get(pipeline) or {}).get("processors") or []:
        cfg = proc.get("ml_inference") if isinstance(proc, dict) else None
        if isinstance(cfg, dict) and any("phash" in m for m in cfg.get("output_map") or [] if isinstance(m, dict)):
            return cfg.get("model_id")
    return None


def query_hashes(client: Any, index: str, b64: str) -> QueryHashes | None:
    """Hash the query through the index's hash model (ML Commons predict; the model server computes)."""
    model_id = _hash_model(client, index)
    if not model_id:
        return None

    def predict(image: str) -> dict[str, Any]:
        resp = client.request("POST", f"/_plugins/_ml/models/{model_id}/_predict",
                              body={"parameters": {"inputImage": image}})
        try:
            out = resp["inference_results"][0]["output"][0]
            data = out.get("dataAsMap") or out
            return data if isinstance(data, dict) else {}
        except (KeyError, IndexError, TypeError):
            raise KitError(f"the hash model {model_id} answered without hashes: {str(resp)[:200]}") from None

    first = predict(b64)
    if not first.get("phash"):
        return None
    probes = first.get("phash_probes") or []
    return QueryHashes(phash=[first["phash"], *[p for p in probes if isinstance(p, str)]],
                       colour=str(first.get("colour") or ""), mean=str(first.get("mean") or ""))


def label_hits(result: SearchResult, bands: Bands, query_sha256: str | None = None,
               hashes: QueryHashes | None = None) -> SearchResult:
    """Set ``label`` on each hit (in place) and return the result."""
    for hit in result.hits:
        same_file = query_sha256 is not None and (hit.id == query_sha256 or hit.source.get("sha256") == query_sha256)
        phash, colour = hashes.distances(hit.source) if hashes is not None else (None, None)
        direct = hashes.direct(hit.source) if hashes is not None else None
        flat: int | bool = False
        if hashes is not None and hashes.both_flat(hit.source):
            mean = hashes.mean_distance(hit.source)
            flat = True if mean is None else mean
        hit.label = "identical" if same_file else bands.label(hit.score, phash, colour, flat=flat, direct=direct)
        if phash is not None:
            hit.hash_distance = {"phash": phash, "colour": colour, "direct": direct}
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
    """Find images like ``photo`` (a path or the file's bytes); hits carry a ``label``.

    ``bands`` defaults to the calibration stored with the index (:meth:`Bands.for_index`)."""
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
    index = concrete_index(client, index)  # the query's model and the vectors of one version
    mapping, _ = _IndexInfo.get(client, index)
    if bands is None:
        bands = Bands.for_index(client, index)
    clauses = filter_clauses(parse_filters(filters), mapping)
    excludes = list(EXCLUDED_SOURCE) + ([] if thumbnails else ["thumbnail"])
    body = {"size": k, "query": _neural("image_embedding", k, clauses, query_image=b64),
            "_source": {"excludes": excludes}}
    result = run_query(client, index, body, query_text=name, mode="similar", field="image")
    result.body = {**body, "query": {"neural": {"image_embedding": {"query_image": f"<{len(b64)} base64 chars>",
                                                                    "k": k}}}}
    hashes = query_hashes(client, index, b64)
    result.params["bands"] = bands.source
    if hashes is None:
        result.notes.append(f"index {index!r} has no perceptual hashes, so identical and near-identical "
                                 "cannot be confirmed; apply the project (models/hash.yaml) and ingest again")
    elif not bands.calibrated:
        result.notes.append("similar-photo labels are not calibrated for this index's model: only exact "
                                 "copies are labelled; run `oskit eval data/eval/queries.yaml --ingest "
                                 "--calibrate-bands`")
    return label_hits(result, bands, hashlib.sha256(data).hexdigest(), hashes)


def similar_to_id(
    client: Any,
    doc_id: str,
    *,
    index: str = "images",
    k: int = 30,
    bands: Bands | None = None,
    thumbnails: bool = False,
) -> SearchResult:
    """"More like this": images like the indexed image ``doc_id``, by its stored vector (no image is
    sent again), labelled against its stored hashes like :func:`similar`."""
    if k < 1 or k > 10_000:
        raise KitError(f"-k must be between 1 and 10000 (got {k})")
    index = concrete_index(client, index)  # the stored vector and the searched vectors of one version
    try:
        doc = client.request("GET", f"/{index}/_doc/{doc_id}",
                             params={"_source_includes": "image_embedding,phash,phash_crops,colour_hash,colour_mean,sha256,file_name"})
    except NotFound:
        doc = {}
    src = (doc or {}).get("_source") or {}
    vector = src.get("image_embedding")
    if not doc.get("found", bool(src)) or not isinstance(vector, list):
        raise KitError(f"no image {doc_id!r} in index {index!r}", hint="it may have been deleted or re-ingested")
    if bands is None:
        bands = Bands.for_index(client, index)
    excludes = list(EXCLUDED_SOURCE) + ([] if thumbnails else ["thumbnail"])
    body = {"size": k, "query": {"knn": {"image_embedding": {"vector": vector, "k": k}}},
            "_source": {"excludes": excludes}}
    name = str(src.get("file_name") or doc_id)
    result = run_query(client, index, body, query_text=name, mode="similar", field="image")
    result.body = {**body, "query": {"knn": {"image_embedding": {"vector": f"<{len(vector)} floats>", "k": k}}}}
    result.params["bands"] = bands.source
    hashes = (QueryHashes(phash=[src["phash"]], colour=str(src.get("colour_hash") or ""),
                          mean=str(src.get("colour_mean") or "")) if src.get("phash") else None)
    if not bands.calibrated:
        result.notes.append("similar-photo labels are not calibrated for this index's model: only exact copies "
                            "are labelled")
    return label_hits(result, bands, str(src.get("sha256") or doc_id), hashes)


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


#: the share of a class's samples the hash bounds keep: a bound at the very worst sample would let
#: one outlier open the gate for everything
HASH_COVERAGE = 0.98
Sample = tuple[float, int | None, int | None]  # (score, pHash distance, colour distance)


def _hash_bound(values: Sequence[int | None]) -> int:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return 0
    return int(vals[min(len(vals) - 1, int(HASH_COVERAGE * len(vals)))])


def calibrate_bands(samples: Mapping[str, Sequence[Sample | float]], *, source: str = "calibrated",
                    model: str | None = None) -> Bands:
    """Bounds from labelled samples ``{"identical": [(score, phash_d, colour_d), ...], ...}`` (a bare
    score counts as a sample without hashes).

    identical and near-identical: the hash bounds keep :data:`HASH_COVERAGE` of the class's samples;
    then the score bound maximises balanced accuracy against the next classes' samples that pass
    those hash bounds (identical against near-identical; near-identical against similar + unrelated).
    similar: the score bound between similar and unrelated. Score bounds are made monotonic.
    """
    unknown = set(samples) - set(BAND_LABELS)
    if unknown:
        raise EvalError(f"unknown band labels: {', '.join(sorted(unknown))} (known: {', '.join(BAND_LABELS)})")
    norm: dict[str, list[Sample]] = {lab: [s if isinstance(s, tuple) else (float(s), None, None)
                                           for s in samples.get(lab, ())] for lab in BAND_LABELS}
    if not norm["similar"] or not norm["unrelated"]:
        raise EvalError("calibration needs 'similar' and 'unrelated' samples")
    details: dict[str, Any] = {"counts": {lab: len(norm[lab]) for lab in BAND_LABELS}}

    def gate(ph: int, co: int, xs: list[Sample]) -> list[float]:
        return [sc for sc, p, c in xs if p is not None and c is not None and p <= ph and c <= co]

    id_ph, id_co = _hash_bound([p for _, p, _ in norm["identical"]]), _hash_bound([c for _, _, c in norm["identical"]])
    near_ph = _hash_bound([p for _, p, _ in norm["near-identical"]])
    near_co = _hash_bound([c for _, _, c in norm["near-identical"]])
    edges: dict[str, float | None] = {}
    for name, pos, neg, ph, co in (
        ("identical", norm["identical"], norm["near-identical"] + norm["similar"] + norm["unrelated"], id_ph, id_co),
        ("near_identical", norm["near-identical"], norm["similar"] + norm["unrelated"], near_ph, near_co),
    ):
        up, low = gate(ph, co, pos), gate(ph, co, neg)
        if not up:
            edges[name] = None
            details[f"{name}_accuracy"] = None
            continue
        t, acc = _best_threshold(up, low) if low else (min(up) - 1e-4, 1.0)
        edges[name] = round(t, 4)
        details[f"{name}_accuracy"] = round(acc, 4)
        details[f"{name}_gate"] = {"positives_kept": len(up), "positives": len(pos),
                                   "negatives_through_hashes": len(low), "negatives": len(neg)}
    t, acc = _best_threshold([s for s, _, _ in norm["similar"]], [s for s, _, _ in norm["unrelated"]])
    edges["similar"] = round(t, 4)
    details["similar_accuracy"] = round(acc, 4)
    if edges["identical"] is not None and edges["near_identical"] is not None:
        edges["near_identical"] = min(edges["near_identical"], edges["identical"])
    top = edges["near_identical"] if edges["near_identical"] is not None else edges["identical"]
    if top is not None:
        edges["similar"] = min(edges["similar"], top)  # type: ignore[type-var]
    for lab in BAND_LABELS:
        for i, key in enumerate(("scores", "phash", "colour")):
            vals = sorted(x[i] for x in norm[lab] if x[i] is not None)  # type: ignore[type-var]
            if vals:
                details[f"{lab}_{key}"] = {"min": round(vals[0], 4), "median": round(vals[len(vals) // 2], 4),
                                           "max": round(vals[-1], 4)}
    return Bands(identical=edges["identical"], near_identical=edges["near_identical"], similar=edges["similar"],
                 identical_phash=id_ph, identical_colour=id_co, near_phash=near_ph, near_colour=near_co,
                 model=model, source=source, details=details)


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
) -> dict[str, list[Sample]]:
    """Labelled ``(score, pHash distance, colour distance)`` samples for :func:`calibrate_bands`.

    ``pairs`` holds ``(original file bytes, phone photo bytes, source file name)``. Per pair: the
    original re-encoded as JPEG q90 and at half size (same picture, other bytes) → the original's
    hit is an *identical* sample; the phone photo → the original's hit is *near-identical*, hits
    sharing an object (colour + shape) with it are *similar*, hits sharing no colour and no shape
    are *unrelated*.
    """
    from PIL import Image

    raw = Bands()
    samples: dict[str, list[Sample]] = {lab: [] for lab in BAND_LABELS}

    def sample(h: Any, *, direct: bool = False) -> Sample:
        d = h.hash_distance or {}
        return (h.score, d.get("direct") if direct else d.get("phash"), d.get("colour"))

    for original, photo, file_name in pairs:
        img = Image.open(io.BytesIO(original)).convert("RGB")
        for variant in (img, img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)):
            buf = io.BytesIO()
            variant.save(buf, "JPEG", quality=90)
            for h in similar(client, buf.getvalue(), index=index, k=5, bands=raw).hits:
                if h.source.get("file_name") == file_name:
                    samples["identical"].append(sample(h, direct=True))
        res = similar(client, photo, index=index, k=k, bands=raw)
        src_meta = _metadata_of(client, index, file_name, res)
        for h in res.hits:
            if h.source.get("file_name") == file_name:
                samples["near-identical"].append(sample(h))
            elif src_meta is not None:
                meta = h.source.get("metadata") or {}
                if shares_object(src_meta, meta):
                    samples["similar"].append(sample(h))
                elif shares_nothing(src_meta, meta):
                    samples["unrelated"].append(sample(h))
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

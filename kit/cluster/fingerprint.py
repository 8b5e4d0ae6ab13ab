"""Embedding fingerprints: which model produced an index's vectors, and does the deployed one still match?

An index records, in its mapping's ``_meta.oskit_embeddings``, one entry per vector field the ingest
pipeline fills: the model's identity (logical name, ``model_id``, spec fingerprint), its content hash
(the package's sha256 for local models; remote models have none, their outputs are the evidence) and a
fingerprint of its *outputs* on a fixed probe set (:data:`PROBE_TEXTS`, :data:`PROBE_IMAGES`).

The outputs are kept as a seeded random projection of each probe vector to :data:`PROJECTED_DIMS`
numbers (Johnson–Lindenstrauss: distances survive, the mapping stays small) and compared with a
tolerance (cosine ≥ :data:`MIN_COSINE`), so a GPU's last-bit noise is not drift while swapped weights,
changed preprocessing or another server behind the same connector are. ``outputs`` (a short hash of
the rounded projections) is only for people to compare at a glance.

The perceptual hashes of ``oskit similar`` (the ``ml_inference`` processor writing ``phash``) are
fingerprinted the same way: the hash model's answers on the probe images (``phash``, ``colour``,
``phash_crops``) as ±1 bit vectors and its ``hash_version``; a changed algorithm would otherwise
compare query hashes with stored ones of another kind, and the identical/near-identical labels lie.

Recorded at ``oskit apply`` (after the probe) and at ``oskit ingest`` (when an index has no record);
checked by ``oskit plan``/``diff`` (a mismatch is a ``reindex`` change naming the model) and by
ingest (which refuses to add vectors from another model: they would silently mix).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from kit.cluster.client import Client
from kit.errors import ClusterError, NotFound

log = logging.getLogger("kit.cluster")

__all__ = [
    "FieldCheck",
    "META_KEY",
    "MIN_COSINE",
    "PROBE_IMAGES",
    "PROBE_SET",
    "check_index",
    "compare_entry",
    "fingerprinted_fields",
    "guard_ingest",
    "hash_fields",
    "index_record",
    "model_outputs",
    "record_index",
    "vector_fields",
]

META_KEY = "oskit_embeddings"
PROBE_SET = "oskit-probe-v1"  # bump when the probe inputs change (old records then say "probe set changed")
PROJECTED_DIMS = 64
MIN_COSINE = 0.999
HASH_FIELD = "phash"  # what oskit similar compares (kit/job/similar.py); its writer is the hash model
HASH_KEYS = ("phash", "colour", "phash_crops")  # the hashes compared as bits (``mean`` rounds: left out)
# hashes are exact; 2 % of a probe's bits may flip (a resampling change upstream) before it is another algorithm
MIN_HASH_COSINE = 0.96
PROBE_TEXTS = ("a photo of a red circle", "HOTEL 42", "a dog running on a beach")
# 32×32 PNGs: a red disc on white, a yellow square on blue (fixed bytes, never regenerated).
PROBE_IMAGES = (
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAiUlEQVR42u1WSQ7AIAiUSf/hof9/Ug++hN5LiyDapFaOZpYEIgMxcxpZSI"
    "Pr+wabEXfkfHnZS7EQSR+y1JWlOyGoXoUhqF4FI66uU9BFXSGil/oTfbKfHOzPrchadn8zMG5g13KdbwbBLkk6vAnljTY0pKCLgraktYPR"
    "nOZGGBlPx1Fny9pFLxicnxI5M8GiIBIAAAAASUVORK5CYII=",
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAPUlEQVR42mMU0TjBQEvAxEBjMGrBqAWUAxZcEs+2WJBkkJTPidE4GLVg1I"
    "JRC0YtGLoWMI62i0YtGLWAAQDCVQVJ9YfM4gAAAABJRU5ErkJggg==",
)
ML = "/_plugins/_ml"


def vector_fields(pipeline: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``{vector field: (model_id, modality)}`` for the embedding processors of an ingest pipeline body.

    ``modality`` is ``image+text`` for ``text_image_embedding`` and ``text`` for ``text_embedding``.
    """
    out: dict[str, tuple[str, str]] = {}
    for proc in pipeline.get("processors") or []:
        if not isinstance(proc, dict) or len(proc) != 1:
            continue
        (ptype, cfg), = proc.items()
        if not isinstance(cfg, dict) or not isinstance(cfg.get("model_id"), str):
            continue
        if ptype == "text_image_embedding" and isinstance(cfg.get("embedding"), str):
            out[cfg["embedding"]] = (cfg["model_id"], "image+text")
        elif ptype in ("text_embedding", "sparse_encoding") and isinstance(cfg.get("field_map"), dict):
            for target in cfg["field_map"].values():
                if isinstance(target, str):
                    out[target] = (cfg["model_id"], "text")
    return out


def hash_fields(pipeline: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``{"phash": (model_id, "hash")}`` when an ``ml_inference`` processor of the pipeline writes the
    perceptual hash field, else ``{}``."""
    for proc in pipeline.get("processors") or []:
        if not isinstance(proc, dict) or len(proc) != 1:
            continue
        (ptype, cfg), = proc.items()
        if ptype != "ml_inference" or not isinstance(cfg, dict) or not isinstance(cfg.get("model_id"), str):
            continue
        maps = cfg.get("output_map") or []
        if any(isinstance(m, dict) and HASH_FIELD in m for m in maps):
            return {HASH_FIELD: (cfg["model_id"], "hash")}
    return {}


def fingerprinted_fields(pipeline: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Every field whose writer is fingerprinted: the vector fields and the perceptual hash field."""
    return {**vector_fields(pipeline), **hash_fields(pipeline)}


def _bits(value: Any) -> list[float]:
    """Hex hash strings (or a list of them) → ±1 per bit."""
    out: list[float] = []
    for text in value if isinstance(value, list) else [value]:
        for ch in str(text):
            n = int(ch, 16)
            out.extend(1.0 if n >> b & 1 else -1.0 for b in range(3, -1, -1))
    return out


def _hash_outputs(resp: Any, label: str) -> dict[str, list[float]]:
    results = (resp or {}).get("inference_results") or []
    outputs = (results[0].get("output") or []) if results else []
    data = next(((o.get("dataAsMap") or o) for o in outputs if isinstance(o, dict)), None)
    if not data or any(k not in data for k in HASH_KEYS):
        raise ClusterError(f"the hash model returned no {', '.join(HASH_KEYS)} for probe {label}")
    try:
        bits = [b for k in HASH_KEYS for b in _bits(data[k])]
    except (TypeError, ValueError):
        raise ClusterError(f"the hash model's answer for probe {label} is not hex hashes") from None
    version = hashlib.sha256(str(data.get("hash_version")).encode()).hexdigest()[:16]
    return {label: bits, "version": _bits(version)}


def _project(vector: list[float]) -> list[float]:
    import numpy as np

    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if norm > 0:
        v = v / norm
    # The same matrix for a given dimension everywhere (seeded), so records stay comparable.
    rng = np.random.default_rng(len(v))
    proj = rng.standard_normal((len(v), PROJECTED_DIMS)) / np.sqrt(PROJECTED_DIMS)
    return [round(float(x), 6) for x in v @ proj]


def _vector(resp: Any) -> list[float] | None:
    from kit.cluster.mlcommons import _first_vector

    results = (resp or {}).get("inference_results") or []
    return _first_vector(results[0]) if results else None


def _probe_requests(modality: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, path, body)`` per probe input, as the ingest processors and neural queries call the model."""
    reqs: list[tuple[str, str, dict[str, Any]]] = []
    if modality == "hash":
        for i, image in enumerate(PROBE_IMAGES):
            reqs.append((f"image{i}", "/models/{id}/_predict", {"parameters": {"inputImage": image}}))
    elif modality == "image+text":
        for i, text in enumerate(PROBE_TEXTS):
            reqs.append((f"text{i}", "/models/{id}/_predict", {"parameters": {"inputText": text}}))
        for i, image in enumerate(PROBE_IMAGES):
            reqs.append((f"image{i}", "/models/{id}/_predict", {"parameters": {"inputImage": image}}))
    else:
        for i, text in enumerate(PROBE_TEXTS):
            reqs.append((f"text{i}", "/_predict/text_embedding/{id}",
                         {"text_docs": [text], "return_number": True, "target_response": ["sentence_embedding"]}))
    return reqs


def model_outputs(client: Client, model_id: str, modality: str) -> dict[str, list[float]]:
    """The projected outputs of one deployed model on the probe set (raises ClusterError when it cannot answer)."""
    out: dict[str, list[float]] = {}
    for label, path, body in _probe_requests(modality):
        resp = client.request("POST", ML + path.format(id=model_id), body=body)
        if modality == "hash":
            out.update(_hash_outputs(resp, label))
            continue
        vec = _vector(resp)
        if vec is None:
            raise ClusterError(f"model {model_id} returned no embedding for probe {label}")
        out[label] = _project(vec)
    return out


def _outputs_hash(outputs: Mapping[str, list[float]]) -> str:
    rounded = {k: [round(x, 2) for x in v] for k, v in sorted(outputs.items())}
    return hashlib.sha256(json.dumps(rounded, sort_keys=True).encode()).hexdigest()[:12]


def _identity(client: Client, model_id: str) -> dict[str, Any]:
    from kit.cluster.desired import parse_marker

    try:
        model = client.request("GET", f"{ML}/models/{model_id}") or {}
    except NotFound:
        model = {}
    mk = parse_marker(model.get("description"))
    return {"model": (mk[1] if mk else None) or model.get("name") or model_id, "model_id": model_id,
            "spec_fingerprint": mk[2] if mk else None,
            "content_hash": model.get("model_content_hash_value"),
            "function_name": model.get("function_name") or model.get("algorithm")}


def entry_for(client: Client, model_id: str, modality: str) -> dict[str, Any]:
    """A record entry for one vector field: identity, content hash, output fingerprint."""
    outputs = model_outputs(client, model_id, modality)
    return dict(_identity(client, model_id), modality=modality, probe_set=PROBE_SET,
                outputs=_outputs_hash(outputs), probe=outputs)


def _cosine(a: list[float], b: list[float]) -> float:
    import numpy as np

    x, y = np.asarray(a), np.asarray(b)
    d = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y) / d if d else 0.0


def compare_entry(recorded: Mapping[str, Any], outputs: Mapping[str, list[float]]) -> tuple[bool, float]:
    """(matches, lowest cosine over the probes) between a record entry and fresh outputs."""
    if recorded.get("probe_set") != PROBE_SET:
        return False, 0.0
    probe = recorded.get("probe") or {}
    if set(probe) != set(outputs):
        return False, 0.0
    low = min((_cosine(probe[k], outputs[k]) for k in outputs), default=1.0)
    return low >= (MIN_HASH_COSINE if recorded.get("modality") == "hash" else MIN_COSINE), low


@dataclass
class FieldCheck:
    """The verdict for one vector field of one index."""

    index: str
    field: str
    model: str
    recorded: dict[str, Any] | None
    current_model_id: str | None
    matches: bool
    cosine: float = 1.0
    error: str | None = None
    current: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        rec = self.recorded or {}
        if self.error:
            return f"model {self.model}: cannot check its outputs ({self.error})"
        if rec.get("modality") == "hash":
            return (f"model {self.model}'s perceptual hashes no longer match what index {self.index} was built "
                    f"with (field {self.field}: recorded hashes {rec.get('outputs')} from model {rec.get('model_id')}, "
                    f"deployed {self.current.get('outputs')} from model {self.current_model_id}; another hash "
                    f"algorithm or version: the similar-photo labels would compare unlike hashes)")
        return (f"model {self.model}'s outputs no longer match what index {self.index} was built with "
                f"(field {self.field}: recorded outputs {rec.get('outputs')} from model {rec.get('model_id')}, "
                f"deployed {self.current.get('outputs')} from model {self.current_model_id}; "
                f"lowest probe cosine {self.cosine:.4f} < {MIN_COSINE})")


def index_record(client: Client, index: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(concrete index, its _meta, the embeddings record or {})``; an alias resolves to its index."""
    resp = client.request("GET", f"/{index}/_mapping") or {}
    concrete = index if index in resp else next(iter(resp), index)
    meta = ((resp.get(concrete) or {}).get("mappings") or {}).get("_meta") or {}
    rec = meta.get(META_KEY) if isinstance(meta.get(META_KEY), dict) else {}
    return concrete, dict(meta), dict(rec or {})


def _index_pipeline(client: Client, index: str) -> dict[str, Any] | None:
    resp = client.request("GET", f"/{index}/_settings", params={"flat_settings": "true"}) or {}
    body = next(iter(resp.values()), {}) if resp else {}
    name = (body.get("settings") or {}).get("index.default_pipeline")
    if not name or name == "_none":
        return None
    try:
        pipes = client.request("GET", f"/_ingest/pipeline/{name}") or {}
    except NotFound:
        return None
    return pipes.get(name)


def check_index(client: Client, index: str) -> list[FieldCheck]:
    """Compare every recorded vector field of ``index`` with the model its ingest pipeline uses now.

    Fields without a record are not checked (nothing to compare). Never writes.
    """
    concrete, _, rec = index_record(client, index)
    fields = (rec.get("fields") or {}) if rec else {}
    if not fields:
        return []
    pipe = _index_pipeline(client, concrete) or {}
    now = fingerprinted_fields(pipe)
    checks: list[FieldCheck] = []
    cache: dict[tuple[str, str], dict[str, Any]] = {}
    for fname, entry in sorted(fields.items()):
        model_id, modality = now.get(fname, (None, entry.get("modality", "text")))
        name = str(entry.get("model") or fname)
        if model_id is None:
            checks.append(FieldCheck(index, fname, name, entry, None, False, 0.0,
                                     error="the index's ingest pipeline no longer fills this field"))
            continue
        try:
            key = (model_id, modality)
            if key not in cache:
                cache[key] = entry_for(client, model_id, modality)
            cur = cache[key]
        except ClusterError as exc:
            checks.append(FieldCheck(index, fname, name, entry, model_id, False, 0.0, error=str(exc)))
            continue
        ok, low = compare_entry(entry, cur["probe"])
        checks.append(FieldCheck(index, fname, str(cur.get("model") or name), entry, model_id, ok, low,
                                 current=cur))
    return checks


def record_index(client: Client, index: str, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the embeddings record of ``index`` from the models its ingest pipeline uses now.

    An existing entry is kept unless ``overwrite`` (a mismatching one means the vectors came from
    another model: only a migration may replace it). Returns the record written (or kept).
    """
    concrete, meta, rec = index_record(client, index)
    pipe = _index_pipeline(client, concrete) or {}
    fields = dict(rec.get("fields") or {})
    changed = False
    cache: dict[tuple[str, str], dict[str, Any]] = {}
    for fname, (model_id, modality) in sorted(fingerprinted_fields(pipe).items()):
        old = fields.get(fname)
        key = (model_id, modality)
        if key not in cache:
            try:
                cache[key] = entry_for(client, model_id, modality)
            except ClusterError as exc:
                if modality != "hash":
                    raise
                # the vectors' record matters more than the hashes': keep going without this field
                log.warning("index %s: the hash model's fingerprint not recorded (%s)", concrete, exc)
                continue
        cur = cache[key]
        if old is not None and not overwrite:
            ok, _ = compare_entry(old, cur["probe"])
            if not ok:
                continue  # keep the evidence; diff reports it, migrate replaces it
            if old.get("model_id") == model_id:
                continue
        fields[fname] = cur
        changed = True
    if changed:
        new = {"probe_set": PROBE_SET, "fields": fields}
        meta[META_KEY] = new
        # _meta is replaced as a whole by PUT _mapping: send every key the index has.
        client.request("PUT", f"/{concrete}/_mapping", body={"_meta": meta})
        return new
    return rec


def guard_ingest(client: Client, index: str) -> None:
    """Before an ingest: refuse when the deployed models' outputs differ from the index's record (the new
    vectors would silently mix with the old); record the models when the index has no record yet."""
    from kit.errors import IngestError

    bad = [c for c in check_index(client, index) if not c.matches and not c.error]
    if bad:
        raise IngestError(bad[0].reason + "; nothing was sent",
                          hint="carry the model change out with oskit migrate (or put the old model back)")
    try:
        record_index(client, index)
    except ClusterError as exc:
        log.warning("index %s: embedding fingerprints not recorded (%s)", index, exc)

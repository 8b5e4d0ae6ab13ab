"""The k-NN plugin's exact-search scoring script: ``script_score`` with ``{"source": "knn_score",
"lang": "knn", "params": {"field", "query_value", "space_type"}}``.

Scores follow the plugin's ``KNNScoringSpace`` classes (opensearch-project/k-NN, 2.19:
``plugin/script/KNNScoringSpace.java``, ``KNNScoringUtil.java``), in float32 as Java computes them:

- l2 ``1 / (1 + Σ(q-v)²)``, l1 ``1 / (1 + Σ|q-v|)``, linf ``1 / (1 + max|q-v|)``;
- cosinesimil ``max((1 + cos) / 2, 0)`` for indices created on or after 2.19.0, ``1 + cos`` before;
  a zero vector has cos 0;
- innerproduct ``KNNWeight.normalizeScore(-dot)``: ``dot + 1`` when dot ≥ 0, else ``1 / (1 - dot)``;
- hammingbit on ``long`` fields (``1 / (1 + bitCount(q ^ v))``) and ``binary`` fields with doc values
  (the bytes as an unsigned big integer);
- hamming needs a binary knn_vector, which the node does not have (the plugin's error).

A document without a value scores 0.0 (the script's empty doc values).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

import numpy as np

from kit.node.errors import ApiError
from kit.node.jsonutil import loads

if TYPE_CHECKING:
    from kit.node.index_state import IndexState

__all__ = ["EXACT_COSINE_SOURCE_LIMIT", "KnnScoreScript", "query_shard_failure", "source_values", "vector_scores"]

EXACT_COSINE_SOURCE_LIMIT = 1_000
_SPACES = ("hamming", "l2", "l1", "linf", "innerproduct", "cosinesimil", "hammingbit")
_LABEL = {"l2": "l2", "l1": "l1", "linf": "l-inf", "innerproduct": "innerproduct", "cosinesimil": "cosine"}


def query_shard_failure(ix: "IndexState", reason: str, cause_type: str = "illegal_argument_exception",
                        cause_reason: str | None = None) -> ApiError:
    """A query that fails to build on the shard, as the search action renders it: ``query_shard_exception``
    "failed to create query: …" inside ``search_phase_execution_exception`` "all shards failed".
    With ``cause_reason`` (a script that does not compile) the cause is the root cause, as in OpenSearch."""
    cause = {"type": cause_type, "reason": cause_reason or reason}
    shard = {"type": "query_shard_exception", "reason": f"failed to create query: {reason}",
             "index": ix.name, "index_uuid": ix.uuid}
    failed = [{"shard": 0, "index": ix.name, "node": getattr(ix.engine, "node_id", None),
               "reason": {**shard, "caused_by": cause}}]
    if cause_reason is not None:
        return ApiError(400, "search_phase_execution_exception", "all shards failed", phase="query", grouped=True,
                        failed_shards=failed, caused_by=cause, root_cause=cause)
    return ApiError(400, "search_phase_execution_exception", "all shards failed", phase="query", grouped=True,
                    failed_shards=failed, caused_by={**shard, "caused_by": cause}, root_cause=shard)


def _plain_failure(ix: "IndexState", reason: str) -> ApiError:
    """A failure while scoring (not while building the query): the shard's own exception as root cause."""
    cause = {"type": "illegal_argument_exception", "reason": reason}
    return ApiError(400, "search_phase_execution_exception", "all shards failed", phase="query", grouped=True,
                    failed_shards=[{"shard": 0, "index": ix.name, "node": getattr(ix.engine, "node_id", None),
                                    "reason": cause}],
                    caused_by={**cause, "caused_by": cause}, root_cause=cause)


class KnnScoreScript:
    """One ``knn_score`` script, checked against one index (KNNScoreScriptLeafFactory) and scoring its documents."""

    def __init__(self, params: Any) -> None:
        self.params = params if isinstance(params, dict) else {}

    def _param(self, ix: "IndexState", name: str) -> Any:
        value = self.params.get(name)
        if value is None:
            raise query_shard_failure(ix, f"Missing parameter [{name}]")
        return value

    def scores(self, ix: "IndexState", rids: set[int], version: tuple[int, ...]) -> dict[int, float]:
        field = str(self._param(ix, "field"))
        space = str(self._param(ix, "space_type")).lower()
        query = self._param(ix, "query_value")
        if space not in _SPACES:
            raise query_shard_failure(ix, "Invalid space type. Please refer to the available space types.")
        fd = ix.mapping.fields.get(field)
        ftype = fd.type if fd is not None else None
        if space == "hammingbit":
            if ftype == "long":
                if isinstance(query, bool) or not isinstance(query, int) or not -2**63 <= query < 2**63:
                    raise query_shard_failure(ix, "Object cannot be parsed as a Long.")
                return self._hamming_long(ix, field, query, rids)
            if ftype == "binary":
                if not fd.params.get("doc_values", False):  # type: ignore[union-attr]
                    raise _plain_failure(ix, f"Can't load fielddata on [{field}] because fielddata is unsupported on "
                                             f"fields of type [binary]. Use doc values instead.")
                try:
                    q = int.from_bytes(base64.b64decode(str(query), validate=True), "big")
                except (binascii.Error, ValueError):
                    raise query_shard_failure(ix, f"Illegal base64 query_value [{query}]") from None
                return self._hamming_binary(ix, field, q, rids)
            raise query_shard_failure(ix, "Incompatible field_type for hammingbit space. The field type must of type "
                                          "long or binary.")
        label = "hamming" if space == "hamming" else _LABEL[space]
        if ftype != "knn_vector":
            raise query_shard_failure(ix, f"Incompatible field_type for {label} space. The field type must be knn_vector.")
        if space == "hamming":  # the node's knn_vector fields are all data_type float
            raise query_shard_failure(ix, "Incompatible field_type for hamming space. The data type should be [BINARY] "
                                          "but got FLOAT")
        dim = int(fd.knn()["dimension"])  # type: ignore[union-attr]
        try:
            if not isinstance(query, list) or any(isinstance(x, bool) for x in query):
                raise TypeError
            q = np.asarray([float(x) for x in query], dtype=np.float32)
        except (TypeError, ValueError):
            raise query_shard_failure(ix, "query_value must be an array of numbers for the "
                                          f"{label} space") from None
        if q.shape[0] != dim:
            raise query_shard_failure(ix, f"Object's length={q.shape[0]} does not match the expected length={dim}.",
                                      "illegal_state_exception")
        if space == "cosinesimil" and not np.any(q):
            raise query_shard_failure(ix, "zero vector is not supported when space type is [cosinesimil]")
        order, mat = self._vectors(ix, field, rids)
        out = dict.fromkeys(rids, 0.0)
        if order.size:
            for rid, s in zip(order.tolist(), vector_scores(space, q, mat, version).tolist()):
                out[rid] = s
        return out

    # ------------------------------------------------------------------ reading values
    @staticmethod
    def _vectors(ix: "IndexState", field: str, rids: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """(rids, float32 matrix) of the documents that have a vector. The field's own vectors are the
        documents' values except under cosinesimil, where they are kept normalised: up to
        ``EXACT_COSINE_SOURCE_LIMIT`` documents the values are read from ``_source`` (bit-exact scores);
        beyond, the normalised vectors are scored (the same cosine up to float rounding, ~1e-7), because
        reading and parsing every source costs ~0.3 ms per 384-d document."""
        vf = ix.vectors(field)
        with_vec = [r for r in rids if r in ix.present.get(field, ())]
        if not with_vec:
            return np.zeros(0, dtype=np.int64), np.zeros((0, vf.dim), dtype=np.float32)
        if vf.space != "cosinesimil" or len(with_vec) > EXACT_COSINE_SOURCE_LIMIT:
            return vf.vectors_of(with_vec)
        raw: dict[int, Any] = {}
        for rid, row in ix.engine.store.sources(with_vec).items():
            value = _value_at(loads(row[3]), field)
            if isinstance(value, list) and len(value) == vf.dim:
                raw[rid] = value
        missing = [r for r in with_vec if r not in raw]  # kept outside _source (mapping excludes): normalised copy
        order = np.asarray(sorted(raw), dtype=np.int64)
        mat = np.asarray([raw[r] for r in order.tolist()], dtype=np.float32).reshape(-1, vf.dim)
        if missing:
            o2, m2 = vf.vectors_of(missing)
            order, mat = np.concatenate([order, o2]), np.concatenate([mat, m2])
        return order, mat

    @staticmethod
    def _hamming_long(ix: "IndexState", field: str, q: int, rids: set[int]) -> dict[int, float]:
        values = ix.exact(field).values
        out = {}
        for rid in rids:
            vals = values.get(rid)
            if not vals:
                out[rid] = 0.0
                continue
            v = int(min(vals))  # sorted numeric doc values: the script's getValue() is the smallest
            bits = bin((q ^ v) & (2**64 - 1)).count("1")
            out[rid] = float(np.float32(1.0) / np.float32(1 + bits))
        return out

    @staticmethod
    def _hamming_binary(ix: "IndexState", field: str, q: int, rids: set[int]) -> dict[int, float]:
        out = dict.fromkeys(rids, 0.0)
        for rid, row in ix.engine.store.sources(list(rids)).items():
            vals = [base64.b64decode(v) for v in source_values(loads(row[3]), field) if isinstance(v, str)]
            if vals:
                v = int.from_bytes(min(vals), "big")  # binary doc values are sorted: the first is the smallest
                out[rid] = float(np.float32(1.0) / np.float32(1 + bin(q ^ v).count("1")))
        return out


def vector_scores(space: str, q: np.ndarray, mat: np.ndarray, version: tuple[int, ...]) -> np.ndarray:
    """float32 scores of each row of ``mat`` against ``q`` (KNNScoringSpace's scoring methods), summed in
    the order Java sums them so the scores are the plugin's to the last bit: Lucene's scalar
    ``VectorUtil`` (fused multiply-add, four accumulators above 32 dimensions) for l2 and innerproduct,
    plain float loops for l1 and cosinesimil."""
    one = np.float32(1.0)
    mat = np.ascontiguousarray(mat, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if space == "l2":
            dist = _lucene_sum(mat, q, square_diff=True)
            return (one / (one + dist)).astype(np.float32)
        if space == "innerproduct":
            dot = _lucene_sum(mat, q, square_diff=False)
            return np.where(-dot >= 0, one / (one - dot), dot + one).astype(np.float32)  # normalizeScore(-dot)
        if space == "l1":
            acc = np.zeros(mat.shape[0], dtype=np.float32)
            for j in range(mat.shape[1]):
                acc = (acc + np.abs(q[j] - mat[:, j])).astype(np.float32)
            return (one / (one + acc)).astype(np.float32)
        if space == "linf":
            dist = np.abs(q - mat).max(axis=1) if mat.shape[1] else np.zeros(mat.shape[0], dtype=np.float32)
            return (one / (one + dist.astype(np.float32))).astype(np.float32)
        # cosinesimil (cosinesimilOptimized): float loops, then (float)(dot / Math.sqrt(|q|²·|v|²)) in double
        q_sq = np.float32(0.0)
        for x in q:
            q_sq = np.float32(q_sq + np.float32(x * x))
        dot = np.zeros(mat.shape[0], dtype=np.float32)
        v_sq = np.zeros(mat.shape[0], dtype=np.float32)
        for j in range(mat.shape[1]):
            col = mat[:, j]
            dot = (dot + (q[j] * col).astype(np.float32)).astype(np.float32)
            v_sq = (v_sq + (col * col).astype(np.float32)).astype(np.float32)
        prod = (q_sq * v_sq).astype(np.float32)
        cos = np.where(prod == 0, 0.0, dot.astype(np.float64) / np.sqrt(prod.astype(np.float64))).astype(np.float32)
        if version >= (2, 19, 0):
            return np.maximum((one + cos) / np.float32(2.0), np.float32(0.0)).astype(np.float32)
        return (one + cos).astype(np.float32)


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 ``Math.fma``: the product of two floats is exact in double, so one rounding of the sum."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def _lucene_sum(mat: np.ndarray, q: np.ndarray, *, square_diff: bool) -> np.ndarray:
    """Lucene 9 ``DefaultVectorUtilSupport.squareDistance`` / ``dotProduct`` for each row."""
    n, dim = mat.shape

    def term(j: int) -> tuple[np.ndarray, np.ndarray]:
        if square_diff:
            diff = (q[j] - mat[:, j]).astype(np.float32)
            return diff, diff
        return np.full(n, q[j], dtype=np.float32), mat[:, j]

    res = np.zeros(n, dtype=np.float32)
    i = 0
    if dim > 32:
        accs = [np.zeros(n, dtype=np.float32) for _ in range(4)]
        upper = dim & ~3
        while i < upper:
            for k in range(4):
                a, b = term(i + k)
                accs[k] = _fma(a, b, accs[k])
            i += 4
        total = (((accs[0] + accs[1]).astype(np.float32) + accs[2]).astype(np.float32) + accs[3]).astype(np.float32)
        res = (res + total).astype(np.float32)
    while i < dim:
        a, b = term(i)
        res = _fma(a, b, res)
        i += 1
    return res


def source_values(src: Any, path: str) -> list[Any]:
    """The leaf values at a dotted path of a ``_source`` (objects, arrays of objects, dotted keys)."""
    out: list[Any] = []

    def walk(node: Any, rest: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, rest)
            return
        if not rest:
            if node is not None:
                out.append(node)
            return
        if not isinstance(node, dict):
            return
        for key, val in node.items():
            if key == rest:
                walk(val, "")
            elif rest.startswith(key + "."):
                walk(val, rest[len(key) + 1:])

    walk(src, path)
    return out


def _value_at(src: Any, path: str) -> Any:
    """The value at a dotted path of a ``_source`` (objects or dotted keys), not flattened: a vector stays a list."""
    if not isinstance(src, dict):
        return None
    if path in src:
        return src[path]
    for key, val in src.items():
        if path.startswith(key + "."):
            found = _value_at(val, path[len(key) + 1:])
            if found is not None:
                return found
    return None

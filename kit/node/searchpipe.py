"""Search pipelines: ``/_search/pipeline`` CRUD, resolution per request, and the processors.

Request processors: ``neural_query_enricher`` (neural-search) and ``filter_query``. Phase-results
processors: ``normalization-processor`` and ``score-ranker-processor`` (RRF), whose math follows
neural-search's ``processor/normalization`` and ``processor/combination`` packages to the float:
scores are Java ``float`` there, so the arithmetic here runs in float32 step by step. Response
processors: ``rename_field`` and ``truncate_hits``. Other real processor types are refused at PUT
with a message naming them; unknown types get OpenSearch's own error.

The core calls, per search request::

    pipe = engine.search_pipelines.resolve(index_settings, params, body)   # None: no pipeline
    body = pipe.process_request(body, index)
    if pipe.has_hybrid_combiner: hits = pipe.combine_hybrid(per_subquery)   # hybrid query only
    response = pipe.process_response(response)
"""

from __future__ import annotations

import abc
import copy
import logging
import math
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Hashable, Mapping, Sequence

import numpy as np

from kit.node.jsonutil import java_class
from kit.node.pipeline_rest import PipelineRest, PipelineStore
from kit.node.errors import ApiError, bad_request, unsupported

if TYPE_CHECKING:
    from kit.node.engine import Engine
    from kit.node.routing import NodeRequest, Route

__all__ = [
    "PipelineStore",
    "SearchPipeline",
    "SearchPipelineService",
    "combine_normalized",
    "java_float_str",
    "parse_phase_processor",
]

log = logging.getLogger(__name__)

F32 = np.float32
FLOAT_MIN_VALUE = F32(1.4e-45)  # Java Float.MIN_VALUE (smallest positive), neural-search's max seed
FLOAT_MAX_VALUE = F32(3.4028235e38)
MIN_MAX_FLOOR = F32(0.001)
MAX_SUB_QUERIES = 5
SYSTEM_INDEX = ".oskit-search-pipelines"
NONE_PIPELINE = "_none"

_UNSUPPORTED_REQUEST = {"script", "oversample", "agentic_query_translator", "ml_inference"}
_UNSUPPORTED_RESPONSE = {
    "rerank", "collapse", "sort", "split", "personalize_search_ranking",
    "retrieval_augmented_generation", "agentic_context", "ml_inference",
}


# --------------------------------------------------------------------------------------------
# Java formatting helpers (error messages quote Java's Float.toString / Arrays.toString)


def java_float_str(x: float) -> str:
    """``Float.toString`` for a float32 value: shortest round-trip digits, ``1.0`` not ``1``."""
    f = F32(x)
    if not math.isfinite(float(f)):
        return "NaN" if math.isnan(float(f)) else ("Infinity" if f > 0 else "-Infinity")
    a = abs(float(f))
    if a != 0.0 and (a < 1e-3 or a >= 1e7):
        s = np.format_float_scientific(f, unique=True, exp_digits=1, trim="0")
        mant, _, exp = s.partition("e")
        if "." not in mant:
            mant += ".0"
        elif mant.endswith("."):
            mant += "0"
        return f"{mant}E{int(exp)}"
    s = np.format_float_positional(f, unique=True, trim="0")
    if s.endswith("."):
        s += "0"
    if "." not in s:
        s += ".0"
    return s


def _java_floats(values: Sequence[float]) -> str:
    return "[" + ", ".join(java_float_str(v) for v in values) + "]"



def _parse_error(reason: str, **meta: Any) -> ApiError:
    return ApiError(400, "parse_exception", reason, **{k: v for k, v in meta.items() if v is not None})


def _config_error(ptype: str | None, tag: str | None, prop: str | None, reason: str) -> ApiError:
    msg = reason if prop is None else f"[{prop}] {reason}"
    return _parse_error(msg, processor_type=ptype, processor_tag=tag, property_name=prop)


def _read_str(ptype: str | None, tag: str | None, cfg: dict[str, Any], prop: str,
              default: str | None = None, required: bool = False) -> str | None:
    v = cfg.pop(prop, None)
    if v is None:
        if required and default is None:
            raise _config_error(ptype, tag, prop, "required property is missing")
        return default
    if not isinstance(v, str):
        raise _config_error(ptype, tag, prop, f"property isn't a string, but of type [{java_class(v)}]")
    return v


def _read_bool(ptype: str | None, tag: str | None, cfg: dict[str, Any], prop: str, default: bool) -> bool:
    v = cfg.pop(prop, None)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _config_error(ptype, tag, prop, f"property isn't a boolean, but of type [{java_class(v)}]")
    return v


def _read_map(ptype: str | None, tag: str | None, cfg: dict[str, Any], prop: str) -> dict[str, Any] | None:
    v = cfg.pop(prop, None)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _config_error(ptype, tag, prop, f"property isn't a map, but of type [{java_class(v)}]")
    return v


def _read_list(ptype: str | None, tag: str | None, cfg: dict[str, Any], prop: str) -> list[Any] | None:
    v = cfg.pop(prop, None)
    if v is None:
        return None
    if not isinstance(v, list):
        raise _config_error(ptype, tag, prop, f"property isn't a list, but of type [{java_class(v)}]")
    return v


# --------------------------------------------------------------------------------------------
# Normalization techniques (neural-search processor/normalization)


def _validate_norm_params(params: Mapping[str, Any] | None, top: set[str], nested: dict[str, set[str]]) -> None:
    """``ScoreNormalizationUtil.validateParameters``."""
    if not params:
        return
    unknown = False
    for name, value in params.items():
        if name not in top:
            unknown = True
            continue
        if isinstance(value, dict):
            if nested.get(name) is not None and any(k not in nested[name] for k in value):
                raise bad_request("unrecognized parameters in normalization technique")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    if nested.get(name) is not None and any(k not in nested[name] for k in item):
                        raise bad_request("unrecognized parameters in normalization technique")
                else:
                    unknown = True
        elif nested:
            unknown = True
    if unknown:
        raise bad_request("unrecognized parameters in normalization technique")


_BOUND_MODES = ("apply", "clip", "ignore")


def _bound_mode(value: Any) -> str:
    s = "" if value is None else str(value)
    if not s.strip():
        return "apply"
    if s.lower() not in _BOUND_MODES:
        raise bad_request(f"invalid mode: {s}, valid values are: apply, clip, ignore")
    return s.lower()


class _Bound:
    """``LowerBound`` / ``UpperBound``: enabled only when configured for that sub-query."""

    def __init__(self, lower: bool, cfg: Mapping[str, Any] | None) -> None:
        self.lower = lower
        self.enabled = cfg is not None
        self.mode = _bound_mode(cfg.get("mode")) if cfg else "apply"
        key = "min_score" if lower else "max_score"
        default = 0.0 if lower else 1.0
        raw = None if cfg is None else cfg.get(key)
        self.score = F32(default if raw is None or str(raw) == "" else float(str(raw)))

    def effective(self, score: np.float32, lo: np.float32, hi: np.float32) -> np.float32:
        if self.lower:
            if not self.enabled:
                return lo
            if self.mode == "apply":
                return self.score if (hi > self.score and score > self.score) else lo
            if self.mode == "clip":
                return lo if hi < self.score else self.score
            return lo
        if not self.enabled:
            return hi
        if self.mode == "apply":
            return self.score if (lo < self.score and score < self.score) else hi
        if self.mode == "clip":
            return hi if lo > self.score else self.score
        return hi

    def clip(self, score: np.float32, effective: np.float32) -> bool:
        if not (self.enabled and self.mode == "clip"):
            return False
        return bool(score < effective) if self.lower else bool(score > effective)


def _bounds_param(params: Mapping[str, Any], name: str) -> list[dict[str, Any]] | None:
    if name not in params:
        return None
    value = params.get(name)
    if not isinstance(value, list):
        raise bad_request(f"{name} must be a List")
    if len(value) > MAX_SUB_QUERIES:
        raise bad_request(f"{name} size {len(value)} should be less than or equal to {MAX_SUB_QUERIES}")
    key = "min_score" if name == "lower_bounds" else "max_score"
    for item in value:
        if not isinstance(item, dict):
            raise bad_request("each bound must be a map")
        mode = item.get("mode")
        if mode is not None and str(mode) != "":
            _bound_mode(mode)
        raw = item.get(key)
        if raw is not None:
            try:
                score = float(str(raw))
            except ValueError:
                raise bad_request(f"invalid format for {key}: must be a valid float value") from None
            if not (-10_000.0 <= score <= 10_000.0):
                raise bad_request(f"{key} must be a valid finite number between -10000.000000 and 10000.000000")
    return value


class Normalization(abc.ABC):
    """One normalization technique; ``normalize`` maps per-sub-query scores to normalized ones."""

    name = ""

    @abc.abstractmethod
    def normalize(self, subs: list[list[np.float32]]) -> list[list[np.float32]]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class MinMax(Normalization):
    name = "min_max"

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        _validate_norm_params(params, {"lower_bounds", "upper_bounds"},
                              {"lower_bounds": {"mode", "min_score"}, "upper_bounds": {"mode", "max_score"}})
        params = params or {}
        self.lower = _bounds_param(params, "lower_bounds")
        self.upper = _bounds_param(params, "upper_bounds")

    def normalize(self, subs: list[list[np.float32]]) -> list[list[np.float32]]:
        n = len(subs)
        for bounds in (self.lower, self.upper):
            if bounds is not None and n and len(bounds) != n:
                raise bad_request(
                    f"expected bounds array to contain {n} elements matching the number of sub-queries, "
                    "but found a mismatch"
                )
        out: list[list[np.float32]] = []
        for j, scores in enumerate(subs):
            lo = min(scores) if scores else FLOAT_MAX_VALUE
            hi = max([FLOAT_MIN_VALUE, *scores])
            lb = _Bound(True, self.lower[j] if self.lower is not None else None)
            ub = _Bound(False, self.upper[j] if self.upper is not None else None)
            out.append([self._one(s, F32(lo), F32(hi), lb, ub) for s in scores])
        return out

    @staticmethod
    def _one(s: np.float32, lo: np.float32, hi: np.float32, lb: _Bound, ub: _Bound) -> np.float32:
        if hi == lo and hi == s:
            return F32(1.0)
        emin = lb.effective(s, lo, hi)
        emax = ub.effective(s, lo, hi)
        if lb.clip(s, emin):
            return MIN_MAX_FLOOR
        if ub.clip(s, emax):
            return F32(1.0)
        if emax == emin:
            return F32(1.0)
        v = F32(F32(s - emin) / F32(emax - emin))
        return MIN_MAX_FLOOR if v == 0.0 else v


class L2(Normalization):
    name = "l2"

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        _validate_norm_params(params, set(), {})

    def normalize(self, subs: list[list[np.float32]]) -> list[list[np.float32]]:
        out = []
        for scores in subs:
            acc = F32(0.0)
            for s in scores:
                acc = F32(acc + F32(s * s))
            norm = F32(math.sqrt(float(acc)))
            out.append([F32(0.0) if norm == 0 else F32(s / norm) for s in scores])
        return out


class ZScore(Normalization):
    name = "z_score"

    def normalize(self, subs: list[list[np.float32]]) -> list[list[np.float32]]:
        out = []
        for scores in subs:
            vals = [float(s) for s in scores]
            n = len(vals)
            mean_d = sum(vals) / n if n else float("nan")
            # DescriptiveStatistics#getStandardDeviation: sample (n-1) deviation, 0 for one value
            std_d = (math.sqrt(sum((v - mean_d) ** 2 for v in vals) / (n - 1)) if n > 1 else (0.0 if n else float("nan")))
            mean, std = F32(mean_d), F32(std_d)
            hi = F32(max(vals)) if vals else F32("nan")
            lo = F32(min(vals)) if vals else F32("nan")
            row = []
            for s in scores:
                if mean == s:
                    row.append(hi)
                elif std == 0.0:
                    row.append(lo)
                else:
                    v = F32(F32(s - mean) / std)
                    row.append(MIN_MAX_FLOOR if v <= 0.0 else v)
            out.append(row)
        return out


class RRFNormalization(Normalization):
    """Rank of each hit inside its sub-query → ``1 / (rank_constant + rank)`` (rank 1-based)."""

    name = "rrf"

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        _validate_norm_params(params, {"rank_constant"}, {})
        self.rank_constant = 60
        if params and "rank_constant" in params:
            raw = params["rank_constant"]
            try:
                if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
                    raise ValueError
                value = int(str(raw)) if not isinstance(raw, float) else int(raw)
            except ValueError:
                raise bad_request("parameter [rank_constant] must be an integer") from None
            if not 1 <= value <= 10_000:
                raise bad_request(
                    "rank constant must be in the interval between 1 and 10000, "
                    f"submitted rank constant: {value}"
                )
            self.rank_constant = value

    def normalize(self, subs: list[list[np.float32]]) -> list[list[np.float32]]:
        out = []
        for scores in subs:
            row = []
            for position in range(len(scores)):
                q = (Decimal(1) / Decimal(self.rank_constant + position + 1)).quantize(
                    Decimal("1.0000000000"), rounding=ROUND_HALF_UP)
                row.append(F32(float(q)))
            out.append(row)
        return out

    def describe(self) -> str:
        return f"rrf, rank_constant [{self.rank_constant}]"


_NORMALIZATIONS = {"min_max": MinMax, "l2": L2, "z_score": lambda p: ZScore(), "rrf": RRFNormalization}
_COMPATIBLE = {
    "min_max": ("arithmetic_mean", "geometric_mean", "harmonic_mean"),
    "l2": ("arithmetic_mean", "geometric_mean", "harmonic_mean"),
    "rrf": ("arithmetic_mean", "geometric_mean", "harmonic_mean"),
    "z_score": ("arithmetic_mean",),
}


# --------------------------------------------------------------------------------------------
# Combination techniques (neural-search processor/combination)


class Combination(abc.ABC):
    name = ""

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        if params:
            bad = [k for k in params if k != "weights"]
            if bad:
                raise bad_request(
                    "provided parameter for combination technique is not supported. "
                    "supported parameters are [weights]"
                )
            if "weights" in params and not isinstance(params["weights"], list):
                raise bad_request("parameter [weights] must be a collection of numbers")
        self.weights: list[np.float32] = []
        if params:
            raw = params.get("weights", [])
            try:
                weights = [F32(float(w)) for w in raw]
            except (TypeError, ValueError):
                raise bad_request("parameter [weights] must be a collection of numbers") from None
            if any(not (0.0 <= w <= 1.0) for w in weights):
                raise bad_request(
                    f"all weights must be in range [0.0 ... 1.0], submitted weights: {_java_floats(weights)}"
                )
            total = F32(0.0)
            for w in weights:
                total = F32(total + w)
            if abs(1.0 - float(total)) > 0.01:  # DoubleMath.fuzzyEquals(1.0f, sum, 0.01f)
                raise bad_request(
                    f"sum of weights for combination must be equal to 1.0, submitted weights: {_java_floats(weights)}"
                )
            self.weights = weights

    def weight(self, i: int) -> np.float32:
        return self.weights[i] if i < len(self.weights) else F32(1.0)

    def check(self, scores: Sequence[np.float32]) -> None:
        if self.weights and len(scores) != len(self.weights):
            raise bad_request(
                f"number of weights [{len(self.weights)}] must match number of sub-queries "
                f"[{len(scores)}] in hybrid query"
            )

    def weighted_sum(self, scores: Sequence[np.float32]) -> tuple[np.float32, np.float32]:
        """Σ wᵢ·sᵢ and Σ wᵢ over the sub-queries with a score ≥ 0 (float32, in neural-search's order)."""
        self.check(scores)
        total, wsum = F32(0.0), F32(0.0)
        for i, s in enumerate(scores):
            if s >= 0.0:
                w = self.weight(i)
                total = F32(total + F32(s * w))
                wsum = F32(wsum + w)
        return total, wsum

    @abc.abstractmethod
    def combine(self, scores: Sequence[np.float32]) -> np.float32:
        raise NotImplementedError


class ArithmeticMean(Combination):
    name = "arithmetic_mean"

    def combine(self, scores: Sequence[np.float32]) -> np.float32:
        total, wsum = self.weighted_sum(scores)
        return F32(0.0) if wsum == 0.0 else F32(total / wsum)


class GeometricMean(Combination):
    name = "geometric_mean"

    def combine(self, scores: Sequence[np.float32]) -> np.float32:
        self.check(scores)
        ln_sum, wsum = F32(0.0), F32(0.0)
        for i, s in enumerate(scores):
            if s <= 0:
                continue  # ln(0) is undefined; neural-search skips it
            w = self.weight(i)
            wsum = F32(wsum + w)
            ln_sum = F32(float(ln_sum) + float(w) * math.log(float(s)))
        return F32(0.0) if wsum == 0 else F32(math.exp(float(F32(ln_sum / wsum))))


class HarmonicMean(Combination):
    name = "harmonic_mean"

    def combine(self, scores: Sequence[np.float32]) -> np.float32:
        self.check(scores)
        wsum, hsum = F32(0.0), F32(0.0)
        for i, s in enumerate(scores):
            if s <= 0:
                continue
            w = self.weight(i)
            wsum = F32(wsum + w)
            hsum = F32(hsum + F32(w / s))
        return F32(wsum / hsum) if hsum > 0 else F32(0.0)


class RRFCombination(Combination):
    name = "rrf"

    def combine(self, scores: Sequence[np.float32]) -> np.float32:
        total, wsum = self.weighted_sum(scores)
        return F32(0.0) if wsum == 0.0 else total


_COMBINATIONS: dict[str, type[Combination]] = {
    "arithmetic_mean": ArithmeticMean,
    "geometric_mean": GeometricMean,
    "harmonic_mean": HarmonicMean,
    "rrf": RRFCombination,
}


def _create_combination(name: str, params: Mapping[str, Any] | None) -> Combination:
    cls = _COMBINATIONS.get(name)
    if cls is None:
        raise bad_request("provided combination technique is not supported")
    return cls(params)


def _create_normalization(name: str, params: Mapping[str, Any] | None) -> Normalization:
    factory = _NORMALIZATIONS.get(name)
    if factory is None:
        raise bad_request("provided normalization technique is not supported")
    return factory(params)  # type: ignore[no-any-return,operator]


Key = Hashable


def combine_normalized(per_subquery: Sequence[Sequence[tuple[Key, float]]], normalization: Normalization,
                       combination: Combination) -> list[tuple[Key, float]]:
    """Normalize each sub-query's hits, combine per document, sort by combined score (desc).

    A document missing from a sub-query gets 0.0 there (``ScoreCombiner``), which arithmetic mean
    counts and geometric/harmonic means skip. Ties keep first-appearance order.
    """
    subs: list[list[tuple[Key, float]]] = [
        sorted(list(hits), key=lambda kv: -float(kv[1])) for hits in per_subquery
    ]
    normalized = normalization.normalize([[F32(s) for _, s in hits] for hits in subs])
    n = len(subs)
    table: dict[Key, list[np.float32]] = {}
    for j, hits in enumerate(subs):
        for (key, _), score in zip(hits, normalized[j]):
            row = table.get(key)
            if row is None:
                row = [F32(0.0)] * n
                table[key] = row
            row[j] = score
    combined = [(key, combination.combine(row)) for key, row in table.items()]
    order = {key: i for i, key in enumerate(table)}
    combined.sort(key=lambda kv: (-float(kv[1]), order[kv[0]]))
    return [(key, float(score)) for key, score in combined]


class PhaseProcessor:
    """A configured normalization-processor / score-ranker-processor."""

    def __init__(self, type_: str, tag: str | None, description: str | None,
                 normalization: Normalization, combination: Combination) -> None:
        self.type = type_
        self.tag = tag
        self.description = description
        self.normalization = normalization
        self.combination = combination

    def combine(self, per_subquery: Sequence[Sequence[tuple[Key, float]]]) -> list[tuple[Key, float]]:
        return combine_normalized(per_subquery, self.normalization, self.combination)


def parse_phase_processor(type_: str, config: dict[str, Any]) -> PhaseProcessor:
    """Build a phase-results processor from its config (consumed keys are popped, as in Java)."""
    tag = _read_str(None, None, config, "tag")
    _read_bool(None, None, config, "ignore_failure", False)
    description = _read_str(None, tag, config, "description")
    if type_ == "normalization-processor":
        norm: Normalization = MinMax(None)
        clause = _read_map(type_, tag, config, "normalization")
        if clause is not None:
            name = _read_str(type_, tag, clause, "technique", default="min_max")
            params = _read_map(type_, tag, clause, "parameters")
            norm = _create_normalization(name or "min_max", params)
        comb: Combination = ArithmeticMean(None)
        cclause = _read_map(type_, tag, config, "combination")
        if cclause is not None:
            cname = _read_str(type_, tag, cclause, "technique", default="arithmetic_mean")
            cparams = _read_map(type_, tag, cclause, "parameters")
            comb = _create_combination(cname or "arithmetic_mean", cparams)
        allowed = _COMPATIBLE[norm.name]
        if comb.name not in allowed:
            raise bad_request(
                f"provided combination technique {comb.name} is not supported for normalization technique "
                f"{norm.name}. Supported techniques are: {', '.join(allowed)}"
            )
        return PhaseProcessor(type_, tag, description, norm, comb)
    if type_ == "score-ranker-processor":
        rnorm = RRFNormalization(None)
        rcomb: Combination = RRFCombination(None)
        cclause = _read_map(type_, tag, config, "combination")
        if cclause is not None:
            cname = _read_str(type_, tag, cclause, "technique", default="rrf")
            if "rank_constant" in cclause:
                rnorm = RRFNormalization({"rank_constant": cclause.pop("rank_constant")})
            cparams = _read_map(type_, tag, cclause, "parameters")
            rcomb = _create_combination(cname or "rrf", cparams)
        return PhaseProcessor(type_, tag, description, rnorm, rcomb)
    raise bad_request(f"Invalid processor type {type_}")


# --------------------------------------------------------------------------------------------
# Request and response processors


class RequestProcessor(abc.ABC):
    type = ""

    def __init__(self, tag: str | None, description: str | None, ignore_failure: bool) -> None:
        self.tag = tag
        self.description = description
        self.ignore_failure = ignore_failure

    @abc.abstractmethod
    def process(self, body: dict[str, Any], index: str | None) -> dict[str, Any]:
        raise NotImplementedError


_NEURAL_QUERY_TYPES = ("neural", "neural_sparse")


class NeuralQueryEnricher(RequestProcessor):
    type = "neural_query_enricher"

    def __init__(self, tag: str | None, description: str | None, ignore_failure: bool,
                 config: dict[str, Any]) -> None:
        super().__init__(tag, description, ignore_failure)
        self.default_model_id = _read_str(self.type, tag, config, "default_model_id")
        self.field_map = _read_map(self.type, tag, config, "neural_field_default_id")
        if self.default_model_id is None and self.field_map is None:
            raise bad_request("model Id or neural info map either of them should be provided")

    def process(self, body: dict[str, Any], index: str | None) -> dict[str, Any]:
        query = body.get("query")
        if isinstance(query, dict):
            self._visit(query)
        return body

    def _visit(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                self._visit(item)
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key in _NEURAL_QUERY_TYPES and _is_field_query(value):
                for field, params in value.items():
                    self._fill(field, params)
                    self._visit(params.get("filter"))
            else:
                self._visit(value)

    def _fill(self, field: str, params: dict[str, Any]) -> None:
        if params.get("model_id") is not None:
            return
        if self.field_map and self.field_map.get(field) is not None:
            params["model_id"] = self.field_map[field]
        elif self.default_model_id is not None:
            params["model_id"] = self.default_model_id
        else:
            raise bad_request(
                "model id must be provided in neural query or a default model id must be set in search "
                "request processor"
            )


def _is_field_query(value: Any) -> bool:
    return (isinstance(value, dict) and len(value) == 1
            and all(isinstance(v, dict) for v in value.values()))


class FilterQuery(RequestProcessor):
    type = "filter_query"

    def __init__(self, tag: str | None, description: str | None, ignore_failure: bool,
                 config: dict[str, Any]) -> None:
        super().__init__(tag, description, ignore_failure)
        query = config.pop("query", None)
        if query is None:
            raise _config_error(self.type, tag, "query", "required property is missing")
        if not isinstance(query, dict):
            raise _config_error(self.type, tag, "query", f"property isn't a map, but of type [{java_class(query)}]")
        self.query = query

    def process(self, body: dict[str, Any], index: str | None) -> dict[str, Any]:
        bool_q: dict[str, Any] = {"filter": [copy.deepcopy(self.query)]}
        if body.get("query") is not None:
            bool_q["must"] = [body["query"]]
        body["query"] = {"bool": bool_q}
        return body


class ResponseProcessor(abc.ABC):
    type = ""

    def __init__(self, tag: str | None, description: str | None, ignore_failure: bool) -> None:
        self.tag = tag
        self.description = description
        self.ignore_failure = ignore_failure

    @abc.abstractmethod
    def process(self, response: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class RenameField(ResponseProcessor):
    type = "rename_field"

    def __init__(self, tag: str | None, description: str | None, ignore_failure: bool,
                 config: dict[str, Any]) -> None:
        super().__init__(tag, description, ignore_failure)
        self.field = _read_str(self.type, tag, config, "field", required=True)
        self.target = _read_str(self.type, tag, config, "target_field", required=True)

    def process(self, response: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        for hit in response.get("hits", {}).get("hits", []):
            src = hit.get("_source")
            if isinstance(src, dict) and self.field in src:
                if self.target in src:
                    raise bad_request(f"Document with id {hit.get('_id')} already has a field named {self.target}.")
                src[self.target] = src.pop(self.field)
            elif not self.ignore_failure:
                raise bad_request(f"Document with id {hit.get('_id')} is missing field {self.field}")
        return response


class TruncateHits(ResponseProcessor):
    type = "truncate_hits"

    def __init__(self, tag: str | None, description: str | None, ignore_failure: bool,
                 config: dict[str, Any]) -> None:
        super().__init__(tag, description, ignore_failure)
        raw = config.pop("target_size", None)
        self.target_size: int | None = None
        if raw is not None:
            try:
                self.target_size = int(str(raw))
            except ValueError:
                raise _config_error(self.type, tag, "target_size",
                                    f"property cannot be converted to an int [{raw}]") from None
            if self.target_size < 0:
                raise bad_request("target_size must be positive")
        config.pop("context_prefix", None)

    def process(self, response: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        size = self.target_size
        if size is None:
            size = int(request.get("size", 10))
        hits = response.get("hits", {})
        if isinstance(hits.get("hits"), list):
            hits["hits"] = hits["hits"][:size]
        return response


_REQUEST_FACTORIES = {"neural_query_enricher": NeuralQueryEnricher, "filter_query": FilterQuery}
_RESPONSE_FACTORIES = {"rename_field": RenameField, "truncate_hits": TruncateHits}
_PHASE_TYPES = ("normalization-processor", "score-ranker-processor")


# --------------------------------------------------------------------------------------------
# Pipeline


class SearchPipeline:
    """A parsed search pipeline (named or ad hoc)."""

    def __init__(self, pipeline_id: str, config: Mapping[str, Any]) -> None:
        self.id = pipeline_id
        cfg = copy.deepcopy(dict(config))
        self.description = _read_str(None, None, cfg, "description")
        version = cfg.pop("version", None)
        if version is not None:
            try:
                int(str(version))
            except ValueError:
                raise _config_error(None, None, "version",
                                    f"property cannot be converted to an int [{version}]") from None
        self.version = version
        self.request_processors: list[RequestProcessor] = [
            p for p in self._read(cfg, "request_processors", _REQUEST_FACTORIES, _UNSUPPORTED_REQUEST)
        ]
        self.response_processors: list[ResponseProcessor] = [
            p for p in self._read(cfg, "response_processors", _RESPONSE_FACTORIES, _UNSUPPORTED_RESPONSE)
        ]
        phase: list[PhaseProcessor] = []
        for type_, pcfg in self._entries(cfg, "phase_results_processors"):
            if type_ not in _PHASE_TYPES:
                raise bad_request(f"Invalid processor type {type_}")
            processor = parse_phase_processor(type_, pcfg)
            self._leftovers(type_, processor.tag, pcfg)
            phase.append(processor)
        self.phase_processors = phase
        if cfg:
            raise _parse_error(
                f"pipeline [{pipeline_id}] doesn't support one or more provided configuration parameters "
                f"[{', '.join(cfg)}]"
            )

    @staticmethod
    def _entries(cfg: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
        items = _read_list(None, None, cfg, key)
        out: list[tuple[str, dict[str, Any]]] = []
        for item in items or []:
            if not isinstance(item, dict):
                raise _parse_error(f"[{key}] property isn't a map, but of type [{java_class(item)}]")
            for type_, pcfg in item.items():
                if pcfg is None:
                    pcfg = {}
                if not isinstance(pcfg, dict):
                    raise _config_error(type_, None, None,
                                        f"property isn't a map, but of type [{java_class(pcfg)}]")
                out.append((type_, pcfg))
        return out

    @staticmethod
    def _leftovers(type_: str, tag: str | None, pcfg: dict[str, Any]) -> None:
        if pcfg:
            name = type_ if tag is None else f"{type_}:{tag}"
            raise _parse_error(
                f"processor [{name}] doesn't support one or more provided configuration parameters: "
                f"[{', '.join(pcfg)}]"
            )

    def _read(self, cfg: dict[str, Any], key: str, factories: dict[str, Any], known: set[str]) -> list[Any]:
        out = []
        for type_, pcfg in self._entries(cfg, key):
            if type_ not in factories:
                if type_ in known:
                    raise unsupported(f"search pipeline processor {type_}")
                raise bad_request(f"Invalid processor type {type_}")
            tag = _read_str(None, None, pcfg, "tag")
            ignore_failure = _read_bool(None, None, pcfg, "ignore_failure", False)
            description = _read_str(None, tag, pcfg, "description")
            processor = factories[type_](tag, description, ignore_failure, pcfg)
            self._leftovers(type_, tag, pcfg)
            out.append(processor)
        return out

    # ---- what the core calls

    @property
    def has_hybrid_combiner(self) -> bool:
        return bool(self.phase_processors)

    def process_request(self, body: dict[str, Any], index: str | None = None) -> dict[str, Any]:
        """Run the request processors on a deep copy of the search body."""
        out = copy.deepcopy(body)
        out.pop("search_pipeline", None)
        for p in self.request_processors:
            try:
                out = p.process(out, index)
            except ApiError:
                if not p.ignore_failure:
                    raise
        return out

    def combine_hybrid(self, per_subquery: Sequence[Sequence[tuple[Key, float]]]) -> list[tuple[Key, float]]:
        """Hybrid query results per sub-query → combined, sorted ``(key, score)`` pairs."""
        if not self.phase_processors:
            raise bad_request(f"search pipeline [{self.id}] has no phase results processor for a hybrid query")
        result: list[tuple[Key, float]] = []
        for p in self.phase_processors[:1]:
            result = p.combine(per_subquery)
        return result

    def process_response(self, response: dict[str, Any], request: dict[str, Any] | None = None) -> dict[str, Any]:
        for p in self.response_processors:
            try:
                response = p.process(response, request or {})
            except ApiError:
                if not p.ignore_failure:
                    raise
        return response


# --------------------------------------------------------------------------------------------
# Persistence + REST



def _setting(settings: Mapping[str, Any] | None, key: str) -> Any:
    if not settings:
        return None
    for candidate in (key, key.removeprefix("index.")):
        if candidate in settings:
            return settings[candidate]
    node: Any = settings
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            node = None
            break
        node = node[part]
    if node is None and "index" not in settings:
        node = settings
        for part in key.removeprefix("index.").split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
    return node


class SearchPipelineService(PipelineRest):
    """``/_search/pipeline`` REST API and per-request pipeline resolution."""

    def __init__(self, engine: "Engine | None") -> None:
        self.engine = engine
        self.store = PipelineStore(engine, SYSTEM_INDEX)
        self._parsed: dict[str, tuple[int, SearchPipeline]] = {}

    # ---- library API

    def put(self, pipeline_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _parse_error("request body is required")
        SearchPipeline(pipeline_id, body)  # validate: raises the real errors
        self.store.put(pipeline_id, body)
        self._parsed.pop(pipeline_id, None)
        return {"acknowledged": True}

    def get(self, pipeline_id: str) -> SearchPipeline:
        body = self.store.get(pipeline_id)
        if body is None:
            raise bad_request(f"Pipeline {pipeline_id} is not defined")
        cached = self._parsed.get(pipeline_id)
        if cached is not None and cached[0] == id(body):
            return cached[1]
        pipe = SearchPipeline(pipeline_id, body)
        self._parsed[pipeline_id] = (id(body), pipe)
        return pipe

    def resolve(self, index_settings: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
                params: Mapping[str, str] | None, body: Mapping[str, Any] | None) -> SearchPipeline | None:
        """The pipeline a search runs through, or None.

        Order as ``SearchPipelineService#resolvePipeline``: an inline ``search_pipeline`` in the body
        (error if a named one is given too); else ``?search_pipeline=`` (``_none`` = no pipeline);
        else ``index.search.default_pipeline`` when the request targets exactly one index.
        """
        named = (params or {}).get("search_pipeline")
        inline = (body or {}).get("search_pipeline") if isinstance(body, Mapping) else None
        if inline is not None:
            if named is not None:
                raise bad_request("Both named and inline search pipeline were specified")
            if not isinstance(inline, dict):
                raise _parse_error("[search_pipeline] must be an object")
            return SearchPipeline("_ad_hoc_pipeline", inline)
        pipeline_id = named
        if pipeline_id is None:
            settings_list: Sequence[Mapping[str, Any]]
            if index_settings is None:
                settings_list = []
            elif isinstance(index_settings, Mapping):
                settings_list = [index_settings]
            else:
                settings_list = list(index_settings)
            if len(settings_list) == 1:
                default = _setting(settings_list[0], "index.search.default_pipeline")
                if isinstance(default, str) and default:
                    pipeline_id = default
        if pipeline_id is None or pipeline_id == NONE_PIPELINE:
            return None
        return self.get(pipeline_id)

    # ---- REST

    def routes(self) -> list["Route"]:
        from kit.node.routing import Route

        return [
            Route("GET", "/_search/pipeline", self._rest_get_all),
            Route("GET", "/_search/pipeline/{id}", self._rest_get),
            Route("PUT", "/_search/pipeline/{id}", self._rest_put),
            Route("DELETE", "/_search/pipeline/{id}", self._rest_delete),
        ]


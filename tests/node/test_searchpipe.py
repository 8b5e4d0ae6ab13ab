"""Search pipelines without the node: processor configs, the hybrid score math, resolution.

Expected numbers are worked by hand from neural-search's formulas (see comments); comparisons allow
float32 rounding only.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from kit.node.errors import ApiError
from kit.node.searchpipe import SearchPipeline, SearchPipelineService, java_float_str

SUB0 = [("a", 10.0), ("b", 5.0), ("c", 2.0)]
SUB1 = [("b", 0.9), ("d", 0.3)]


def norm_pipe(normalization: dict[str, Any] | None = None, combination: dict[str, Any] | None = None) -> SearchPipeline:
    cfg: dict[str, Any] = {}
    if normalization is not None:
        cfg["normalization"] = normalization
    if combination is not None:
        cfg["combination"] = combination
    return SearchPipeline("p", {"phase_results_processors": [{"normalization-processor": cfg}]})


def rrf_pipe(combination: dict[str, Any] | None = None) -> SearchPipeline:
    cfg = {} if combination is None else {"combination": combination}
    return SearchPipeline("p", {"phase_results_processors": [{"score-ranker-processor": cfg}]})


def check(result: list[tuple[Any, float]], expected: list[tuple[str, float]]) -> None:
    assert [k for k, _ in result] == [k for k, _ in expected]
    for (_, got), (_, want) in zip(result, expected):
        assert got == pytest.approx(want, rel=2e-6, abs=1e-9)


def err(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    return exc.value.status, exc.value.type, exc.value.reason


# ---- normalization-processor math


def test_min_max_arithmetic_default_weights() -> None:
    # sub0: min 2 max 10 → a 1.0, b 3/8, c 0 → 0.001 floor; sub1: b 1.0, d 0 → 0.001.
    # Missing sub-query scores are 0.0 and count in the arithmetic mean (ScoreCombiner).
    check(norm_pipe().combine_hybrid([SUB0, SUB1]),
          [("b", (0.375 + 1.0) / 2), ("a", 0.5), ("c", 0.0005), ("d", 0.0005)])


def test_min_max_arithmetic_weights() -> None:
    pipe = norm_pipe({"technique": "min_max"}, {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.7]}})
    check(pipe.combine_hybrid([SUB0, SUB1]),
          [("b", 0.3 * 0.375 + 0.7), ("a", 0.3), ("d", 0.7 * 0.001), ("c", 0.3 * 0.001)])


def test_min_max_geometric_skips_missing() -> None:
    pipe = norm_pipe(None, {"technique": "geometric_mean"})
    check(pipe.combine_hybrid([SUB0, SUB1]),
          [("a", 1.0), ("b", math.sqrt(0.375)), ("c", 0.001), ("d", 0.001)])


def test_min_max_harmonic() -> None:
    pipe = norm_pipe(None, {"technique": "harmonic_mean", "parameters": {"weights": [0.5, 0.5]}})
    # b: (0.5+0.5) / (0.5/0.375 + 0.5/1.0) = 1 / 1.8333…
    check(pipe.combine_hybrid([SUB0, SUB1]),
          [("a", 1.0), ("b", 1.0 / (0.5 / 0.375 + 0.5)), ("c", 0.001), ("d", 0.001)])


def test_l2_arithmetic() -> None:
    n0, n1 = math.sqrt(100 + 25 + 4), math.sqrt(0.81 + 0.09)
    check(norm_pipe({"technique": "l2"}).combine_hybrid([SUB0, SUB1]),
          [("b", (5 / n0 + 0.9 / n1) / 2), ("a", 10 / n0 / 2), ("d", 0.3 / n1 / 2), ("c", 2 / n0 / 2)])


def test_z_score_uses_sample_deviation_and_floor() -> None:
    mean0 = 17 / 3
    std0 = math.sqrt(((10 - mean0) ** 2 + (5 - mean0) ** 2 + (2 - mean0) ** 2) / 2)
    std1 = math.sqrt((0.3**2 + 0.3**2) / 1)
    check(norm_pipe({"technique": "z_score"}).combine_hybrid([SUB0, SUB1]),
          [("a", (10 - mean0) / std0 / 2), ("b", (0.001 + 0.3 / std1) / 2), ("c", 0.0005), ("d", 0.0005)])


def test_single_hit_sub_query_normalizes_to_one() -> None:
    check(norm_pipe().combine_hybrid([[("x", 3.0)], [("x", 0.2)]]), [("x", 1.0)])


def test_lower_bound_apply_uses_bound_as_min() -> None:
    pipe = norm_pipe({"technique": "min_max", "parameters": {"lower_bounds": [{"mode": "apply", "min_score": 0.0}]}})
    # effective min 0.0 instead of 0.6: 0.8 → 1.0, 0.6 → 0.75 (plain min_max would give 0.001)
    check(pipe.combine_hybrid([[("p", 0.8), ("q", 0.6)]]), [("p", 1.0), ("q", 0.75)])


def test_bounds_clip() -> None:
    upper = norm_pipe({"technique": "min_max", "parameters": {"upper_bounds": [{"mode": "clip", "max_score": 0.7}]}})
    check(upper.combine_hybrid([[("p", 0.8), ("q", 0.6), ("r", 0.5)]]),
          [("p", 1.0), ("q", (0.6 - 0.5) / (0.7 - 0.5)), ("r", 0.001)])
    lower = norm_pipe({"technique": "min_max", "parameters": {"lower_bounds": [{"mode": "clip", "min_score": 0.55}]}})
    check(lower.combine_hybrid([[("p", 0.8), ("q", 0.6), ("r", 0.5)]]),
          [("p", 1.0), ("q", (0.6 - 0.55) / (0.8 - 0.55)), ("r", 0.001)])


def test_bounds_count_must_match_sub_queries() -> None:
    pipe = norm_pipe({"technique": "min_max", "parameters": {"lower_bounds": [{"mode": "ignore"}]}})
    with pytest.raises(ApiError) as e:
        pipe.combine_hybrid([SUB0, SUB1])
    assert err(e) == (400, "illegal_argument_exception",
                      "expected bounds array to contain 2 elements matching the number of sub-queries, but found a mismatch")


# ---- score-ranker-processor (RRF)


def test_rrf_default_rank_constant() -> None:
    check(rrf_pipe().combine_hybrid([SUB0, SUB1]),
          [("b", 1 / 62 + 1 / 61), ("a", 1 / 61), ("d", 1 / 62), ("c", 1 / 63)])


def test_rrf_rank_constant_and_weights() -> None:
    pipe = rrf_pipe({"technique": "rrf", "rank_constant": 1, "parameters": {"weights": [0.2, 0.8]}})
    # rank scores 1/(1+rank): sub0 a .5 b .3333 c .25; sub1 b .5 d .3333; weighted sums
    check(pipe.combine_hybrid([SUB0, SUB1]),
          [("b", 0.2 / 3 + 0.4), ("d", 0.8 / 3), ("a", 0.1), ("c", 0.05)])


def test_rrf_unsorted_input_is_ranked_by_score() -> None:
    check(rrf_pipe().combine_hybrid([[("low", 1.0), ("high", 9.0)]]), [("high", 1 / 61), ("low", 1 / 62)])


# ---- validation errors at PUT (the real messages)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"phase_results_processors": [{"normalization-processor": {"combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.8]}}}}]},
         "sum of weights for combination must be equal to 1.0, submitted weights: [0.3, 0.8]"),
        ({"phase_results_processors": [{"normalization-processor": {"combination": {"parameters": {"weights": [1.5, -0.5]}}}}]},
         "all weights must be in range [0.0 ... 1.0], submitted weights: [1.5, -0.5]"),
        ({"phase_results_processors": [{"normalization-processor": {"combination": {"parameters": {"weights": 0.5}}}}]},
         "parameter [weights] must be a collection of numbers"),
        ({"phase_results_processors": [{"normalization-processor": {"combination": {"parameters": {"w": [1.0]}}}}]},
         "provided parameter for combination technique is not supported. supported parameters are [weights]"),
        ({"phase_results_processors": [{"normalization-processor": {"normalization": {"technique": "softmax"}}}]},
         "provided normalization technique is not supported"),
        ({"phase_results_processors": [{"normalization-processor": {"combination": {"technique": "max"}}}]},
         "provided combination technique is not supported"),
        ({"phase_results_processors": [{"normalization-processor": {"normalization": {"technique": "z_score"}, "combination": {"technique": "geometric_mean"}}}]},
         "provided combination technique geometric_mean is not supported for normalization technique z_score. Supported techniques are: arithmetic_mean"),
        ({"phase_results_processors": [{"normalization-processor": {"normalization": {"technique": "l2", "parameters": {"x": 1}}}}]},
         "unrecognized parameters in normalization technique"),
        ({"phase_results_processors": [{"normalization-processor": {"normalization": {"parameters": {"lower_bounds": [{"mode": "hard"}]}}}}]},
         "invalid mode: hard, valid values are: apply, clip, ignore"),
        ({"phase_results_processors": [{"score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": 0}}}]},
         "rank constant must be in the interval between 1 and 10000, submitted rank constant: 0"),
        ({"phase_results_processors": [{"score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": 10001}}}]},
         "rank constant must be in the interval between 1 and 10000, submitted rank constant: 10001"),
        ({"request_processors": [{"normalization-processor": {}}]}, "Invalid processor type normalization-processor"),
        ({"response_processors": [{"nope": {}}]}, "Invalid processor type nope"),
        ({"request_processors": [{"neural_query_enricher": {}}]},
         "model Id or neural info map either of them should be provided"),
    ],
)
def test_put_validation_errors(body: dict[str, Any], reason: str) -> None:
    svc = SearchPipelineService(None)
    with pytest.raises(ApiError) as e:
        svc.put("bad", body)
    assert err(e) == (400, "illegal_argument_exception", reason)
    assert svc.store.all() == {}


def test_weight_count_checked_against_sub_queries() -> None:
    pipe = norm_pipe(None, {"technique": "arithmetic_mean", "parameters": {"weights": [0.5, 0.5]}})
    with pytest.raises(ApiError) as e:
        pipe.combine_hybrid([SUB0, SUB1, [("z", 1.0)]])
    assert err(e)[2] == "number of weights [2] must match number of sub-queries [3] in hybrid query"


def test_unknown_pipeline_and_processor_keys_are_parse_errors() -> None:
    with pytest.raises(ApiError) as e:
        SearchPipeline("p", {"phase_results_processors": [], "bogus": 1})
    assert err(e) == (400, "parse_exception",
                      "pipeline [p] doesn't support one or more provided configuration parameters [bogus]")
    with pytest.raises(ApiError) as e:
        SearchPipeline("p", {"request_processors": [{"neural_query_enricher": {"default_model_id": "m", "tag": "t", "x": 1}}]})
    assert err(e) == (400, "parse_exception",
                      "processor [neural_query_enricher:t] doesn't support one or more provided configuration parameters: [x]")


def test_real_but_unsupported_processor_names_the_feature() -> None:
    with pytest.raises(ApiError) as e:
        SearchPipeline("p", {"response_processors": [{"rerank": {}}]})
    assert "search pipeline processor rerank" in e.value.reason


def test_java_float_formatting() -> None:
    assert [java_float_str(x) for x in (0.3, 1.0, 0.7, 1e-4, 2.5e7, 0.1)] == ["0.3", "1.0", "0.7", "1.0E-4", "2.5E7", "0.1"]


# ---- request processors


def test_neural_query_enricher_fills_model_ids_at_any_depth() -> None:
    pipe = SearchPipeline("p", {"request_processors": [{"neural_query_enricher": {
        "default_model_id": "text-model", "neural_field_default_id": {"image_vec": "clip-model"}}}]})
    body = {"query": {"hybrid": {"queries": [
        {"match": {"neural": "a field called neural is not a neural query"}},
        {"neural": {"image_vec": {"query_text": "red", "k": 5}}},
        {"bool": {"should": [{"neural": {"title_vec": {"query_text": "red"}}},
                             {"neural_sparse": {"sparse": {"query_text": "red", "model_id": "given"}}}]}},
    ]}}}
    out = pipe.process_request(body, "idx")
    q = out["query"]["hybrid"]["queries"]
    assert q[0] == {"match": {"neural": "a field called neural is not a neural query"}}
    assert q[1]["neural"]["image_vec"]["model_id"] == "clip-model"
    assert q[2]["bool"]["should"][0]["neural"]["title_vec"]["model_id"] == "text-model"
    assert q[2]["bool"]["should"][1]["neural_sparse"]["sparse"]["model_id"] == "given"
    assert "model_id" not in body["query"]["hybrid"]["queries"][1]["neural"]["image_vec"]  # input untouched


def test_neural_query_enricher_without_default_for_field() -> None:
    pipe = SearchPipeline("p", {"request_processors": [{"neural_query_enricher": {"neural_field_default_id": {"a": "m"}}}]})
    with pytest.raises(ApiError) as e:
        pipe.process_request({"query": {"neural": {"b": {"query_text": "x"}}}})
    assert err(e) == (400, "illegal_argument_exception",
                      "model id must be provided in neural query or a default model id must be set in search request processor")


def test_filter_query_wraps_query() -> None:
    pipe = SearchPipeline("p", {"request_processors": [{"filter_query": {"query": {"term": {"x": 1}}}}]})
    assert pipe.process_request({"query": {"match_all": {}}, "search_pipeline": {"x": 1}}) == {
        "query": {"bool": {"filter": [{"term": {"x": 1}}], "must": [{"match_all": {}}]}}}


def test_response_processors() -> None:
    pipe = SearchPipeline("p", {"response_processors": [{"rename_field": {"field": "a", "target_field": "b"}},
                                                        {"truncate_hits": {"target_size": 1}}]})
    resp = {"hits": {"hits": [{"_id": "1", "_source": {"a": 1}}, {"_id": "2", "_source": {"a": 2}}]}}
    assert pipe.process_response(resp)["hits"]["hits"] == [{"_id": "1", "_source": {"b": 1}}]


# ---- CRUD + resolve (memory store)


def test_crud_and_resolution() -> None:
    svc = SearchPipelineService(None)
    body = {"description": "d", "phase_results_processors": [{"normalization-processor": {}}]}
    assert svc.put("hybrid", body) == {"acknowledged": True}
    assert svc.store.all() == {"hybrid": body}
    assert svc.resolve({"index.search.default_pipeline": "hybrid"}, {}, {}).id == "hybrid"  # type: ignore[union-attr]
    assert svc.resolve({"index": {"search": {"default_pipeline": "hybrid"}}}, {}, {}).id == "hybrid"  # type: ignore[union-attr]
    assert svc.resolve({"index.search.default_pipeline": "hybrid"}, {"search_pipeline": "_none"}, {}) is None
    assert svc.resolve([{"index.search.default_pipeline": "hybrid"}, {}], {}, {}) is None  # two indices: no default
    assert svc.resolve(None, {"search_pipeline": "hybrid"}, None).has_hybrid_combiner  # type: ignore[union-attr]
    inline = svc.resolve(None, {}, {"search_pipeline": {"phase_results_processors": [{"score-ranker-processor": {}}]}})
    assert inline is not None and inline.id == "_ad_hoc_pipeline"
    with pytest.raises(ApiError) as e:
        svc.resolve(None, {"search_pipeline": "hybrid"}, {"search_pipeline": {}})
    assert err(e)[2] == "Both named and inline search pipeline were specified"
    with pytest.raises(ApiError) as e:
        svc.resolve(None, {"search_pipeline": "nope"}, {})
    assert err(e) == (400, "illegal_argument_exception", "Pipeline nope is not defined")

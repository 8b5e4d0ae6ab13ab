"""Hybrid search: which fields the BM25 half reads and the per-field weights sent as a temporary
search pipeline (unit tests with a recording client, plus the embedded node combining by those weights)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kit.errors import KitError, NotFound
from kit.job.search import HYBRID_WEIGHTS, build_search, forget_index_info, search, weighted_pipeline

ENRICHER = {"neural_query_enricher": {"default_model_id": "text-id",
                                      "neural_field_default_id": {"image_embedding": "clip-id"}}}
STORED = {"description": "images", "request_processors": [ENRICHER],
          "phase_results_processors": [{"normalization-processor": {
              "normalization": {"technique": "min_max"}, "combination": {"technique": "arithmetic_mean"}}}]}


class Recorder:
    """Answers the calls ``kit.job.search.search`` (and ``oskit search``) make and keeps the search requests."""

    def __init__(self, pipeline: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.searches: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                **_: Any) -> dict[str, Any]:
        if method == "GET" and path.startswith("/_alias/"):  # searches resolve an alias first: an index here
            raise NotFound(f"alias [{path[8:]}] missing")
        if method == "GET" and path == "/images":
            return {"images": {"mappings": {"properties": {"tags": {"type": "text"}}},
                               "settings": {"index": {"search": {"default_pipeline": "images-search"}}}}}
        if method == "GET" and path.startswith("/_search/pipeline/"):
            return {path.rsplit("/", 1)[1]: self.pipeline}
        if method == "GET" and path == "/images/_count":  # `oskit search` asks when nothing was found
            return {"count": 1}
        assert (method, path) == ("POST", "/images/_search")
        self.searches.append((body, params))
        return {"hits": {"hits": []}}


@pytest.fixture()
def recorder() -> Any:
    client = Recorder(copy.deepcopy(STORED))
    yield client
    forget_index_info(client)


def test_weighted_pipeline_copies_processors_and_sets_weights() -> None:
    stored = copy.deepcopy(STORED)
    out = weighted_pipeline(stored, (0.4, 0.6))
    assert stored == STORED  # the stored definition is not touched
    assert out["request_processors"] == [ENRICHER]  # the model ids still reach the neural sub-query
    norm = out["phase_results_processors"][0]["normalization-processor"]
    assert norm["normalization"] == {"technique": "min_max"}
    assert norm["combination"] == {"technique": "arithmetic_mean", "parameters": {"weights": [0.4, 0.6]}}
    assert "description" not in out
    rrf = {"phase_results_processors": [{"score-ranker-processor": {"combination": {"technique": "rrf"}}}]}
    assert weighted_pipeline(rrf, (0.3, 0.7)) == rrf  # RRF weights need 3.1+: left as configured


@pytest.mark.parametrize("weights", [(0.5, 0.6), (1.2, -0.2), (1.0,), (0.2, 0.3, 0.5)])
def test_weighted_pipeline_rejects_bad_weights(weights: tuple[float, ...]) -> None:
    with pytest.raises(KitError, match="hybrid weights"):
        weighted_pipeline(STORED, weights)


@pytest.mark.parametrize("field", ["image", "ocr_text"])
def test_hybrid_sends_per_field_weights_inline(recorder: Recorder, field: str) -> None:
    search(recorder, "STOP", mode="hybrid", field=field, k=10)
    body, params = recorder.searches[-1]
    assert params is None  # the pipeline travels in the body, never also by name
    combination = body["search_pipeline"]["phase_results_processors"][0]["normalization-processor"]["combination"]
    assert combination["parameters"]["weights"] == list(HYBRID_WEIGHTS[field])
    assert body["search_pipeline"]["request_processors"] == [ENRICHER]
    assert list(body["query"]) == ["hybrid"]


def test_pipeline_weights_named_pipelines_and_explicit_weights_win(recorder: Recorder) -> None:
    search(recorder, "STOP", mode="hybrid", search_pipeline="my-pipe")
    body, params = recorder.searches[-1]
    assert "search_pipeline" not in body and params == {"search_pipeline": "my-pipe"}

    search(recorder, "STOP", mode="hybrid", search_pipeline="my-pipe", hybrid_weights=(0.2, 0.8))
    body, params = recorder.searches[-1]
    assert params is None
    assert body["search_pipeline"]["phase_results_processors"][0]["normalization-processor"][
        "combination"]["parameters"]["weights"] == [0.2, 0.8]

    search(recorder, "STOP", mode="vector")
    body, params = recorder.searches[-1]
    assert "search_pipeline" not in body and params is None  # only hybrid combines scores


def test_a_pipeline_with_its_own_weights_is_respected() -> None:
    stored = copy.deepcopy(STORED)
    stored["phase_results_processors"][0]["normalization-processor"]["combination"]["parameters"] = {
        "weights": [0.3, 0.7]}
    client = Recorder(stored)
    try:
        search(client, "STOP", mode="hybrid")
        body, params = client.searches[-1]
        assert "search_pipeline" not in body and params is None  # the index's default pipeline applies
    finally:
        forget_index_info(client)


def test_bm25_half_reads_printed_text_and_captions_not_zero_shot_tags() -> None:
    lexical = build_search("red circle", mode="hybrid")["query"]["hybrid"]["queries"][0]
    assert lexical == {"multi_match": {"query": "red circle", "fields": ["ocr_text", "caption"],
                                       "operator": "or", "type": "most_fields"}}
    # the tags baseline still matches tags; human-written fields can be added to hybrid explicitly
    assert build_search("red", mode="tags")["query"] == {"match": {"tags": {"query": "red", "operator": "or"}}}
    custom = build_search("red", mode="hybrid", lexical_fields=["metadata.title", "ocr_text"])
    assert custom["query"]["hybrid"]["queries"][0]["multi_match"]["fields"] == ["metadata.title", "ocr_text"]
    # --all-terms: every word within one field, a multi_match type real OpenSearch and the node both run
    strict = build_search("red circle", mode="hybrid", all_terms=True)["query"]["hybrid"]["queries"][0]
    assert strict["multi_match"]["operator"] == "and" and strict["multi_match"]["type"] == "most_fields"


def test_node_combines_hybrid_scores_by_the_inline_weights(fresh_node: Any) -> None:
    """The temporary pipeline reaches the node's normalization-processor: min-max, then weighted mean."""
    from kit.cluster.client import connect

    client = connect(fresh_node.url)
    try:
        client.request("PUT", "/w", body={
            "settings": {"index.knn": True},
            "mappings": {"properties": {"ocr_text": {"type": "text"},
                                        "vec": {"type": "knn_vector", "dimension": 2, "space_type": "l2"}}}})
        docs = {"a": ("stop stop", [1.0, 0.0]), "b": ("stop", [0.0, 1.0]), "c": ("exit", [0.9, 0.1])}
        for doc_id, (text, vec) in docs.items():
            client.request("PUT", f"/w/_doc/{doc_id}", body={"ocr_text": text, "vec": vec}, params={"refresh": "true"})
        stored = {"phase_results_processors": [{"normalization-processor": {
            "normalization": {"technique": "min_max"}, "combination": {"technique": "arithmetic_mean"}}}]}
        query = {"hybrid": {"queries": [{"match": {"ocr_text": "stop"}},
                                        {"knn": {"vec": {"vector": [0.0, 1.0], "k": 3}}}]}}

        def ranked(weights: tuple[float, float]) -> list[tuple[str, float]]:
            resp = client.request("POST", "/w/_search", body={
                "size": 3, "query": query, "search_pipeline": weighted_pipeline(stored, weights)})
            return [(h["_id"], round(h["_score"], 3)) for h in resp["hits"]["hits"]]

        # BM25: a > b (c absent). k-NN: b (1.0) > c > a (min → 0.001). Min-max per sub-query, then the
        # weighted mean over both sub-queries (a missing one counts as 0).
        lexical_led = ranked((0.9, 0.1))
        vector_led = ranked((0.1, 0.9))
        assert lexical_led[0][0] == "a" and vector_led[0][0] == "b"
        assert dict(vector_led)["b"] == pytest.approx(0.1 * 0.001 + 0.9 * 1.0, abs=2e-3)
        assert dict(lexical_led)["a"] == pytest.approx(0.9 * 1.0 + 0.1 * 0.001, abs=2e-3)
    finally:
        client.close()


def test_stored_pipeline_is_reread_after_its_ttl(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary pipeline copies model ids: a changed stored pipeline is picked up, not cached forever."""
    import kit.job.search as ks

    search(recorder, "STOP", mode="hybrid")
    recorder.pipeline = copy.deepcopy(STORED)
    recorder.pipeline["request_processors"][0]["neural_query_enricher"]["default_model_id"] = "new-id"
    search(recorder, "STOP", mode="hybrid")  # within the TTL: the cached definition
    assert recorder.searches[-1][0]["search_pipeline"]["request_processors"] == [ENRICHER]
    monkeypatch.setattr(ks, "_PIPELINE_TTL_S", 0.0)
    search(recorder, "STOP", mode="hybrid")
    enricher = recorder.searches[-1][0]["search_pipeline"]["request_processors"][0]["neural_query_enricher"]
    assert enricher["default_model_id"] == "new-id"


@pytest.mark.parametrize("value", ["0.3", "a,b", "0.3,0.3,0.4"])
def test_cli_rejects_malformed_hybrid_weights_before_connecting(value: str) -> None:
    from click.testing import CliRunner

    from kit.cli import cli

    r = CliRunner().invoke(cli, ["search", "red", "--mode", "hybrid", "--hybrid-weights", value,
                                 "--url", "http://127.0.0.1:9"])
    assert r.exit_code == 2, r.output
    assert "--hybrid-weights" in r.output and "e.g. 0.3,0.7" in r.output


def test_cli_hybrid_weights_reach_the_request(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """``oskit search --hybrid-weights 0.2,0.8`` sends exactly those weights in the temporary pipeline."""
    import contextlib

    from click.testing import CliRunner

    import kit.cli.job
    from kit.cli import cli

    monkeypatch.setattr(kit.cli.job, "_client", lambda conn: contextlib.nullcontext(recorder))
    r = CliRunner().invoke(cli, ["search", "red", "--mode", "hybrid", "--hybrid-weights", "0.2,0.8", "--json"])
    assert r.exit_code == 0, r.output
    (body, _), = recorder.searches
    norm = body["search_pipeline"]["phase_results_processors"][0]["normalization-processor"]
    assert norm["combination"]["parameters"]["weights"] == [0.2, 0.8]

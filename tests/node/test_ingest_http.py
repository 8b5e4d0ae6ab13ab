"""Ingest pipelines through the real node over HTTP, with real ML Commons calling a loopback model server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from kit.node.server import NodeServer
from .test_ingest_helpers import image_text, model_server, ok, register_models, vec

IMAGES_PIPELINE = {
    "description": "OCR, CLIP and text embeddings, like pipelines/images-ingest.yaml",
    "processors": [
        {"ml_inference": {"model_id": "{ocr}", "input_map": [{"inputImage": "image"}],
                          "output_map": [{"ocr_text": "text"}]}},
        {"text_image_embedding": {"model_id": "{clip}", "embedding": "image_embedding",
                                  "field_map": {"image": "image"}}},
        {"text_embedding": {"model_id": "{text}", "field_map": {"ocr_text": "ocr_embedding", "tags": "tag_vecs"}}},
        {"remove": {"field": "image"}},
    ],
}

MAPPINGS = {"properties": {
    "ocr_text": {"type": "text"},
    "image_embedding": {"type": "knn_vector", "dimension": 5, "space_type": "cosinesimil",
                        "method": {"name": "hnsw", "engine": "faiss"}},
    "ocr_embedding": {"type": "knn_vector", "dimension": 5, "space_type": "cosinesimil",
                      "method": {"name": "hnsw", "engine": "faiss"}},
}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("node")
    with NodeServer(data) as node:
        for endpoint, calls in model_server():
            models = register_models(node.url, endpoint)
            yield {"url": node.url, "models": models, "calls": calls, "data": data, "node": node}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pipeline_body(models: dict[str, str]) -> dict[str, Any]:
    import json

    text = json.dumps(IMAGES_PIPELINE)
    for name, model_id in models.items():
        text = text.replace("{" + name + "}", model_id)
    return dict(json.loads(text))


def test_pipeline_crud_shapes(env: dict[str, Any]) -> None:
    url = env["url"]
    assert ok(requests.put(f"{url}/_ingest/pipeline/books", json={"description": "d", "processors": []})) == {"acknowledged": True}
    assert ok(requests.get(f"{url}/_ingest/pipeline/books")) == {"books": {"description": "d", "processors": []}}
    assert "books" in ok(requests.get(f"{url}/_ingest/pipeline"))
    assert "books" in ok(requests.get(f"{url}/_ingest/pipeline/bo*"))
    missing = requests.get(f"{url}/_ingest/pipeline/nope")
    assert (missing.status_code, missing.json()) == (404, {})
    assert ok(requests.delete(f"{url}/_ingest/pipeline/books")) == {"acknowledged": True}
    gone = requests.delete(f"{url}/_ingest/pipeline/books")
    assert gone.status_code == 404
    assert gone.json()["error"]["type"] == "resource_not_found_exception"
    assert gone.json()["error"]["reason"] == "pipeline [books] is missing"

    bad = requests.put(f"{url}/_ingest/pipeline/bad", json={"processors": [{"nope": {}}]})
    assert bad.status_code == 400
    assert bad.json()["error"]["root_cause"][0] == {"type": "parse_exception",
                                                    "reason": "No processor type exists with name [nope]",
                                                    "processor_type": "nope"}


def test_index_through_default_pipeline(env: dict[str, Any]) -> None:
    url, models = env["url"], env["models"]
    ok(requests.put(f"{url}/_ingest/pipeline/images-ingest", json=pipeline_body(models)))
    ok(requests.put(f"{url}/images", json={"settings": {"index.knn": True, "index.default_pipeline": "images-ingest"},
                                           "mappings": MAPPINGS}))
    resp = requests.put(f"{url}/images/_doc/1?refresh=true", json={"image": b64("red shoe"), "tags": ["car", "blue"]})
    assert resp.status_code == 201, resp.text
    src = ok(requests.get(f"{url}/images/_doc/1"))["_source"]
    assert "image" not in src
    assert src["ocr_text"] == "red shoe"
    assert src["image_embedding"] == pytest.approx(vec("red shoe"))
    assert src["ocr_embedding"] == pytest.approx(vec("red shoe"))
    assert [t["knn"] for t in src["tag_vecs"]] == [pytest.approx(vec("car")), pytest.approx(vec("blue"))]

    # text_docs = [null, image]: ML Commons' multimodal pre-process turns the null into the *string*
    # "null" (gson.toJson(null)), so "${parameters.inputText:-null}" is not defaulted and the server
    # receives "null" — as a real cluster sends it.
    clip_calls = [b for p, b in env["calls"] if p == "/clip/embed"]
    assert clip_calls[-1] == {"inputText": "null", "inputImage": b64("red shoe")}
    assert image_text(clip_calls[-1]["inputImage"]) == "red shoe"

    # The indexed vector is searchable.
    hits = ok(requests.post(f"{url}/images/_search", json={
        "query": {"knn": {"image_embedding": {"vector": vec("red shoe"), "k": 1}}}}))["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1"]


def test_simulate_verbose_over_http(env: dict[str, Any]) -> None:
    url, models = env["url"], env["models"]
    ok(requests.put(f"{url}/_ingest/pipeline/images-ingest", json=pipeline_body(models)))
    out = ok(requests.post(f"{url}/_ingest/pipeline/images-ingest/_simulate?verbose=true",
                           json={"docs": [{"_index": "images", "_id": "x", "_source": {"image": b64("blue car")}}]}))
    steps = out["docs"][0]["processor_results"]
    assert [(s["processor_type"], s["status"]) for s in steps] == [
        ("ml_inference", "success"), ("text_image_embedding", "success"), ("text_embedding", "success"),
        ("remove", "success")]
    assert steps[0]["doc"]["_source"]["ocr_text"] == "blue car"
    assert "image" not in steps[-1]["doc"]["_source"]
    assert steps[-1]["doc"]["_ingest"]["pipeline"] == "images-ingest"

    plain = ok(requests.post(f"{url}/_ingest/pipeline/_simulate", json={
        "pipeline": {"processors": [{"uppercase": {"field": "t"}}]},
        "docs": [{"_source": {"t": "a"}}, {"_source": {"t": 1}}]}))
    assert plain["docs"][0]["doc"]["_source"] == {"t": "A"}
    assert plain["docs"][1]["error"]["type"] == "illegal_argument_exception"


def test_ingest_errors_over_http(env: dict[str, Any]) -> None:
    url = env["url"]
    ok(requests.put(f"{url}/_ingest/pipeline/ghost-model", json={"processors": [
        {"text_embedding": {"model_id": "no-such-model", "field_map": {"t": "v"}}}]}))
    ok(requests.put(f"{url}/plain", json={}))
    resp = requests.put(f"{url}/plain/_doc/1?pipeline=ghost-model", json={"t": "hello"})
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["type"] == "status_exception"
    resp = requests.put(f"{url}/plain/_doc/2?pipeline=does-not-exist", json={"t": "hello"})
    assert resp.status_code == 400
    assert resp.json()["error"]["reason"] == "pipeline with id [does-not-exist] does not exist"
    ok(requests.put(f"{url}/_ingest/pipeline/failing", json={"processors": [{"fail": {"message": "no {{t}}"}}]}))
    resp = requests.put(f"{url}/plain/_doc/3?pipeline=failing", json={"t": "way"})
    assert (resp.status_code, resp.json()["error"]["type"], resp.json()["error"]["reason"]) == (
        500, "fail_processor_exception", "no way")
    ok(requests.put(f"{url}/_ingest/pipeline/dropper", json={"processors": [{"drop": {}}]}))
    resp = requests.put(f"{url}/plain/_doc/4?pipeline=dropper", json={"t": "x"})
    assert resp.status_code in (200, 201), resp.text
    assert requests.get(f"{url}/plain/_doc/4").status_code == 404


def test_pipelines_survive_restart(tmp_path: Path) -> None:
    with NodeServer(tmp_path / "n") as node:
        ok(requests.put(f"{node.url}/_ingest/pipeline/keep", json={"processors": [{"set": {"field": "a", "value": 1}}]}))
        ok(requests.put(f"{node.url}/_search/pipeline/keep-s", json={"phase_results_processors": [
            {"normalization-processor": {}}]}))
    with NodeServer(tmp_path / "n") as node:
        assert ok(requests.get(f"{node.url}/_ingest/pipeline/keep")) == {
            "keep": {"processors": [{"set": {"field": "a", "value": 1}}]}}
        assert "keep-s" in ok(requests.get(f"{node.url}/_search/pipeline"))
        assert requests.put(f"{node.url}/x/_doc/1?pipeline=keep&refresh=true", json={"b": 2}).status_code == 201
        assert ok(requests.get(f"{node.url}/x/_doc/1"))["_source"] == {"b": 2, "a": 1}


def test_empty_bodies_and_empty_listing(tmp_path: Path) -> None:
    with NodeServer(tmp_path / "n") as node:
        for path in ("/_ingest/pipeline", "/_search/pipeline"):
            resp = requests.get(node.url + path)
            assert (resp.status_code, resp.json()) == (404, {})
        for method, path in (("PUT", "/_ingest/pipeline/x"), ("PUT", "/_search/pipeline/x"),
                             ("POST", "/_ingest/pipeline/_simulate")):
            resp = requests.request(method, node.url + path)
            assert resp.status_code == 400
            assert resp.json()["error"]["root_cause"][0] == {
                "type": "parse_exception", "reason": "request body or source parameter is required"}

"""Ingest pipelines without the node: config validation, core processors, failure handling, simulate,
and the neural-search / ML Commons processors against a recording ML boundary.

The ML boundary (``engine.ml.predict``) is replaced by ``RecordingML``, which returns responses shaped
exactly like ML Commons' predict REST answers; the HTTP tests run the real ML Commons instead.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from kit.node.errors import ApiError
from kit.node.ingest import IngestService, Pipeline, render_template


class RecordingML:
    def __init__(self, answer: Callable[[str, dict[str, Any], str], dict[str, Any]]) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.answer = answer

    def predict(self, model_id: str, body: dict[str, Any], *, algorithm: str = "text_embedding") -> dict[str, Any]:
        self.calls.append((model_id, body, algorithm))
        return self.answer(model_id, body, algorithm)


class FakeEngine:
    """The Engine calls the ingest service makes: ``ml``, ``get_doc`` and the system-index document API."""

    def __init__(self, ml: RecordingML, docs: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.ml = ml
        self.docs = docs or {}
        self.indices: dict[str, dict[str, Any]] = {}

    def get_doc(self, index: str, doc_id: str) -> dict[str, Any]:
        src = self.docs.get((index, doc_id))
        if src is None:
            return {"_index": index, "_id": doc_id, "found": False}
        return {"_index": index, "_id": doc_id, "found": True, "_source": src}

    def index_exists(self, name: str) -> bool:
        return name in self.indices

    def ensure_system_index(self, name: str, mappings: dict[str, Any]) -> None:
        self.indices.setdefault(name, {})

    def index_doc(self, index: str, doc_id: str, source: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.indices[index][doc_id] = source
        return {"result": "created"}

    def delete_doc(self, index: str, doc_id: str, **_: Any) -> dict[str, Any]:
        self.indices[index].pop(doc_id, None)
        return {"result": "deleted"}

    def search(self, index: str, body: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        hits = [{"_index": index, "_id": k, "_source": v} for k, v in self.indices.get(index, {}).items()]
        return {"hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits}}


def embed(text: str | None) -> list[float]:
    """A deterministic 'embedding': length and a code of the text."""
    if text is None:
        return [0.0, 0.0]
    return [float(len(text)), float(sum(map(ord, text)) % 97)]


def local_answer(model_id: str, body: dict[str, Any], algorithm: str) -> dict[str, Any]:
    return {"inference_results": [
        {"output": [{"name": "sentence_embedding", "data_type": "FLOAT32", "shape": [2], "data": embed(t)}]}
        for t in body["text_docs"]]}


def service(answer: Callable[..., dict[str, Any]] = local_answer,
            docs: dict[tuple[str, str], dict[str, Any]] | None = None) -> tuple[IngestService, RecordingML]:
    ml = RecordingML(answer)
    return IngestService(FakeEngine(ml, docs)), ml  # type: ignore[arg-type]


def put(svc: IngestService, processors: list[dict[str, Any]], pid: str = "p", **extra: Any) -> None:
    assert svc.put(pid, {"processors": processors, **extra}) == {"acknowledged": True}


def run(svc: IngestService, source: dict[str, Any], pid: str = "p") -> dict[str, Any] | None:
    return svc.execute(pid, "idx", "1", source)


def error_of(fn: Callable[[], Any]) -> ApiError:
    with pytest.raises(ApiError) as e:
        fn()
    return e.value


# ---- creation-time validation


def test_unknown_processor_and_missing_property_are_parse_exceptions() -> None:
    svc, _ = service()
    e = error_of(lambda: svc.put("p", {"processors": [{"frobnicate": {}}]}))
    assert (e.status, e.type, e.reason) == (400, "parse_exception", "No processor type exists with name [frobnicate]")
    assert e.extra == {"processor_type": "frobnicate"}
    e = error_of(lambda: svc.put("p", {"processors": [{"set": {"value": 1, "tag": "t1"}}]}))
    assert (e.status, e.type, e.reason) == (400, "parse_exception", "[field] required property is missing")
    assert e.extra == {"processor_type": "set", "processor_tag": "t1", "property_name": "field"}
    e = error_of(lambda: svc.put("p", {"description": "no processors"}))
    assert e.reason == "[processors] required property is missing"
    e = error_of(lambda: svc.put("p", {"processors": [{"set": {"field": "a", "value": 1, "bogus": 2}}]}))
    assert e.reason == "processor [set] doesn't support one or more provided configuration parameters [bogus]"
    e = error_of(lambda: svc.put("p", {"processors": [], "on_failure": []}))
    assert e.reason == "[on_failure] pipeline [p] cannot have an empty on-failure option defined"
    e = error_of(lambda: svc.put("p", {"processors": [{"convert": {"field": "a", "type": "date"}}]}))
    assert e.reason == "[type] type [date] not supported, cannot convert field."
    assert svc.store.all() == {}


def test_painless_features_are_refused_by_name() -> None:
    svc, _ = service()
    e = error_of(lambda: svc.put("p", {"processors": [{"set": {"field": "a", "value": 1, "if": "ctx.x != null"}}]}))
    assert e.status == 400 and "ingest processor condition [if] (Painless scripts)" in e.reason
    e = error_of(lambda: svc.put("p", {"processors": [{"script": {"source": "ctx.a = 1"}}]}))
    assert "script ingest processor (Painless)" in e.reason
    e = error_of(lambda: svc.put("p", {"processors": [{"grok": {"field": "m", "patterns": ["%{WORD}"]}}]}))
    assert "ingest processor [grok]" in e.reason
    e = error_of(lambda: svc.put("p", {"processors": [{"set": {"field": "a", "value": "{{#toJson}}x{{/toJson}}"}}]}))
    assert (e.status, e.type) == (400, "illegal_argument_exception") and "mustache sections" in e.reason


def test_factory_illegal_argument_is_wrapped_like_opensearch() -> None:
    svc, _ = service()
    e = error_of(lambda: svc.put("p", {"processors": [{"text_embedding": {"model_id": "m", "field_map": {}}}]}))
    assert (e.status, e.type) == (500, "exception")
    assert e.reason == "java.lang.IllegalArgumentException: Unable to create the processor as field_map has invalid key or value"
    assert e.caused_by == {"type": "illegal_argument_exception",
                           "reason": "Unable to create the processor as field_map has invalid key or value"}
    assert e.extra["processor_type"] == "text_embedding"
    e = error_of(lambda: svc.put("p", {"processors": [{"text_image_embedding": {
        "model_id": "m", "embedding": "v", "field_map": {"picture": "img"}}}]}))
    assert e.caused_by["reason"] == ("Unable to create the TextImageEmbedding processor with provided field name(s). "  # type: ignore[index]
                                     "Following names are supported [text,image]")
    e = error_of(lambda: svc.put("p", {"processors": [{"ml_inference": {"model_id": "m", "function_name": "text_embedding"}}]}))
    assert e.caused_by["reason"] == "Please provide model input when using a local model in ML Inference Processor"  # type: ignore[index]
    e = error_of(lambda: svc.put("p", {"processors": [{"ml_inference": {
        "model_id": "m", "input_map": [{"a": "b"}, {"a": "c"}], "max_prediction_tasks": 1}}]}))
    assert e.caused_by["reason"].startswith("The number of prediction task setting in this process is 2.")  # type: ignore[index]


def test_model_existence_is_not_checked_at_creation() -> None:
    svc, ml = service()
    put(svc, [{"text_embedding": {"model_id": "does-not-exist", "field_map": {"t": "v"}}}])
    assert ml.calls == []


# ---- CRUD


def test_get_wildcard_delete_and_persistence() -> None:
    svc, _ = service()
    put(svc, [], pid="books")
    put(svc, [], pid="movies", description="m")
    assert svc.store.match("b*,movies") == ["books", "movies"]
    assert svc.store.all()["movies"] == {"processors": [], "description": "m"}
    assert svc.store.match("nope") == []
    svc.store.delete("books")
    reopened = IngestService(svc.engine)  # a restarted node reads the system index again
    assert reopened.store.all() == {"movies": {"processors": [], "description": "m"}}
    assert reopened.pipeline("movies") is not None and reopened.pipeline("books") is None


# ---- core processors


def test_set_templates_override_and_copy() -> None:
    svc, _ = service()
    put(svc, [
        {"set": {"field": "greeting", "value": "hi {{name}} from {{_index}} \"q\""}},
        {"set": {"field": "name", "value": "other", "override": False}},
        {"set": {"field": "meta.{{name}}", "value": ["{{{name}}}", 1]}},
        {"set": {"field": "copy", "copy_from": "meta"}},
        {"set": {"field": "empty", "value": "{{missing}}", "ignore_empty_value": True}},
    ])
    out = run(svc, {"name": "ann"})
    assert out == {"name": "ann", "greeting": 'hi ann from idx "q"', "meta": {"ann": ["ann", 1]},
                   "copy": {"ann": ["ann", 1]}}


def test_remove_rename_case_trim_append_join_split_convert() -> None:
    svc, _ = service()
    put(svc, [
        {"remove": {"field": ["junk", "gone"], "ignore_missing": True}},
        {"rename": {"field": "old", "target_field": "new"}},
        {"lowercase": {"field": "tags"}},
        {"uppercase": {"field": "code", "target_field": "code_up"}},
        {"trim": {"field": "pad"}},
        {"append": {"field": "tags", "value": ["b", "z"], "allow_duplicates": False}},
        {"append": {"field": "fresh", "value": "x"}},
        {"join": {"field": "tags", "separator": "|", "target_field": "joined"}},
        {"split": {"field": "csv", "separator": "\\s*,\\s*"}},
        {"convert": {"field": "n", "type": "integer"}},
        {"convert": {"field": "flags", "type": "boolean"}},
        {"convert": {"field": "f", "type": "string"}},
    ])
    out = run(svc, {"junk": 1, "old": 5, "tags": ["A", "B"], "code": "ab", "pad": "  x ", "csv": "a , b,c,,",
                    "n": "42", "flags": ["TRUE", "false"], "f": 1.5})
    assert out == {"new": 5, "tags": ["a", "b", "z"], "code": "ab", "code_up": "AB", "pad": "x", "fresh": ["x"],
                   "joined": "a|b|z", "csv": ["a", "b", "c"], "n": 42, "flags": [True, False], "f": "1.5"}


@pytest.mark.parametrize(
    ("processor", "source", "reason"),
    [
        ({"remove": {"field": "a.b"}}, {"a": {}}, "field [b] not present as part of path [a.b]"),
        ({"rename": {"field": "x", "target_field": "y"}}, {}, "field [x] doesn't exist"),
        ({"rename": {"field": "x", "target_field": "y"}}, {"x": 1, "y": 2}, "field [y] already exists"),
        ({"lowercase": {"field": "x"}}, {"x": 3}, "field [x] of type [java.lang.Integer] cannot be cast to [java.lang.String]"),
        ({"lowercase": {"field": "x"}}, {}, "field [x] not present as part of path [x]"),
        ({"lowercase": {"field": "x"}}, {"x": None}, "field [x] is null, cannot process it."),
        ({"convert": {"field": "x", "type": "integer"}}, {"x": "4.5"}, "unable to convert [4.5] to integer"),
        ({"convert": {"field": "x", "type": "boolean"}}, {"x": "yes"}, "[yes] is not a boolean value, cannot convert to boolean"),
        ({"join": {"field": "x", "separator": ","}}, {"x": "s"}, "field [x] of type [java.lang.String] cannot be cast to [java.util.List]"),
        ({"split": {"field": "x", "separator": ","}}, {"x": 1}, "field [x] of type [java.lang.Integer] cannot be cast to [java.lang.String]"),
        ({"set": {"field": "a.b", "value": 1}}, {"a": "s"}, "cannot set [b] with parent object of type [java.lang.String] as part of path [a.b]"),
        ({"set": {"field": "a.5", "value": 1}}, {"a": [1]}, "[5] is out of bounds for array with length [1] as part of path [a.5]"),
        ({"foreach": {"field": "x", "processor": {"uppercase": {"field": "_ingest._value"}}}}, {"x": 1},
         "field [x] of type [java.lang.Integer] cannot be cast to a list or map"),
    ],
)
def test_core_processor_errors(processor: dict[str, Any], source: dict[str, Any], reason: str) -> None:
    svc, _ = service()
    put(svc, [processor])
    e = error_of(lambda: run(svc, source))
    assert (e.status, e.type, e.reason) == (400, "illegal_argument_exception", reason)


def test_foreach_fail_drop() -> None:
    svc, _ = service()
    put(svc, [{"foreach": {"field": "items", "processor": {"uppercase": {"field": "_ingest._value"}}}}])
    assert run(svc, {"items": ["a", "b"]}) == {"items": ["A", "B"]}
    put(svc, [{"fail": {"message": "bad {{x}}"}}])
    e = error_of(lambda: run(svc, {"x": "doc"}))
    assert (e.status, e.type, e.reason) == (500, "fail_processor_exception", "bad doc")
    put(svc, [{"drop": {}}, {"fail": {"message": "never"}}])
    assert run(svc, {"x": 1}) is None


def test_on_failure_and_ignore_failure() -> None:
    svc, _ = service()
    put(svc, [
        {"rename": {"field": "missing", "target_field": "t", "tag": "r1",
                    "on_failure": [{"set": {"field": "err", "value": "{{_ingest.on_failure_message}}|"
                                                                     "{{_ingest.on_failure_processor_type}}|"
                                                                     "{{_ingest.on_failure_processor_tag}}"}}]}},
        {"lowercase": {"field": "missing", "ignore_failure": True}},
        {"set": {"field": "after", "value": True}},
    ])
    assert run(svc, {"a": 1}) == {"a": 1, "err": "field [missing] doesn't exist|rename|r1", "after": True}
    # pipeline-level on_failure: remaining processors are skipped, the document is kept
    put(svc, [{"fail": {"message": "boom"}}, {"set": {"field": "never", "value": 1}}],
        on_failure=[{"set": {"field": "why", "value": "{{_ingest.on_failure_message}} in {{_ingest.on_failure_pipeline}}"}}])
    assert run(svc, {}) == {"why": "boom in p"}


def test_pipeline_processor_and_cycles() -> None:
    svc, _ = service()
    put(svc, [{"set": {"field": "inner", "value": "{{_ingest.pipeline}}"}}], pid="inner")
    put(svc, [{"pipeline": {"name": "inner"}}, {"set": {"field": "outer", "value": 1}}], pid="outer")
    assert run(svc, {}, pid="outer") == {"inner": "inner", "outer": 1}
    put(svc, [{"pipeline": {"name": "loop"}}], pid="loop")
    e = error_of(lambda: run(svc, {}, pid="loop"))
    assert (e.type, e.reason) == ("illegal_state_exception", "Cycle detected for pipeline: loop")
    put(svc, [{"pipeline": {"name": "ghost"}}], pid="dangling")
    e = error_of(lambda: run(svc, {}, pid="dangling"))
    assert e.reason == "Pipeline processor configured for non-existent pipeline [ghost]"
    e = error_of(lambda: svc.execute("nope", "idx", "1", {}))
    assert (e.status, e.reason) == (400, "pipeline with id [nope] does not exist")


# ---- simulate


def test_simulate_plain_verbose_and_errors() -> None:
    svc, _ = service()
    pipeline = {"processors": [{"set": {"field": "a", "value": 1, "tag": "s"}},
                               {"lowercase": {"field": "nope", "ignore_failure": True}},
                               {"uppercase": {"field": "name"}}]}
    docs = [{"_index": "i", "_id": "1", "_source": {"name": "x"}}, {"_source": {"name": 5}}]
    out = svc.simulate(None, {"pipeline": pipeline, "docs": docs})
    first = out["docs"][0]["doc"]
    assert first["_index"] == "i" and first["_id"] == "1" and first["_source"] == {"name": "X", "a": 1}
    assert set(first["_ingest"]) == {"timestamp"}
    assert out["docs"][1]["error"]["type"] == "illegal_argument_exception"
    assert out["docs"][1]["error"]["root_cause"][0]["reason"] == \
        "field [name] of type [java.lang.Integer] cannot be cast to [java.lang.String]"

    verbose = svc.simulate(None, {"pipeline": pipeline, "docs": docs}, verbose=True)["docs"]
    steps = verbose[0]["processor_results"]
    assert [(s["processor_type"], s["status"]) for s in steps] == [
        ("set", "success"), ("lowercase", "error_ignored"), ("uppercase", "success")]
    assert steps[0]["tag"] == "s" and steps[0]["doc"]["_source"] == {"name": "x", "a": 1}
    assert steps[0]["doc"]["_ingest"]["pipeline"] == "_simulate_pipeline"
    assert steps[1]["ignored_error"]["error"]["reason"] == "field [nope] not present as part of path [nope]"
    failing = verbose[1]["processor_results"]
    assert failing[-1]["status"] == "error" and "doc" not in failing[-1]

    put(svc, [], pid="noop")
    assert svc.simulate("noop", {"docs": [{"_source": {"a": 1}}]}, verbose=True) == {"docs": [{"processor_results": []}]}
    e = error_of(lambda: svc.simulate("ghost", {"docs": []}))
    assert e.reason == "pipeline [ghost] does not exist"


def test_mustache_rendering() -> None:
    model = {"a": {"b": [1, 2]}, "s": 'x"y', "f": 2.0}
    assert render_template("{{a.b}} {{a.b.1}} {{s}} {{{s}}} {{f}} {{none}}", model) == '[1, 2] 2 x\\"y x"y 2.0 '


# ---- text_embedding


def test_text_embedding_string_list_nested_and_dotted() -> None:
    svc, ml = service()
    put(svc, [{"text_embedding": {"model_id": "m1", "field_map": {
        "title": "title_vec", "tags": "tags_vec", "meta": {"caption": "caption_vec"}, "info.summary": "summary_vec",
        "chunks": {"text": "chunk_vec"}, "absent": "absent_vec"}}}])
    out = run(svc, {"title": "red shoe", "tags": ["a", "bb"], "meta": {"caption": "cap"}, "info": {"summary": "sum"},
                    "chunks": [{"text": "c1"}, {"other": 1}, {"text": "c3"}]})
    assert out is not None
    assert out["title_vec"] == embed("red shoe")
    assert out["tags_vec"] == [{"knn": embed("a")}, {"knn": embed("bb")}]
    assert out["meta"] == {"caption": "cap", "caption_vec": embed("cap")}
    assert out["info"] == {"summary": "sum", "summary_vec": embed("sum")}
    assert out["chunks"] == [{"text": "c1", "chunk_vec": embed("c1")}, {"other": 1}, {"text": "c3", "chunk_vec": embed("c3")}]
    assert "absent_vec" not in out
    assert len(ml.calls) == 1
    model_id, body, algorithm = ml.calls[0]
    assert (model_id, algorithm) == ("m1", "text_embedding")
    assert body == {"text_docs": ["red shoe", "a", "bb", "cap", "sum", "c1", "c3"], "return_number": True,
                    "target_response": ["sentence_embedding"]}


def test_text_embedding_no_text_no_call_and_value_errors() -> None:
    svc, ml = service()
    put(svc, [{"text_embedding": {"model_id": "m1", "field_map": {"title": "v"}}}])
    assert run(svc, {"other": 1}) == {"other": 1}
    assert run(svc, {"title": "   "}) == {"title": "   "}
    assert ml.calls == []
    e = error_of(lambda: run(svc, {"title": 5}))
    assert e.reason == "map type field [title] is neither string nor nested type, cannot process it"
    e = error_of(lambda: run(svc, {"title": ["a", None]}))
    assert e.reason == "list type field [title] has null, cannot process it"
    e = error_of(lambda: run(svc, {"title": {"x": "y"}}))
    assert e.reason == ("[title] configuration doesn't match actual value type, configuration type is: "
                        "java.lang.String, actual value type is: java.util.HashMap")


def test_text_embedding_remote_response_map_and_errors() -> None:
    def remote(model_id: str, body: dict[str, Any], algorithm: str) -> dict[str, Any]:
        return {"inference_results": [{"output": [{"name": "response", "dataAsMap": {
            "response": [embed(t) for t in body["text_docs"]]}}], "status_code": 200}]}

    svc, _ = service(remote)
    put(svc, [{"text_embedding": {"model_id": "r", "field_map": {"a": "av", "b": "bv"}}}])
    assert run(svc, {"a": "x", "b": "yy"}) == {"a": "x", "b": "yy", "av": embed("x"), "bv": embed("yy")}

    bad, _ = service(lambda *_: {"inference_results": [{"output": [{"name": "response", "dataAsMap": {"embedding": [1.0]}}]}]})
    put(bad, [{"text_embedding": {"model_id": "r", "field_map": {"a": "av"}}}])
    e = error_of(lambda: run(bad, {"a": "x"}))
    assert (e.status, e.type) == (500, "illegal_state_exception")
    assert e.reason.startswith("The remote model response is missing the required 'response' key")


def test_text_embedding_ml_error_passes_through_and_skip_existing() -> None:
    def missing(*_: Any) -> dict[str, Any]:
        raise ApiError(404, "status_exception", "Failed to find model")

    svc, _ = service(missing)
    put(svc, [{"text_embedding": {"model_id": "gone", "field_map": {"a": "av"}}}])
    e = error_of(lambda: run(svc, {"a": "x"}))
    assert (e.status, e.type, e.reason) == (404, "status_exception", "Failed to find model")

    svc, ml = service(docs={("idx", "1"): {"a": "same", "av": [9.0, 9.0], "b": "old", "bv": [8.0, 8.0]}})
    put(svc, [{"text_embedding": {"model_id": "m", "field_map": {"a": "av", "b": "bv"}, "skip_existing": True}}])
    out = run(svc, {"a": "same", "b": "new"})
    assert out == {"a": "same", "b": "new", "av": [9.0, 9.0], "bv": embed("new")}
    assert ml.calls[0][1]["text_docs"] == ["new"]


# ---- text_image_embedding


def test_text_image_embedding_inputs_and_first_vector() -> None:
    def multimodal(model_id: str, body: dict[str, Any], algorithm: str) -> dict[str, Any]:
        text, *image = body["text_docs"]
        vec = embed((text or "") + (image[0] if image else ""))
        return {"inference_results": [{"output": [{"name": "sentence_embedding", "data_type": "FLOAT32",
                                                   "shape": [2], "data": vec}], "status_code": 200}]}

    svc, ml = service(multimodal)
    put(svc, [{"text_image_embedding": {"model_id": "clip", "embedding": "vecs.image",
                                        "field_map": {"text": "caption", "image": "img"}}}])
    out = run(svc, {"img": "aGk="})
    assert out == {"img": "aGk=", "vecs": {"image": embed("aGk=")}}
    assert ml.calls[-1][1]["text_docs"] == [None, "aGk="]
    run(svc, {"caption": "cat", "img": "aGk="})
    assert ml.calls[-1][1]["text_docs"] == ["cat", "aGk="]
    run(svc, {"caption": "cat"})
    assert ml.calls[-1][1]["text_docs"] == ["cat"]
    calls = len(ml.calls)
    assert run(svc, {"other": 1}) == {"other": 1} and len(ml.calls) == calls
    e = error_of(lambda: run(svc, {"img": 12}))
    assert e.reason == ("Unsupported format of the field in the document, img value must be a non-empty string. "
                        "Currently it is '12'. Type is class java.lang.Integer")
    e = error_of(lambda: run(svc, {"img": None}))
    assert e.reason == ("Unsupported format of the field in the document, img value must be a non-empty string. "
                        "Currently it is null")


# ---- ml_inference


def ocr_answer(model_id: str, body: dict[str, Any], algorithm: str) -> dict[str, Any]:
    params = body["parameters"]
    return {"inference_results": [{"output": [{"name": "response", "dataAsMap": {
        "text": f"ocr:{params['inputImage'][:4]}", "lines": [{"text": "l1"}, {"text": "l2"}], "lang": params.get("lang")}}],
        "status_code": 200}]}


def test_ml_inference_remote_input_output_maps() -> None:
    svc, ml = service(ocr_answer)
    put(svc, [{"ml_inference": {"model_id": "ocr", "model_config": {"lang": "en"},
                                "input_map": [{"inputImage": "image"}],
                                "output_map": [{"ocr_text": "text", "first_line": "$.lines[0].text", "lang": "lang"}]}}])
    out = run(svc, {"image": "QUJDRA=="})
    assert out == {"image": "QUJDRA==", "ocr_text": "ocr:QUJD", "first_line": "l1", "lang": "en"}
    model_id, body, algorithm = ml.calls[0]
    assert (model_id, algorithm) == ("ocr", "remote")
    assert body == {"parameters": {"lang": "en", "inputImage": "QUJDRA=="}}


def test_ml_inference_override_ignore_missing_and_errors() -> None:
    svc, ml = service(ocr_answer)
    put(svc, [{"ml_inference": {"model_id": "ocr", "input_map": [{"inputImage": "image"}],
                                "output_map": [{"ocr_text": "text"}]}}])
    assert run(svc, {"image": "QUJD", "ocr_text": "kept"}) == {"image": "QUJD", "ocr_text": "kept"}
    assert ml.calls == []  # every output exists and override is false: no prediction at all
    e = error_of(lambda: run(svc, {"other": 1}))
    assert (e.status, e.reason) == (400, "Cannot find field name defined from input map: image")

    put(svc, [{"ml_inference": {"model_id": "ocr", "input_map": [{"inputImage": "image"}],
                                "output_map": [{"ocr_text": "text"}], "ignore_missing": True, "override": True}}])
    assert run(svc, {"image": "QUJD", "ocr_text": "old"})["ocr_text"] == "ocr:QUJD"  # type: ignore[index]

    put(svc, [{"ml_inference": {"model_id": "ocr", "input_map": [{"inputImage": "image"}],
                                "output_map": [{"x": "nope"}]}}])
    e = error_of(lambda: run(svc, {"image": "QUJD"}))
    assert (e.status, e.type, e.reason) == (
        500, "runtime_exception", "An unexpected error occurred: model inference output cannot find field name: nope")

    put(svc, [{"ml_inference": {"model_id": "ocr", "input_map": [{"inputImage": "image"}],
                                "model_input": "{ \"parameters\": ${ml_inference.parameters}", "output_map": [{"x": "text"}]}}])
    e = error_of(lambda: run(svc, {"image": "QUJD"}))
    assert e.reason.startswith("Invalid payload: { \"parameters\": {")

    put(svc, [{"ml_inference": {"model_id": "ocr", "input_map": [{"inputImage": "image"}],
                                "output_map": [{"x": "nope"}], "ignore_failure": True}}])
    assert run(svc, {"image": "QUJD"}) == {"image": "QUJD"}


def test_ml_inference_local_model_input_template_and_full_response_path() -> None:
    svc, ml = service()
    put(svc, [{"ml_inference": {
        "model_id": "minilm", "function_name": "text_embedding",
        "model_input": "{ \"text_docs\": ${input_map.text_docs}, \"return_number\": true, "
                       "\"target_response\": [\"sentence_embedding\"] }",
        "input_map": [{"text_docs": "passages"}],
        "output_map": [{"passage_vecs": "$.inference_results.*.output.*.data"}]}}])
    out = run(svc, {"passages": ["ab", "cde"]})
    assert out == {"passages": ["ab", "cde"], "passage_vecs": [embed("ab"), embed("cde")]}
    assert ml.calls[0][2] == "text_embedding"
    assert ml.calls[0][1] == {"text_docs": ["ab", "cde"], "return_number": True, "target_response": ["sentence_embedding"]}


def test_ml_inference_nested_output_array() -> None:
    def per_item(model_id: str, body: dict[str, Any], algorithm: str) -> dict[str, Any]:
        import json

        texts = json.loads(body["parameters"]["texts"])
        return {"inference_results": [{"output": [{"name": "response", "dataAsMap": {
            "upper": [t.upper() for t in texts]}}], "status_code": 200}]}

    svc, _ = service(per_item)
    put(svc, [{"ml_inference": {"model_id": "r", "input_map": [{"texts": "$.items[*].t"}],
                                "output_map": [{"items.*.u": "upper"}]}}])
    assert run(svc, {"items": [{"t": "a"}, {"t": "b"}]}) == {"items": [{"t": "a", "u": "A"}, {"t": "b", "u": "B"}]}


def test_pipeline_object_reusable() -> None:
    pipe = Pipeline("x", {"processors": [{"set": {"field": "a", "value": 1}}]})
    assert pipe.description is None and pipe.compound.processors[0].type == "set"


# ---- batches (_bulk)


def test_execute_batch_honours_batch_size_and_per_document_errors() -> None:
    svc, ml = service()
    put(svc, [{"text_embedding": {"model_id": "m", "field_map": {"t": "v"}, "batch_size": 2}},
              {"set": {"field": "done", "value": True}}],
        on_failure=[{"set": {"field": "error", "value": "{{_ingest.on_failure_message}}"}}])
    docs = [("idx", str(i), src) for i, src in enumerate(
        [{"t": "aaa"}, {"t": "b"}, {"t": 7}, {"t": "cc"}, {"x": 1}])]
    out = svc.execute_batch("p", docs)
    assert out[0] == {"t": "aaa", "v": embed("aaa"), "done": True}
    assert out[1] == {"t": "b", "v": embed("b"), "done": True}
    assert out[2] == {"t": 7, "error": "map type field [t] is neither string nor nested type, cannot process it"}
    assert out[3] == {"t": "cc", "v": embed("cc"), "done": True}
    assert out[4] == {"x": 1, "done": True}
    # batches of two documents: [aaa, b] (sent shortest first), [7 → error, cc], [no text]
    assert [c[1]["text_docs"] for c in ml.calls] == [["b", "aaa"], ["cc"]]
    # same results as one document at a time
    assert [svc.execute("p", *d) for d in docs] == out


def test_execute_batch_predict_failure_fails_the_batch() -> None:
    def boom(*_: Any) -> dict[str, Any]:
        raise ApiError(400, "illegal_argument_exception", "Model not ready yet. Please deploy the model first.")

    svc, _ = service(boom)
    put(svc, [{"text_embedding": {"model_id": "m", "field_map": {"t": "v"}, "batch_size": 10}}])
    out = svc.execute_batch("p", [("idx", "1", {"t": "a"}), ("idx", "2", {"t": "b"}), ("idx", "3", {"u": 1})])
    # neural-search's updateWithExceptions marks every document of the failed batch, text or not
    assert [getattr(o, "reason", o) for o in out] == ["Model not ready yet. Please deploy the model first."] * 3
    assert isinstance(svc.execute_batch("nope", [("i", "1", {})])[0], ApiError)


def test_simulate_drop_and_pipeline_processor_traces() -> None:
    svc, _ = service()
    put(svc, [{"set": {"field": "inner", "value": 1}}], pid="inner")
    body = {"pipeline": {"processors": [{"pipeline": {"name": "inner"}}, {"drop": {}}, {"set": {"field": "x", "value": 1}}]},
            "docs": [{"_source": {}}]}
    assert svc.simulate(None, body) == {"docs": [None]}
    steps = svc.simulate(None, body, verbose=True)["docs"][0]["processor_results"]
    assert [(s["processor_type"], s["status"]) for s in steps] == [
        ("pipeline", "success"), ("set", "success"), ("drop", "dropped")]
    assert steps[1]["doc"]["_ingest"]["pipeline"] == "inner" and "doc" not in steps[2]


# ---- text_chunking


def chunk(algorithm: dict[str, Any], source: dict[str, Any], field_map: dict[str, Any] | None = None,
          **extra: Any) -> dict[str, Any] | None:
    svc, _ = service()
    put(svc, [{"text_chunking": {"field_map": field_map or {"body": "chunks"}, "algorithm": algorithm, **extra}}])
    return run(svc, source)


def test_text_chunking_fixed_token_length() -> None:
    text = "a b c d e f g"
    assert chunk({"fixed_token_length": {"token_limit": 3}}, {"body": text})["chunks"] == ["a b c ", "d e f ", "g"]  # type: ignore[index]
    # overlap floor(3 * 0.34) = 1 token: windows start at tokens 0, 2, 4
    assert chunk({"fixed_token_length": {"token_limit": 3, "overlap_rate": 0.34}}, {"body": text})["chunks"] == [  # type: ignore[index]
        "a b c ", "c d e ", "e f g"]
    # max_chunk_limit: the last allowed chunk takes the rest of the text
    assert chunk({"fixed_token_length": {"token_limit": 1, "max_chunk_limit": 2}}, {"body": "a b c"})["chunks"] == [  # type: ignore[index]
        "a ", "b c"]
    # the standard tokenizer keeps 7.10.2 and can't whole
    assert chunk({"fixed_token_length": {"token_limit": 2}}, {"body": "v 7.10.2 can't stop"})["chunks"] == [  # type: ignore[index]
        "v 7.10.2 ", "can't stop"]


def test_text_chunking_delimiter_char_length_lists_and_nesting() -> None:
    assert chunk({"delimiter": {}}, {"body": "p1\n\np2\n\np3"})["chunks"] == ["p1\n\n", "p2\n\n", "p3"]  # type: ignore[index]
    assert chunk({"fixed_char_length": {"char_limit": 4, "overlap_rate": 0.25}}, {"body": "abcdefghij"})["chunks"] == [  # type: ignore[index]
        "abcd", "defg", "ghij"]
    out = chunk({"delimiter": {"delimiter": "."}}, {"body": ["a.b", ""], "n": {"t": "x.y"}},
                field_map={"body": "chunks", "n": {"t": "t_chunks"}})
    assert out == {"body": ["a.b", ""], "chunks": ["a.", "b"], "n": {"t": "x.y", "t_chunks": ["x.", "y"]}}
    assert chunk({"delimiter": {}}, {"other": 1}) == {"other": 1, "chunks": []}
    assert chunk({"delimiter": {}}, {"other": 1}, ignore_missing=True) == {"other": 1}


@pytest.mark.parametrize(
    ("algorithm", "reason"),
    [
        ({"sentence": {}}, "Chunking algorithm [sentence] is not supported. Supported chunking algorithms are "
                           "[fixed_token_length, delimiter, fixed_char_length]"),
        ({"delimiter": {}, "fixed_char_length": {}}, "Unable to create text_chunking processor as [algorithm] contains multiple algorithms"),
        ({"fixed_token_length": {"overlap_rate": 0.7}}, "Parameter [overlap_rate] must be between 0.0 and 0.5"),
        ({"fixed_token_length": {"token_limit": 0}}, "Parameter [token_limit] must be positive."),
        ({"fixed_token_length": {"tokenizer": "keyword"}}, "Tokenizer [keyword] is not supported for [fixed_token_length] "
                                                           "algorithm. Supported tokenizers are [standard, letter, lowercase, "
                                                           "whitespace, uax_url_email, classic, thai]"),
        ({"delimiter": {"max_chunk_limit": 0}}, "Parameter [max_chunk_limit] must be positive or -1 to disable this parameter"),
        ({"delimiter": {"delimiter": ""}}, "Parameter [delimiter] should not be empty."),
    ],
)
def test_text_chunking_config_errors(algorithm: dict[str, Any], reason: str) -> None:
    svc, _ = service()
    e = error_of(lambda: svc.put("p", {"processors": [{"text_chunking": {"field_map": {"b": "c"}, "algorithm": algorithm}}]}))
    assert (e.status, e.type, e.caused_by) == (500, "exception", {"type": "illegal_argument_exception", "reason": reason})

"""The spec's known gaps: fields and processors that real OpenSearch accepts and the spec does not declare
(see the spec folder's README). :data:`ALLOW_LIST` patches exactly those into the raw YAML before merging,
each with its reason; a test fails when the upstream spec gains an entry, so the list stays short.
Conformance runs never use it (``load_spec(..., allow_list=False)``)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from kit.errors import SpecError
from kit.spec.document import _pointer_get

__all__ = ["ALLOW_LIST", "AllowListEntry", "allow_list_still_needed", "allow_list_target"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AllowListEntry:
    """One documented gap of the spec, patched into the raw YAML of ``file`` before merging.

    ``kind``:
      - ``property``: add ``name: value`` to the ``properties`` of the schema at ``pointer``;
      - ``query_parameter``: add a query parameter ``name`` (schema ``value``) to the operation at ``pointer``;
      - ``request_body``: give the operation at ``pointer`` a JSON request body with schema ``value``;
      - ``one_of``: add the branch ``value`` (a one-property object named ``name``) to the ``oneOf`` at ``pointer``.
    Each entry is *still needed* while the spec lacks ``name`` there (checked by a test).
    """

    file: str
    pointer: str
    kind: str
    name: str
    value: Any
    reason: str


_ML_INFERENCE_COMMON: dict[str, Any] = {
    "model_id": {"type": "string"},
    "function_name": {"type": "string"},
    "model_config": {"type": "object"},
    "model_input": {"type": "string"},
    "input_map": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}},
    "output_map": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}},
    "full_response_path": {"type": "boolean"},
    "ignore_missing": {"type": "boolean"},
    "ignore_failure": {"type": "boolean"},
    "max_prediction_tasks": {"type": "integer"},
    "tag": {"type": "string"},
    "description": {"type": "string"},
}

_ML = "namespaces/ml.yaml"
_ML_SCHEMAS = "schemas/ml._common.yaml"
_INGEST_SCHEMAS = "schemas/ingest._common.yaml"
_SEARCH_PIPELINE_SCHEMAS = "schemas/search_pipeline._common.yaml"

ALLOW_LIST: dict[str, AllowListEntry] = {
    "text_image_embedding.embedding": AllowListEntry(
        _INGEST_SCHEMAS, "/components/schemas/TextImageEmbeddingProcessor/allOf/1", "property",
        "embedding", {"type": "string", "description": "The vector field the embedding is written to."},
        "neural-search's TextImageEmbeddingProcessor requires `embedding` (the output vector field); "
        "the spec defines only model_id and field_map, so every correct CLIP pipeline would fail."),
    "model_config.pooling_mode": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "pooling_mode",
        {"type": "string", "enum": ["MEAN", "MEAN_SQRT_LEN", "MAX", "WEIGHTED_MEAN", "CLS", "LAST_TOKEN",
                                    "mean", "mean_sqrt_len", "max", "weighted_mean", "cls", "last_token"]},
        "ML Commons TextEmbeddingModelConfig.pooling_mode (local custom TEXT_EMBEDDING models); missing in spec ModelConfig."),
    "model_config.normalize_result": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "normalize_result", {"type": "boolean"},
        "ML Commons TextEmbeddingModelConfig.normalize_result; missing in spec ModelConfig."),
    "model_config.model_max_length": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "model_max_length", {"type": "integer"},
        "ML Commons TextEmbeddingModelConfig.model_max_length; missing in spec ModelConfig."),
    "model_config.query_prefix": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "query_prefix", {"type": "string"},
        "ML Commons TextEmbeddingModelConfig.query_prefix (2.12+); missing in spec ModelConfig."),
    "model_config.passage_prefix": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "passage_prefix", {"type": "string"},
        "ML Commons TextEmbeddingModelConfig.passage_prefix (2.12+); missing in spec ModelConfig."),
    "register_model.deploy": AllowListEntry(
        _ML, "/paths/~1_plugins~1_ml~1models~1_register/post", "query_parameter", "deploy", {"type": "boolean"},
        "RestMLRegisterModelAction reads ?deploy=true (register and deploy in one call); the spec declares no query parameters."),
    "register_model.connector": AllowListEntry(
        _ML, "/components/requestBodies/ml.register_model/content/application~1json/schema", "property", "connector",
        {"$ref": "#/components/requestBodies/ml.create_connector/content/application~1json/schema"},
        "MLRegisterModelInput accepts an inline `connector` (2.9+) instead of connector_id; the spec has only connector_id."),
    "deploy_model.body": AllowListEntry(
        _ML, "/paths/~1_plugins~1_ml~1models~1{model_id}~1_deploy/post", "request_body", "requestBody",
        {"type": "object", "properties": {"node_ids": {"type": "array", "items": {"type": "string"}}}},
        "MLDeployModelInput accepts a body with `node_ids`; the spec declares no request body for _deploy."),
    "predict_model.return_number": AllowListEntry(
        _ML, "/components/requestBodies/ml.predict_model/content/application~1json/schema", "property",
        "return_number", {"type": "boolean"},
        "TextDocsInputDataSet takes return_number on /models/{id}/_predict (the legacy _predict path has it)."),
    "predict_model.target_response": AllowListEntry(
        _ML, "/components/requestBodies/ml.predict_model/content/application~1json/schema", "property",
        "target_response", {"type": "array", "items": {"type": "string"}},
        "TextDocsInputDataSet takes target_response on /models/{id}/_predict (the legacy _predict path has it)."),
    "ingest.ml_inference": AllowListEntry(
        _INGEST_SCHEMAS, "/components/schemas/ProcessorContainer", "property", "ml_inference",
        {"allOf": [{"$ref": "#/components/schemas/ProcessorBase"},
                   {"type": "object", "properties": dict(_ML_INFERENCE_COMMON, override={"type": "boolean"}),
                    "required": ["model_id"]}]},
        "ML Commons' ml_inference ingest processor (2.14, MLInferenceIngestProcessor) is not in the spec."),
    "search_request.ml_inference": AllowListEntry(
        _SEARCH_PIPELINE_SCHEMAS, "/components/schemas/RequestProcessor", "one_of", "ml_inference",
        {"type": "object", "properties": dict(_ML_INFERENCE_COMMON, query_template={"type": "string"}),
         "required": ["model_id"]},
        "ML Commons' ml_inference search request processor (2.16, MLInferenceSearchRequestProcessor) is not in the spec."),
    "search_response.ml_inference": AllowListEntry(
        _SEARCH_PIPELINE_SCHEMAS, "/components/schemas/ResponseProcessor", "one_of", "ml_inference",
        {"type": "object", "properties": dict(_ML_INFERENCE_COMMON, one_to_one={"type": "boolean"},
                                              override={"type": "boolean"}),
         "required": ["model_id"]},
        "ML Commons' ml_inference search response processor (2.16, MLInferenceSearchResponseProcessor) is not in the spec."),
}


def allow_list_target(files: Mapping[str, Any], entry: AllowListEntry) -> Any:
    """The node an allow-list entry patches, or raise ``KeyError`` when the spec changed shape."""
    return _pointer_get(files[entry.file], entry.pointer)


def allow_list_still_needed(files: Mapping[str, Any], entry: AllowListEntry) -> bool:
    """True while the (unpatched) spec still lacks what ``entry`` adds."""
    target = allow_list_target(files, entry)
    if entry.kind == "property":
        return entry.name not in (target.get("properties") or {})
    if entry.kind == "query_parameter":
        for param in target.get("parameters") or []:
            ref = param.get("$ref", "")
            if param.get("name") == entry.name or ref.endswith(f"::query.{entry.name}"):
                return False
        return True
    if entry.kind == "request_body":
        return "requestBody" not in target
    if entry.kind == "one_of":
        return not any(entry.name in (branch.get("properties") or {}) for branch in target.get("oneOf") or [])
    raise SpecError(f"allow-list entry of unknown kind {entry.kind!r}")


def _apply_allow_list(files: dict[str, Any], entries: Iterable[tuple[str, AllowListEntry]]) -> None:
    for key, entry in entries:
        try:
            target = allow_list_target(files, entry)
        except (KeyError, IndexError, TypeError):
            log.warning("allow-list entry %s no longer fits the spec (%s %s); ignored", key, entry.file, entry.pointer)
            continue
        if not allow_list_still_needed(files, entry):
            continue
        value = copy.deepcopy(entry.value)
        if entry.kind == "property":
            target.setdefault("properties", {})[entry.name] = value
        elif entry.kind == "query_parameter":
            target.setdefault("parameters", []).append(
                {"name": entry.name, "in": "query", "schema": value, "description": f"(oskit allow-list: {key})"})
        elif entry.kind == "request_body":
            target["requestBody"] = {"content": {"application/json": {"schema": value}}}
        elif entry.kind == "one_of":
            target["oneOf"].append({"type": "object", "title": entry.name,
                                    "properties": {entry.name: value}, "required": [entry.name]})

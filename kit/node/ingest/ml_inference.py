"""ML Commons' ``ml_inference`` ingest processor (input/output maps, JSONPath, model_config templates)."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from kit.node.errors import ApiError
from kit.node.ingest.document import IngestDocument, iae, java_str, runtime_error
from kit.node.ingest.processor import Config, ExecContext, Processor, predict
from kit.node.jsonpath import JsonPathError, PathNotFound, compile_path
from kit.node.jsonutil import java_class

__all__ = ["MLInferenceProcessor"]


def _to_json_string(value: Any) -> str:
    """ML Commons ``StringUtils.toJson``: strings as-is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _substitute(template: str, prefix: str, values: Mapping[str, str]) -> str:
    """Apache ``StringSubstitutor`` with ``${prefix.`` … ``}``: unknown names are left as they are."""
    pattern = re.compile(re.escape("${" + prefix + ".") + r"([^}]+)\}")
    return pattern.sub(lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), template)


def _convert_to_dot_path(path: list[Any]) -> str:
    return ".".join(str(p) for p in path)


def _output_paths(doc: IngestDocument, dot_path: str) -> list[str]:
    """``writeNewDotPathForNestedObject``: expand the leading path (JSONPath) of an output field."""
    if "." not in dot_path:
        return [dot_path]
    leading, leaf = dot_path.rsplit(".", 1)
    model = dict(doc.data)
    model["_ingest"] = doc.ingest
    try:
        jp = compile_path(leading)
    except JsonPathError:
        return [dot_path]
    paths = jp.paths(model)
    if not paths:
        # Jayway with DEFAULT_PATH_LEAF_TO_NULL returns the definite path even when it is missing
        return [dot_path] if jp.definite else []
    return [_convert_to_dot_path(p) + "." + leaf for p in paths]


def _tensor_data(tensor: Mapping[str, Any]) -> list[Any]:
    """``ModelExecutor.parseDataInTensor``."""
    dtype = str(tensor.get("data_type", "FLOAT32")).upper()
    data = list(tensor.get("data") or [])
    if dtype in ("INT32", "INT64", "INT8", "UINT8", "INT16"):
        return [int(v) for v in data]
    if dtype in ("FLOAT32", "FLOAT64", "FLOAT16"):
        return [float(v) for v in data]
    if dtype == "STRING":
        return [java_str(v) for v in data]
    if dtype == "BOOLEAN":
        return [int(v) != 0 for v in data]
    raise runtime_error("unsupported data type in prediction data.")


class MLInferenceProcessor(Processor):
    type = "ml_inference"
    DEFAULT_MODEL_INPUT = '{ "parameters": ${ml_inference.parameters} }'

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.model_id = c.string("model_id") or ""
        model_config = c.mapping("model_config", required=False)
        self.input_maps = c.listing("input_map", required=False)
        self.output_maps = c.listing("output_map", required=False)
        self.max_prediction_tasks = c.integer("max_prediction_tasks", 10) or 10
        self.ignore_missing = c.boolean("ignore_missing", False)
        self.override = c.boolean("override", False)
        self.function_name = c.string("function_name", default="REMOTE") or "REMOTE"
        model_input = c.string("model_input", required=False)
        if self.function_name.lower() == "remote":
            model_input = model_input if model_input is not None else self.DEFAULT_MODEL_INPUT
        elif model_input is None:
            raise iae("Please provide model input when using a local model in ML Inference Processor")
        self.model_input: str = model_input
        self.full_response_path = c.boolean("full_response_path", self.function_name.lower() != "remote")
        # ml_inference reads ignore_failure itself (it is also a core processor option)
        self.ignore_failure = c.boolean("ignore_failure", False)
        self.model_config = {k: _to_json_string(v) for k, v in (model_config or {}).items()}
        for name, maps in (("input_map", self.input_maps), ("output_map", self.output_maps)):
            for m in maps or []:
                if not isinstance(m, dict):
                    raise c.err(name, f"property isn't a map, but of type [{java_class(m)}]")
        if self.input_maps is not None and len(self.input_maps) > self.max_prediction_tasks:
            raise iae(f"The number of prediction task setting in this process is {len(self.input_maps)}. It exceeds "
                      f"the max_prediction_tasks of {self.max_prediction_tasks}. Please reduce the size of input_map "
                      "or increase max_prediction_tasks.")
        if self.input_maps is not None and self.output_maps is not None and len(self.output_maps) != len(self.input_maps):
            raise iae("The length of output_map and the length of input_map do no match.")

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        n = len(self.input_maps or [])
        try:
            for i in range(max(n, 1)):
                self._one(doc, ctx, i, n)
        except ApiError:
            if self.ignore_failure:
                return doc
            raise
        return doc

    def _input_value(self, doc: IngestDocument, doc_field: str) -> tuple[bool, Any]:
        if doc_field and doc.has(doc_field, True):
            return True, doc.get(doc_field)
        try:
            jp = compile_path(doc_field)
        except JsonPathError:
            raise iae(f"Cannot find field name defined from input map: {doc_field}") from None
        try:
            value = jp.read(doc.data)
        except PathNotFound:
            value = None
        if value is None or (isinstance(value, list) and not value):
            if not self.ignore_missing:
                raise iae(f"Cannot find field name defined from input map: {doc_field}")
            return False, None
        return True, value

    def _one(self, doc: IngestDocument, ctx: ExecContext, i: int, n: int) -> None:
        params: dict[str, str] = dict(self.model_config)
        outputs: dict[str, str] | None = None
        if self.output_maps is not None:
            outputs = {}
            for new_field, model_field in self.output_maps[i].items():
                paths = _output_paths(doc, new_field)
                if not self.override and paths and all(doc.has(p) for p in paths):
                    continue  # already there: ML Commons drops it from the output mapping
                outputs[new_field] = model_field
            if not outputs:
                return
        if n == 0:
            for key in list(doc.data):
                params[key] = _to_json_string(doc.data[key])
        else:
            for model_field, doc_field in self.input_maps[i].items():  # type: ignore[index]
                found, value = self._input_value(doc, str(doc_field))
                if found:
                    if model_field in params and model_field not in self.model_config:
                        existing = json.loads(params[model_field]) if params[model_field].startswith("[") else [params[model_field]]
                        params[model_field] = _to_json_string(existing + [_to_json_string(value)])
                    else:
                        params[model_field] = _to_json_string(value)
        input_mappings = {k: v for k, v in params.items() if k not in self.model_config}
        body = self._payload(params, input_mappings)
        remote = self.function_name.lower() == "remote"
        result = predict(ctx, self.model_id, body, "remote" if remote else self.function_name.lower())
        if not outputs:
            self._append(doc, result, None, "inference_results")
        else:
            for new_field, model_field in outputs.items():
                self._append(doc, result, model_field, new_field)

    def _payload(self, params: dict[str, str], input_mappings: dict[str, str]) -> dict[str, Any]:
        remote = self.function_name.lower() == "remote"
        ml_params = {"parameters": _to_json_string(params)} if remote else dict(params)
        payload = _substitute(self.model_input, "model_config", self.model_config)
        payload = _substitute(payload, "input_map", input_mappings)
        payload = _substitute(payload, "ml_inference", ml_params)
        try:
            parsed = json.loads(payload)
        except ValueError:
            raise iae(f"Invalid payload: {payload}") from None
        if not isinstance(parsed, dict):
            raise iae(f"Invalid payload: {payload}")
        return parsed

    def _output_value(self, result: dict[str, Any], name: str | None) -> Any:
        if not self.full_response_path:
            try:
                return self._tensor_output(result, name)
            except ApiError as exc:
                raise runtime_error(f"An unexpected error occurred: {exc.reason}") from None
        if name is None:
            return result
        try:
            value = compile_path(name).read(result)
            if value is None:
                raise PathNotFound(name)
            return value
        except (PathNotFound, JsonPathError):
            if self.ignore_missing:
                return result
            raise runtime_error(
                f"An unexpected error occurred: model inference output cannot find such json path: {name}") from None

    def _tensor_output(self, result: dict[str, Any], name: str | None) -> Any:
        outputs = result.get("inference_results") or []
        if not outputs:
            raise runtime_error("Model outputs are null or empty.")
        tensors = outputs[0].get("output") or []
        if not tensors:
            raise runtime_error("Output tensors are null or empty.")
        if len(tensors) == 1:
            t = tensors[0]
            if t.get("dataAsMap") is not None:
                return self._field(t["dataAsMap"], name)
            return _tensor_data(t)
        return [self._field(t["dataAsMap"], name) if t.get("dataAsMap") is not None else _tensor_data(t)
                for t in tensors]

    def _field(self, data_map: Any, name: str | None) -> Any:
        if name is None or data_map is None:
            return data_map
        if isinstance(data_map, dict) and name in data_map:
            return data_map[name]
        try:
            return compile_path(name).read(data_map)
        except (PathNotFound, JsonPathError):
            if self.ignore_missing:
                return data_map
            raise runtime_error(f"model inference output cannot find field name: {name}") from None

    def _append(self, doc: IngestDocument, result: dict[str, Any], model_field: str | None, new_field: str) -> None:
        value = self._output_value(result, model_field)
        paths = _output_paths(doc, new_field)
        if len(paths) == 1:
            self._set(doc, paths[0], value)
            return
        if not isinstance(value, list):
            raise iae("Model output is not an array, cannot assign to array in documents.")
        if len(paths) != len(value):
            raise runtime_error(
                f"the prediction field: {model_field} is an array in size of {len(value)} but the document field "
                f"array from field {new_field} is in size of {len(paths)}")
        for path, v in zip(paths, value):
            self._set(doc, path, v)

    def _set(self, doc: IngestDocument, path: str, value: Any) -> None:
        if self.ignore_missing and (value is None or value == ""):
            return  # setFieldValue(…, ignoreEmptyValue = ignoreMissing)
        doc.set(path, value)

"""neural-search's embedding processors: ``text_embedding`` and ``text_image_embedding`` (field maps,
batching, vectors from ML Commons' predict results)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from kit.node.errors import ApiError
from kit.node.ingest.document import METADATA_KEYS, IngestDocument, iae, ise, java_str
from kit.node.ingest.processor import Config, ExecContext, Processor, predict
from kit.node.jsonutil import java_class

__all__ = [
    "TextEmbeddingProcessor", "TextImageEmbeddingProcessor", "validate_map_value", "vectors_from_response",
]


_RESPONSE_HINT = ". Ensure the connector's post_process_function returns: {\"response\": [[float, float, ...], ...]}"


def vectors_from_response(result: Mapping[str, Any]) -> list[list[Any]]:
    """neural-search ``buildVectorFromResponse``: one vector per ``data`` tensor, or ``dataAsMap.response``."""
    vectors: list[list[Any]] = []
    for item in result.get("inference_results", []) or []:
        for tensor in item.get("output", []) or []:
            if tensor.get("data") is not None:
                vectors.append(list(tensor["data"]))
                continue
            data_map = tensor.get("dataAsMap")
            if data_map is None:
                raise ise("The remote model returned no data. Ensure the connector's post_process_function is "
                          "configured to return: {\"response\": [[float, float, ...], ...]}")
            if "response" not in data_map:
                raise ise("The remote model response is missing the required 'response' key" + _RESPONSE_HINT)
            resp = data_map["response"]
            if not isinstance(resp, list):
                kind = "null" if resp is None else java_class(resp).rsplit(".", 1)[-1]
                raise ise("The remote model 'response' field must be a list of float arrays, but got: " + kind + _RESPONSE_HINT)
            for emb in resp:
                if not isinstance(emb, list):
                    kind = "null" if emb is None else java_class(emb).rsplit(".", 1)[-1]
                    raise ise("Each element in the remote model 'response' must be a list of floats, but got: "
                              + kind + _RESPONSE_HINT)
                if emb and (isinstance(emb[0], bool) or not isinstance(emb[0], (int, float))):
                    raise ise("Each value in a remote model embedding must be a number (float), but got: "
                              + java_class(emb[0]).rsplit(".", 1)[-1] + _RESPONSE_HINT)
                vectors.append(list(emb))
    return vectors


def _unflatten(data: dict[str, Any]) -> None:
    """``ProcessorDocumentUtils.unflattenJson`` for dotted top-level keys (``{"a.b": 1}`` → ``{"a": {"b": 1}}``)."""
    for key in [k for k in data if "." in k and k not in METADATA_KEYS]:
        value = data.pop(key)
        parts = key.split(".")
        if any(not p.strip() for p in parts):
            raise iae(f"Field name '{key}' contains invalid dot usage")
        node = data
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                node[p] = nxt
            node = nxt
        node[parts[-1]] = value


def _split_key(key: str, target: Any) -> tuple[str, Any]:
    """``processNestedKey``: ``"a.b": t`` → ``("a", {"b": t})``."""
    if "." in key:
        head, rest = key.split(".", 1)
        return head, {rest: target}
    return key, target


def _unflatten_config(fmap: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, target in fmap.items():
        head, t = _split_key(key, target)
        if isinstance(t, dict):
            t = _unflatten_config(t)
            if isinstance(out.get(head), dict):
                out[head].update(t)
                continue
        out[head] = t
    return out


def validate_map_value(key: str, source: dict[str, Any], fmap: Any, depth: int) -> None:
    """``ProcessorDocumentUtils.validateMapTypeValue`` (allowEmpty = true, as text_embedding uses it)."""
    if depth > 20:
        raise iae(f"map type field [{key}] reaches max depth limit, cannot process it")
    if not isinstance(fmap, dict):
        raise iae(f"[{key}] configuration doesn't match actual value type, configuration type is: "
                  f"{java_class(fmap)}, actual value type is: {java_class(source)}")
    for k, nxt in fmap.items():
        v = source.get(k)
        if v is None:
            continue
        if isinstance(v, list):
            _validate_list_value(k, v, fmap, depth + 1)
        elif isinstance(v, dict):
            validate_map_value(k, v, nxt, depth + 1)
        elif not isinstance(v, str):
            raise iae(f"map type field [{k}] is neither string nor nested type, cannot process it")


def _validate_list_value(key: str, values: list[Any], fmap: dict[str, Any], depth: int) -> None:
    if depth > 20:
        raise iae(f"map type field [{key}] reaches max depth limit, cannot process it")
    for el in values:
        if el is None:
            raise iae(f"list type field [{key}] has null, cannot process it")
        if isinstance(el, list):
            raise iae(f"list type field [{key}] is nested list type, cannot process it")
        if isinstance(el, dict):
            validate_map_value(key, el, fmap.get(key), depth + 1)
        elif not isinstance(el, str):
            raise iae(f"list type field [{key}] has non string value, cannot process it")


def _blank_to_none(v: Any) -> Any:
    return None if isinstance(v, str) and not v.strip() else v


@dataclass
class _Slot:
    """Where one or more vectors go: ``container[key] = …``."""

    container: dict[str, Any]
    key: str
    kind: str  # "one" | "list" | "nested_list"
    count: int
    texts: list[str] = field(default_factory=list)
    elements: list[dict[str, Any]] = field(default_factory=list)  # nested_list: the list items written into
    source_path: tuple[Any, ...] = ()


def _plan(node: dict[str, Any], fmap: Mapping[str, Any], slots: list[_Slot], path: tuple[Any, ...]) -> None:
    for raw_key, raw_target in fmap.items():
        key, target = _split_key(raw_key, raw_target)
        value = node.get(key)
        if isinstance(target, dict):
            if isinstance(value, dict):
                _plan(value, target, slots, path + (key,))
            elif isinstance(value, list):
                for sub_key, sub_target in target.items():
                    k2, t2 = _split_key(sub_key, sub_target)
                    if isinstance(t2, dict):
                        for i, el in enumerate(value):
                            if isinstance(el, dict):
                                _plan(el, {k2: t2}, slots, path + (key, i))
                        continue
                    texts, elements = [], []
                    for el in value:
                        v = _blank_to_none(el.get(k2)) if isinstance(el, dict) else None
                        if v is not None:
                            texts.append(v if isinstance(v, str) else java_str(v))
                            elements.append(el)
                    if texts:
                        slots.append(_Slot({}, str(t2), "nested_list", len(texts), texts, elements, path + (key, k2)))
            continue
        value = _blank_to_none(value)
        if value is None:
            continue
        if isinstance(value, list):
            texts = [v for v in value if v is not None]
            slots.append(_Slot(node, str(target), "list", len(texts), [java_str(t) if not isinstance(t, str) else t for t in texts],
                               source_path=path + (key,)))
        elif isinstance(value, str):
            slots.append(_Slot(node, str(target), "one", 1, [value], source_path=path + (key,)))
        else:
            slots.append(_Slot(node, str(target), "one", 1, [java_str(value)], source_path=path + (key,)))


def _get_path(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        if isinstance(data, dict) and isinstance(p, str) and p in data:
            data = data[p]
        elif isinstance(data, list) and isinstance(p, int) and p < len(data):
            data = data[p]
        else:
            return None
    return data


class TextEmbeddingProcessor(Processor):
    type = "text_embedding"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.batch_size = c.integer("batch_size", 1) or 1
        if self.batch_size < 1:
            raise c.err("batch_size", "batch_size should be a positive integer")
        self.model_id = c.string("model_id") or ""
        fmap = c.mapping("field_map")
        self.skip_existing = c.boolean("skip_existing", False)
        if not self.model_id.strip():
            raise iae("model_id is null or empty, cannot process it")
        if not fmap or any(not str(k).strip() or v is None or (isinstance(v, str) and not v.strip())
                           for k, v in (fmap or {}).items()):
            raise iae("Unable to create the processor as field_map has invalid key or value")
        self.field_map: dict[str, Any] = fmap

    def prepare(self, doc: IngestDocument) -> list[_Slot]:
        _unflatten(doc.data)
        validate_map_value("field_map", doc.data, _unflatten_config(self.field_map), 1)
        slots: list[_Slot] = []
        _plan(doc.data, self.field_map, slots, ())
        return slots

    def reuse_existing(self, doc: IngestDocument, slots: list[_Slot], ctx: ExecContext) -> list[_Slot]:
        """``skip_existing``: copy vectors whose source text is unchanged from the stored document."""
        engine = ctx.service.engine
        if not self.skip_existing or engine is None or doc.index is None or doc.doc_id is None:
            return slots
        try:
            existing = engine.get_doc(doc.index, doc.doc_id)
        except ApiError:
            return slots
        if not existing.get("found"):
            return slots
        old = existing.get("_source") or {}
        remaining = []
        for slot in slots:
            old_value = _get_path(old, slot.source_path)
            if slot.kind == "nested_list":
                remaining.append(slot)
                continue
            target_path = slot.source_path[:-1] + (slot.key,)
            old_vec = _get_path(old, target_path)
            new_value = _get_path(doc.data, slot.source_path)
            if old_vec is not None and old_value == new_value:
                slot.container[slot.key] = copy.deepcopy(old_vec)
            else:
                remaining.append(slot)
        return remaining

    @staticmethod
    def write(slots: list[_Slot], vectors: list[list[Any]]) -> None:
        i = 0
        for slot in slots:
            if slot.kind == "one":
                slot.container[slot.key] = vectors[i]
                i += 1
            elif slot.kind == "list":
                slot.container[slot.key] = [{"knn": v} for v in vectors[i:i + slot.count]]
                i += slot.count
            else:
                for el in slot.elements:
                    el[slot.key] = vectors[i]
                    i += 1

    def infer(self, texts: list[str], ctx: ExecContext) -> list[list[Any]]:
        body = {"text_docs": texts, "return_number": True, "target_response": ["sentence_embedding"]}
        vectors = vectors_from_response(predict(ctx, self.model_id, body, "text_embedding"))
        if len(vectors) < len(texts):
            raise ApiError(500, "index_out_of_bounds_exception",
                           f"Index {len(vectors)} out of bounds for length {len(vectors)}")
        return vectors

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        slots = self.reuse_existing(doc, self.prepare(doc), ctx)
        texts = [t for s in slots for t in s.texts]
        if texts:
            self.write(slots, self.infer(texts, ctx))
        return doc

    def execute_batch(self, docs: list[IngestDocument], ctx: ExecContext) -> list[ApiError | None]:
        """One predict call for the texts of several documents (``AbstractBatchingProcessor``).

        Per-document errors stay with their document; a failed predict fails every document of the
        batch. Texts are sent sorted by length and mapped back, as neural-search does.
        """
        errors: list[ApiError | None] = [None] * len(docs)
        plans: list[tuple[int, list[_Slot]]] = []
        texts: list[str] = []
        for i, doc in enumerate(docs):
            try:
                slots = self.reuse_existing(doc, self.prepare(doc), ctx)
            except ApiError as exc:
                errors[i] = exc
                continue
            plans.append((i, slots))
            texts.extend(t for slot in slots for t in slot.texts)
        if not texts:
            return errors
        order = sorted(range(len(texts)), key=lambda k: len(texts[k]))
        try:
            sorted_vectors = self.infer([texts[k] for k in order], ctx)
        except ApiError as exc:
            return [e if e is not None else exc for e in errors]
        vectors: list[list[Any]] = [[] for _ in texts]
        for pos, k in enumerate(order):
            vectors[k] = sorted_vectors[pos]
        start = 0
        for _, slots in plans:
            n = sum(len(slot.texts) for slot in slots)
            self.write(slots, vectors[start:start + n])
            start += n
        return errors


class TextImageEmbeddingProcessor(Processor):
    type = "text_image_embedding"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.model_id = c.string("model_id") or ""
        self.embedding = c.string("embedding") or ""
        fmap = c.mapping("field_map")
        self.skip_existing = c.boolean("skip_existing", False)
        if not self.model_id.strip():
            raise iae("model_id is null or empty, can not process it")
        if not fmap or any(not str(k).strip() or v is None for k, v in fmap.items()):
            raise iae("Unable to create the TextImageEmbedding processor as field_map has invalid key or value")
        if any(k not in ("text", "image") for k in fmap):
            raise iae("Unable to create the TextImageEmbedding processor with provided field name(s). "
                      "Following names are supported [text,image]")
        self.field_map: dict[str, Any] = fmap

    def inputs(self, doc: IngestDocument) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, doc_field in self.field_map.items():
            if doc_field not in doc.data:
                continue
            value = doc.data[doc_field]
            if value is None:
                raise iae(f"Unsupported format of the field in the document, {doc_field} value must be a non-empty "
                          "string. Currently it is null")
            if not isinstance(value, str) or not value.strip():
                raise iae(f"Unsupported format of the field in the document, {doc_field} value must be a non-empty "
                          f"string. Currently it is '{java_str(value)}'. Type is class {java_class(value)}")
            found["inputText" if name == "text" else "inputImage"] = value
        return found

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        inputs = self.inputs(doc)
        if not inputs:
            return doc
        if self.skip_existing and self._reuse(doc, ctx):
            return doc
        docs: list[str | None] = [inputs.get("inputText")]
        if "inputImage" in inputs:
            docs.append(inputs["inputImage"])
        body = {"text_docs": docs, "return_number": True, "target_response": ["sentence_embedding"]}
        vectors = vectors_from_response(predict(ctx, self.model_id, body, "text_embedding"))
        doc.set(self.embedding, vectors[0] if vectors else [])
        return doc

    def _reuse(self, doc: IngestDocument, ctx: ExecContext) -> bool:
        engine = ctx.service.engine
        if engine is None or doc.index is None or doc.doc_id is None:
            return False
        try:
            existing = engine.get_doc(doc.index, doc.doc_id)
        except ApiError:
            return False
        old = existing.get("_source") if existing.get("found") else None
        if not old:
            return False
        if any(old.get(f) != doc.data.get(f) for f in self.field_map.values()):
            return False
        vec = _get_path(old, tuple(self.embedding.split(".")))
        if vec is None:
            return False
        doc.set(self.embedding, copy.deepcopy(vec))
        return True

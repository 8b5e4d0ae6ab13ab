"""Ingest pipelines: ``/_ingest/pipeline`` CRUD and ``_simulate``, and running documents through them.

Processors: set, remove, rename, lowercase, uppercase, trim, append, convert, split, join, foreach,
fail, drop, pipeline (OpenSearch core); text_embedding, text_image_embedding, text_chunking
(neural-search); ml_inference (ML Commons). Semantics follow OpenSearch core
(``org.opensearch.ingest``: ``IngestDocument`` paths, ``CompoundProcessor`` failure handling,
``ConfigurationUtils`` config errors) and the plugins' sources. Errors carry the real types and messages:

* creation errors are ``parse_exception`` (400) with ``processor_type``/``property_name``; errors a
  processor factory throws as ``IllegalArgumentException`` are wrapped the way
  ``ConfigurationUtils.newConfigurationException`` does (``exception``, 500, ``caused_by``);
* execution errors surface as their own type (``illegal_argument_exception`` 400,
  ``fail_processor_exception`` 500, ML Commons' errors unchanged).

Out of scope, refused at creation with a message naming the feature: ``if`` conditions and the
``script`` processor (both Painless), and the real processors not implemented here (grok, date, …).

The core calls ``engine.ingest.execute(pipeline_id, index, doc_id, source)`` → new source, or
``None`` when a ``drop`` processor dropped the document; ``execute_batch`` does the same for the
documents of one ``_bulk`` request and honours ``text_embedding``'s ``batch_size``. Pipelines are
stored as documents of the hidden system index ``.oskit-ingest-pipelines`` (so they survive restarts).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping

from kit.node.errors import ApiError
from kit.node.ingest.document import IngestDocument, ProcessorFailure, Dropped, iae, parse_error
from kit.node.ingest.embedding import TextEmbeddingProcessor
from kit.node.ingest.pipeline import Pipeline
from kit.node.ingest.processor import ExecContext, run_processor
from kit.node.jsonutil import java_class
from kit.node.pipeline_rest import PipelineRest, PipelineStore

if TYPE_CHECKING:
    from kit.node.engine import Engine
    from kit.node.routing import NodeRequest, Route

__all__ = ["IngestService"]

log = logging.getLogger(__name__)

SYSTEM_INDEX = ".oskit-ingest-pipelines"
SIMULATE_PIPELINE_ID = "_simulate_pipeline"


class IngestService(PipelineRest):
    """``/_ingest/pipeline`` REST API and ``execute`` for the write path."""

    def __init__(self, engine: "Engine | None") -> None:
        self.engine = engine
        self.store = PipelineStore(engine, SYSTEM_INDEX)
        self._parsed: dict[str, tuple[int, Pipeline]] = {}

    # ---- library API

    def put(self, pipeline_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise parse_error("[processors] required property is missing", prop="processors")
        Pipeline(pipeline_id, body)  # validate first: nothing is stored on error
        self.store.put(pipeline_id, body)
        self._parsed.pop(pipeline_id, None)
        return {"acknowledged": True}

    def pipeline(self, pipeline_id: str) -> Pipeline | None:
        body = self.store.get(pipeline_id)
        if body is None:
            return None
        cached = self._parsed.get(pipeline_id)
        if cached is not None and cached[0] == id(body):
            return cached[1]
        pipe = Pipeline(pipeline_id, body)
        self._parsed[pipeline_id] = (id(body), pipe)
        return pipe

    def exists(self, pipeline_id: str) -> bool:
        return self.store.get(pipeline_id) is not None

    def execute(self, pipeline_id: str, index: str | None, doc_id: str | None,
                source: Mapping[str, Any]) -> dict[str, Any] | None:
        """Run one document through a pipeline: the new ``_source``, or None when dropped."""
        pipe = self.pipeline(pipeline_id)
        if pipe is None:
            raise iae(f"pipeline with id [{pipeline_id}] does not exist")
        doc = IngestDocument(index, doc_id, source)
        result = self._run(pipe, doc, ExecContext(self))
        return None if result is None else result.source()

    def execute_batch(self, pipeline_id: str, docs: list[tuple[str | None, str | None, Mapping[str, Any]]]
                      ) -> list[dict[str, Any] | None | ApiError]:
        """Run several documents (one ``_bulk`` request) through a pipeline, honouring ``batch_size``.

        Each result is the new source, None (dropped) or the document's ``ApiError``. Top-level
        ``text_embedding`` processors with ``batch_size`` > 1 embed up to that many documents per
        predict call; every other processor runs per document, with the same failure handling as
        :meth:`execute`.
        """
        pipe = self.pipeline(pipeline_id)
        if pipe is None:
            return [iae(f"pipeline with id [{pipeline_id}] does not exist") for _ in docs]
        results: list[dict[str, Any] | None | ApiError] = [None] * len(docs)
        ingest_docs = [IngestDocument(index, doc_id, source) for index, doc_id, source in docs]
        ctx = ExecContext(self, pipeline_id=pipe.id)
        for doc in ingest_docs:
            doc.ingest["pipeline"] = pipe.id
            doc.executed_pipelines.append(pipe.id)
        live = list(range(len(docs)))

        def fail(i: int, failure: ProcessorFailure) -> None:
            doc = ingest_docs[i]
            if not pipe.compound.on_failure:
                results[i] = failure.cause
                return
            try:
                pipe.compound._on_failure(doc, ctx, failure)
                results[i] = doc.source()
            except ProcessorFailure as again:
                results[i] = again.cause
            except Dropped:
                results[i] = None

        for p in pipe.compound.processors:
            done: set[int] = set()
            if isinstance(p, TextEmbeddingProcessor) and p.batch_size > 1:
                for start in range(0, len(live), p.batch_size):
                    chunk = live[start:start + p.batch_size]
                    errors = p.execute_batch([ingest_docs[i] for i in chunk], ctx)
                    for i, err in zip(chunk, errors):
                        if err is not None:
                            fail(i, ProcessorFailure(err, p.type, p.tag, pipe.id))
                            done.add(i)
            else:
                for i in live:
                    try:
                        if run_processor(p, ingest_docs[i], ctx) is None:
                            results[i] = None
                            done.add(i)
                    except ProcessorFailure as failure:
                        fail(i, failure)
                        done.add(i)
                    except Dropped:
                        results[i] = None
                        done.add(i)
            live = [i for i in live if i not in done]
        for i in live:
            results[i] = ingest_docs[i].source()
        return results

    @staticmethod
    def _run(pipe: Pipeline, doc: IngestDocument, ctx: ExecContext) -> IngestDocument | None:
        try:
            return pipe.run(doc, ctx)
        except Dropped:
            return None
        except ProcessorFailure as failure:
            raise failure.cause from None

    # ---- simulate

    def simulate(self, pipeline_id: str | None, body: Any, verbose: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise parse_error("[docs] required property is missing", prop="docs")
        cfg = dict(body)
        if pipeline_id is not None:
            pipe = self.pipeline(pipeline_id)
            if pipe is None:
                raise iae(f"pipeline [{pipeline_id}] does not exist")
        else:
            pconf = cfg.get("pipeline")
            if pconf is None:
                raise parse_error("[pipeline] required property is missing", prop="pipeline")
            if not isinstance(pconf, dict):
                raise parse_error(f"[pipeline] property isn't a map, but of type [{java_class(pconf)}]",
                                  prop="pipeline")
            pipe = Pipeline(SIMULATE_PIPELINE_ID, pconf)
        docs = cfg.get("docs")
        if docs is None:
            raise parse_error("[docs] required property is missing", prop="docs")
        if not isinstance(docs, list):
            raise parse_error(f"[docs] property isn't a list, but of type [{java_class(docs)}]", prop="docs")
        results = []
        for d in docs:
            if not isinstance(d, dict):
                raise parse_error(f"[docs] property isn't a map, but of type [{java_class(d)}]", prop="docs")
            if "_source" not in d:
                raise parse_error("[_source] required property is missing", prop="_source")
            source = d["_source"]
            if not isinstance(source, dict):
                raise parse_error(f"[_source] property isn't a map, but of type [{java_class(source)}]",
                                  prop="_source")
            doc = IngestDocument(str(d.get("_index", "_index")), str(d.get("_id", "_id")), source,
                                 routing=d.get("_routing"))
            results.append(self._simulate_one(pipe, doc, verbose))
        return {"docs": results}

    def _simulate_one(self, pipe: Pipeline, doc: IngestDocument, verbose: bool) -> Any:
        if verbose:
            trace: list[dict[str, Any]] = []
            ctx = ExecContext(self, trace=trace)
            try:
                pipe.run(doc, ctx)
            except (ProcessorFailure, Dropped):
                pass  # the failing processor is already in the trace
            return {"processor_results": trace}
        try:
            result = self._run(pipe, doc, ExecContext(self))
        except ApiError as exc:
            return {"error": exc.error_object()}
        if result is None:
            return None
        return {"doc": result.snapshot(include_pipeline=False)}

    # ---- REST

    def routes(self) -> list["Route"]:
        from kit.node.routing import Route

        return [
            Route("GET", "/_ingest/pipeline", self._rest_get_all),
            Route("GET", "/_ingest/pipeline/{id}", self._rest_get),
            Route("PUT", "/_ingest/pipeline/{id}", self._rest_put),
            Route("DELETE", "/_ingest/pipeline/{id}", self._rest_delete),
            Route("GET", "/_ingest/pipeline/_simulate", self._rest_simulate),
            Route("POST", "/_ingest/pipeline/_simulate", self._rest_simulate),
            Route("GET", "/_ingest/pipeline/{id}/_simulate", self._rest_simulate),
            Route("POST", "/_ingest/pipeline/{id}/_simulate", self._rest_simulate),
        ]


    def _rest_simulate(self, req: "NodeRequest") -> Any:
        if not req.has_body():
            raise ApiError(400, "parse_exception", "request body or source parameter is required")
        return self.simulate(req.path_params.get("id"), req.json(), verbose=req.flag("verbose"))

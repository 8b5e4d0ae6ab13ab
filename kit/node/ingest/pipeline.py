"""A parsed ingest pipeline and the processor types it may name."""

from __future__ import annotations

import copy
from typing import Any, Mapping

from kit.node.ingest.core import (
    AppendProcessor,
    ConvertProcessor,
    DropProcessor,
    FailProcessor,
    ForeachProcessor,
    JoinProcessor,
    LowercaseProcessor,
    PipelineProcessor,
    RemoveProcessor,
    RenameProcessor,
    SetProcessor,
    SplitProcessor,
    TrimProcessor,
    UppercaseProcessor,
)
from kit.node.ingest.document import IngestDocument, ProcessorFailure, config_error, ise, parse_error
from kit.node.ingest.embedding import TextEmbeddingProcessor, TextImageEmbeddingProcessor
from kit.node.ingest.ml_inference import MLInferenceProcessor
from kit.node.ingest.text_chunking import TextChunkingProcessor
from kit.node.ingest.processor import (
    CompoundProcessor,
    Config,
    ExecContext,
    Factories,
    restore,
    read_processors,
)

__all__ = ["FACTORIES", "Pipeline"]


FACTORIES: Factories = {
    "set": SetProcessor,
    "remove": RemoveProcessor,
    "rename": RenameProcessor,
    "lowercase": LowercaseProcessor,
    "uppercase": UppercaseProcessor,
    "trim": TrimProcessor,
    "append": AppendProcessor,
    "convert": ConvertProcessor,
    "split": SplitProcessor,
    "join": JoinProcessor,
    "fail": FailProcessor,
    "drop": DropProcessor,
    "foreach": ForeachProcessor,
    "pipeline": PipelineProcessor,
    "text_embedding": TextEmbeddingProcessor,
    "text_image_embedding": TextImageEmbeddingProcessor,
    "ml_inference": MLInferenceProcessor,
    "text_chunking": TextChunkingProcessor,
}


class Pipeline:
    """A parsed ingest pipeline."""

    def __init__(self, pipeline_id: str, config: Mapping[str, Any], factories: Factories | None = None) -> None:
        factories = factories or FACTORIES
        cfg = copy.deepcopy(dict(config))
        self.id = pipeline_id
        c = Config(None, None, cfg)  # type: ignore[arg-type]
        self.description = c.string("description", required=False)
        self.version = c.integer("version", None)
        cfg.pop("_meta", None)
        processors_cfg = c.listing("processors")
        on_failure_cfg = c.listing("on_failure", required=False)
        processors = read_processors(factories, processors_cfg)
        on_failure = read_processors(factories, on_failure_cfg, "on_failure")
        if cfg:
            raise parse_error(f"pipeline [{pipeline_id}] doesn't support one or more provided configuration "
                              f"parameters [{', '.join(cfg)}]")
        if on_failure_cfg is not None and not on_failure:
            raise config_error(None, None, "on_failure",
                               f"pipeline [{pipeline_id}] cannot have an empty on-failure option defined")
        self.compound = CompoundProcessor(processors, on_failure)

    def run(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument | None:
        if self.id in doc.executed_pipelines:
            raise ProcessorFailure(ise(f"Cycle detected for pipeline: {self.id}"), "pipeline", None, ctx.pipeline_id)
        doc.executed_pipelines.append(self.id)
        previous_pipeline = doc.ingest.get("pipeline")
        previous_ctx = ctx.pipeline_id
        doc.ingest["pipeline"] = self.id
        ctx.pipeline_id = self.id
        try:
            return self.compound.execute(doc, ctx)
        finally:
            doc.executed_pipelines.pop()
            ctx.pipeline_id = previous_ctx
            restore(doc.ingest, "pipeline", previous_pipeline)

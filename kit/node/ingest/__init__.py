"""Ingest pipelines: ``/_ingest/pipeline`` CRUD and ``_simulate``, and running documents through them.

Modules: ``service`` (the REST API and the write path's ``execute``), ``pipeline`` (a parsed pipeline,
the processor types), ``processor`` (config reading, failure handling, trace), ``document``
(``IngestDocument``, templates, errors), and the processors by family: ``core`` (OpenSearch core),
``embedding`` and ``text_chunking`` (neural-search), ``ml_inference`` (ML Commons).
"""

from kit.node.ingest.document import IngestDocument, ProcessorFailure, render_template
from kit.node.ingest.pipeline import FACTORIES, Pipeline
from kit.node.ingest.service import IngestService

__all__ = ["FACTORIES", "IngestDocument", "IngestService", "Pipeline", "ProcessorFailure", "render_template"]

"""The main job, over a provisioned cluster: :mod:`~kit.job.ingest` (files → documents, embedded in the
cluster), :mod:`~kit.job.search` (text / image / hybrid queries), :mod:`~kit.job.similar` (images like
this one, in bands), :mod:`~kit.job.evaluate` (mAP / recall over a labelled set), :mod:`~kit.job.gallery`
(results as HTML), :mod:`~kit.job.ui` (the search page) and :mod:`~kit.job.demo` (node + model server +
sample data in one command). The CLI commands are in :mod:`kit.cli.job`.
"""

from __future__ import annotations

__all__: list[str] = []

"""ML Commons (``/_plugins/_ml``) for the embedded node: model groups, models, chunks, tasks, connectors,
local TEXT_EMBEDDING inference and remote connectors. See :class:`MLCommons`."""

from __future__ import annotations

from kit.node.ml.service import MLCommons

__all__ = ["MLCommons"]

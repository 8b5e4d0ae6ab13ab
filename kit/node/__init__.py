"""The oskit embedded node: an OpenSearch-compatible engine (REST subset, durable, FAISS + BM25).

Start one with :class:`kit.node.server.NodeServer` (in-process) or ``oskit node start``. The node and
the rest of the kit meet only over HTTP.
"""

from __future__ import annotations

__all__ = ["DEFAULT_VERSION"]

DEFAULT_VERSION = "3.3.0"

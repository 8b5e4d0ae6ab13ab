"""Text embeddings from a local sentence-transformers model (MiniLM by default) for ``POST /text/embed``.

For clusters that cannot run the model inside ML Commons (a real node without DJL's PyTorch natives,
see docs/real-node.md): the connector speaks the default.embedding contract, texts in, vectors out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kit.models.export import load_sentence_transformer, resolve_source


class TextEmbedder:
    """``embed(texts) -> list of L2-normalised float32 vectors`` (one batch per call)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.model: Any = load_sentence_transformer(resolve_source(source))
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(dim())  # (renamed in sentence-transformers 5)

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return [np.asarray(v, dtype=np.float32) for v in out]

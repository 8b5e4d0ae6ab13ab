"""The model server (``oskit serve``): CLIP embeddings, OCR, tags and captions over HTTP.

Build the app with :func:`kit.serve.app.create_app`; nothing heavy is imported here.
"""

from __future__ import annotations

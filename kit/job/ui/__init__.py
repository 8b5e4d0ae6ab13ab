"""The search page: a small Starlette app (:func:`kit.job.ui.app.create_app`) plus static HTML/JS/CSS."""

from __future__ import annotations

__all__: list[str] = []

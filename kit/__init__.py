"""oskit: provision OpenSearch for multimodal search from YAML kept in git.

The public API is re-exported here as the parts land; ``oskit`` the CLI is a thin layer over it.
"""

from __future__ import annotations

from kit.errors import KitError

__all__ = ["KitError", "__version__"]

__version__ = "0.1.0"

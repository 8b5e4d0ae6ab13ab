"""oskit: provision OpenSearch for multimodal search from YAML kept in git.

The library is the product; the ``oskit`` CLI is a thin layer over it::

    import kit
    from kit.cluster.client import connect

    client = connect("http://127.0.0.1:9200")
    project = kit.load_project(".")
    plan = kit.plan(project, client)      # read-only: ordered changes + a fingerprint of what it saw
    kit.apply(plan, client)               # converge; idempotent and resumable

Names are imported lazily so that ``import kit`` (and ``oskit --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from kit import _moved

__all__ = [
    "ApplyResult",
    "KitError",
    "Plan",
    "Project",
    "__version__",
    "apply",
    "destroy",
    "diff",
    "load_project",
    "plan",
    "status",
    "validate",
]

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "KitError": "kit.errors",
    "Project": "kit.config",
    "load_project": "kit.config",
    "ApplyResult": "kit.cluster",
    "Plan": "kit.cluster",
    "apply": "kit.cluster",
    "destroy": "kit.cluster",
    "diff": "kit.cluster",
    "plan": "kit.cluster",
    "status": "kit.cluster",
    "validate": "kit.cluster",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# the module paths from before kit/cli/ and kit/job/ (one release, with a DeprecationWarning)
_moved.install()

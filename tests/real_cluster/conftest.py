"""A real OpenSearch cluster of 3 nodes on loopback (`make test-real-cluster`), from kit.realnode.

Like tests/real, it runs only when asked for (``pytest tests/real_cluster``) and a cluster that cannot
form is an error, never a skip. Three JVMs with 512 MB heaps: about 4 GB of memory and a few minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
VERSION = os.environ.get("OSKIT_REAL_VERSION") or None
HEAP = os.environ.get("OSKIT_REAL_CLUSTER_HEAP") or "512m"


def _asked_for(config: pytest.Config) -> bool:
    return any(HERE == (p := Path(str(a).split("::")[0]).resolve()) or HERE in p.parents for a in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _asked_for(config):
        return
    ours = [i for i in items if HERE in Path(str(i.fspath)).resolve().parents]
    if ours:
        config.hook.pytest_deselected(items=ours)
        items[:] = [i for i in items if i not in ours]

"""Module paths from before the package layout of issue #12, kept for one release (removed in 0.2.0).

``import kit.search`` (or ``from kit.cli_job import search``) still works: it warns with a
DeprecationWarning naming the new path and gives the module at that path, the same object, so
monkeypatching through the old name still reaches the code. The aliases are a meta-path finder rather
than a small file at each old path because such a file would turn git's rename of the module into an
edit, and branches cut before the move could not merge their changes into the moved files.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Sequence

REMOVED_IN = "0.2.0"

# old module path -> new module path
MOVED: dict[str, str] = {
    "kit.cli_common": "kit.cli.common",
    "kit.cli_provision": "kit.cli.provision",
    "kit.cli_node": "kit.cli.node",
    "kit.cli_models": "kit.cli.models",
    "kit.cli_clip": "kit.cli.train_clip",
    "kit.cli_job": "kit.cli.job",
    "kit.ingest": "kit.job.ingest",
    "kit.search": "kit.job.search",
    "kit.similar": "kit.job.similar",
    "kit.evaluate": "kit.job.evaluate",
    "kit.gallery": "kit.job.gallery",
    "kit.demo": "kit.job.demo",
    "kit.ui": "kit.job.ui",
    "kit.ui.app": "kit.job.ui.app",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a throwaway module; exec_module swaps in the real one

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__
        # stacklevel 2 skips importlib's own frames: the warning points at the importing line
        warnings.warn(f"{old} moved to {self.new}; the old path stops working in oskit {REMOVED_IN}",
                      DeprecationWarning, stacklevel=2)
        # the import system returns whatever sys.modules holds under the old name once this returns
        sys.modules[old] = importlib.import_module(self.new)


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the finder first (it answers only for the old names, which have no files any more), so that
    ``kit.ui.app`` is not found a second time, under its old name, below the aliased ``kit.ui``."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())

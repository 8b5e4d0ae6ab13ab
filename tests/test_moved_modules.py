"""The module paths from before kit/cli/ and kit/job/ keep working for one release: importing one warns
(DeprecationWarning naming the new path) and gives the module at its new path, the same object."""

from __future__ import annotations

import importlib
import sys

import pytest

from kit._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_warns_and_gives_the_moved_module(old: str, monkeypatch: pytest.MonkeyPatch) -> None:
    new = importlib.import_module(MOVED[old])
    for name in (old, old.rsplit(".", 1)[0]):  # kit.ui.app also needs kit.ui imported afresh
        if name in MOVED:
            monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.warns(DeprecationWarning) as caught:
        module = importlib.import_module(old)
    messages = [str(w.message) for w in caught]
    assert f"{old} moved to {MOVED[old]}; the old path stops working in oskit 0.2.0" in messages, messages
    assert module is new
    assert sys.modules[old] is new and new.__name__ == MOVED[old]  # the moved module keeps its own name


def test_an_old_name_still_reaches_the_public_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "kit.search", raising=False)
    monkeypatch.delitem(sys.modules, "kit.cli_job", raising=False)
    with pytest.warns(DeprecationWarning):
        from kit.search import search
        from kit.cli_job import eval_cmd
    from kit.job.search import search as new_search
    from kit.cli.job import eval_cmd as new_eval_cmd

    assert search is new_search and eval_cmd is new_eval_cmd


def test_the_console_script_and_the_library_entry_points_stay() -> None:
    import kit
    from kit.cli import cli, main

    assert callable(main) and cli.name == "cli"
    assert callable(kit.plan) and callable(kit.load_project)
    assert callable(importlib.import_module("kit.serve.app").create_app)
    assert callable(importlib.import_module("kit.node.app").create_app)


def test_nothing_in_kit_or_tests_imports_an_old_path() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in [*(root / "kit").rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "bench").rglob("*.py")]:
        if path.name == "test_moved_modules.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            offenders += [f"{path.relative_to(root)}:{node.lineno} {n}" for n in names if n in MOVED]
    assert not offenders, offenders

"""The one exception tree: every error class the library raises on purpose lives in kit/errors.py and is
drawn in its docstring (house style, habit 2)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kit.errors

KIT = Path(kit.errors.__file__).parent
# The model server's HTTP-facing errors (status + code for its JSON error shape) stay next to the server;
# they derive from ServeError and never leave it.
SERVER_SIDE = {"kit/serve"}
# Outside the kit's own tree: the node answers in OpenSearch's error shape with its own classes.
NOT_THE_KIT = {"kit/node", "kit/realnode", "kit/oracle"}


def _bases(node: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else b.attr for b in node.bases if isinstance(b, (ast.Name, ast.Attribute))}


def test_every_kit_error_class_is_defined_in_kit_errors() -> None:
    tree_names = set(kit.errors.__all__)
    stray = []
    for path in sorted(KIT.rglob("*.py")):
        rel = path.relative_to(KIT.parent).as_posix()
        if rel == "kit/errors.py" or any(rel.startswith(p + "/") for p in SERVER_SIDE | NOT_THE_KIT):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and _bases(node) & tree_names:
                stray.append(f"{rel}: {node.name}")
    assert stray == [], f"define these in kit/errors.py (and draw them in its docstring): {stray}"


def test_the_docstring_draws_every_error() -> None:
    doc = kit.errors.__doc__ or ""
    undrawn = [name for name in kit.errors.__all__ if not re.search(rf"(^|\s){name}\s", doc, re.M)]
    assert undrawn == []

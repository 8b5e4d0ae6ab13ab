"""The package layout stays walkable (issue #12): no import circles inside ``kit``, imports only in the
directions docs/ARCHITECTURE.md states, and no module over about 1,000 lines unless its docstring says
why in a line starting ``Size:``.

The import graph is read with :mod:`ast`, nothing is imported or run. It holds every ``import`` and
``from … import`` statement of a module wherever it stands: at module level, inside functions (a lazy
import still ties the two modules together) and under ``if TYPE_CHECKING:`` (a type-only import is
still a dependency a reader has to follow). ``from pkg import name`` counts as an import of the module
``pkg.name`` when that module exists, else of ``pkg``. Not in the graph: the implicit import of a
module's parent packages, and modules loaded by name at run time (``importlib.import_module``, e.g.
the CLI's lazily loaded command groups).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "kit"
MAX_LINES = 1000

# Known circles, by the set of modules in them, each with the branch that removes it. An entry that no
# longer matches a circle fails the test too, so it is deleted when that branch is merged.
ALLOWED_CIRCLES: dict[frozenset[str], str] = {
}

# Modules over MAX_LINES that do not say why yet, each with the branch that splits them or states the
# reason. As above, an entry that is no longer needed fails the test.
ALLOWED_LONG: dict[str, str] = {
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(KIT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@functools.lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    """module -> the ``kit`` modules it imports (see the module docstring for what counts)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in modules:
                        edges.add(full)
                    elif base in modules:
                        edges.add(base)
        edges.discard(name)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[tuple[frozenset[str], list[str]]]:
    """Each strongly connected component of more than one module (the modules that reach each other),
    with the shortest cycle through its first module (``a -> b -> … -> a``) to show; sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graph is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(((frozenset(c), _a_cycle(graph, c)) for c in components), key=lambda fc: fc[1])


def _a_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest path from the component's first module back to itself (BFS inside the component)."""
    start = min(component)
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if w not in previous:
                previous[w] = v
                queue.append(w)
    raise AssertionError(f"not a cycle: {sorted(component)}")


def test_no_import_circles_inside_kit() -> None:
    found = circles(import_graph())
    unexpected = [f"{' -> '.join(cycle)} (all of: {', '.join(sorted(members))})"
                  for members, cycle in found if members not in ALLOWED_CIRCLES]
    assert not unexpected, ("import circles inside kit (move what both sides need into a module both "
                            "import, see docs/ARCHITECTURE.md):\n  " + "\n  ".join(unexpected))
    stale = [f"{sorted(k)} ({v})" for k, v in ALLOWED_CIRCLES.items() if k not in {m for m, _ in found}]
    assert not stale, f"these circles are gone: delete their ALLOWED_CIRCLES entries: {stale}"


# docs/ARCHITECTURE.md, "Layout and dependency direction": part -> the parts it never imports
NEVER_IMPORTS: dict[str, set[str]] = {
    "kit.cluster": {"kit.serve", "kit.node", "kit.job"},
    "kit.node": {"kit.cluster", "kit.serve", "kit.job"},  # the node and the kit meet only over HTTP
}


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_imports_go_the_documented_way() -> None:
    wrong = []
    for module, imported in import_graph().items():
        for other in sorted(imported):
            part, other_part = _part(module), _part(other)
            if part != other_part and (other_part in NEVER_IMPORTS.get(part, set())
                                       or (other_part == "kit.cli" and part != "kit.cli")):
                wrong.append(f"{module} imports {other}")
    assert not wrong, "imports against the dependency direction of docs/ARCHITECTURE.md:\n  " + "\n  ".join(wrong)


def _states_a_reason(path: Path) -> bool:
    doc = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
    return any(line.strip().startswith("Size:") for line in doc.splitlines())


def test_no_long_module_without_a_stated_reason() -> None:
    long = {}
    for path in sorted(KIT.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and not _states_a_reason(path):
            long[path.relative_to(ROOT).as_posix()] = lines
    unexpected = [f"{p} ({n} lines)" for p, n in long.items() if p not in ALLOWED_LONG]
    assert not unexpected, (f"modules over {MAX_LINES} lines: split them by concern, or say why not in a "
                            f"'Size: …' line of the module docstring: {unexpected}")
    stale = [f"{p} ({b})" for p, b in ALLOWED_LONG.items() if p not in long]
    assert not stale, f"these modules are short now or state a reason: delete their ALLOWED_LONG entries: {stale}"


def test_the_graph_sees_each_kind_of_import() -> None:
    """The reader finds a circle made of a module-level, a function-level and a TYPE_CHECKING import,
    and relative imports; checked on the real graph's known edges so the test needs no fixture package."""
    graph = import_graph()
    assert "kit.serve.errors" in graph["kit.serve.engine"]  # module level
    assert "kit.serve.engine" in graph["kit.serve.app"]  # inside a function
    assert "kit.node.engine" in graph["kit.node.routing"]  # under TYPE_CHECKING
    assert circles({"a": {"b"}, "b": {"c", "a"}, "c": {"a"}, "d": {"a"}}) == [(frozenset("abc"), ["a", "b", "a"])]
    assert circles({"a": {"b"}, "b": set()}) == []

"""The package's shape: no import cycles between Distill's modules, and no module importing another's private name.

Function-level (lazy) imports count: a cycle hidden behind a lazy import is still a cycle. Imports under
`if TYPE_CHECKING:` do not (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / "distill").rglob("*.py")):
        parts = p.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _runtime_imports(tree: ast.AST):
    """ImportFrom / Import nodes outside `if TYPE_CHECKING:` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in skip]


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, p in mods.items():
        for node in _runtime_imports(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges[m].update(a.name for a in node.names if a.name in mods)
                continue
            if not (node.module or "").startswith("distill"):
                continue
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                edges[m].add(sub if sub in mods else node.module)
                if a.name.startswith("_") and not a.name.startswith("__"):
                    private.append(f"{m} imports {a.name} from {node.module}")
        edges[m].discard(m)
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                out.append(sorted([v, *comp]))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    edges, _ = _graph()
    assert len(edges) > 50  # the walk found the package
    assert _cycles(edges) == []


def test_no_private_names_imported_across_modules():
    assert _graph()[1] == []

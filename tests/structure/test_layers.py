"""The import graph is the layering README.md promises, and it has no cycles.

Every import counts, including those inside functions (lazy imports are how cycles hide).
Layers, bottom up: ``muse.errors``; ``muse.core``; ``muse.wire``; ``muse.client``; ``muse.cli``.
``musehub`` sits on ``muse.core`` and ``muse.wire`` and never imports the client or the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: layer -> the layers (prefixes) it may import from; anything not listed is forbidden.
ALLOWED = {
    "muse.errors": {"muse.errors"},
    "muse.core": {"muse.errors", "muse.core"},
    "muse.wire": {"muse.errors", "muse.core", "muse.wire"},
    "muse.client": {"muse.errors", "muse.core", "muse.wire", "muse.client"},
    "muse.cli": {"muse", "muse.errors", "muse.core", "muse.wire", "muse.client", "muse.cli"},
    "musehub": {"muse.errors", "muse.core", "muse.wire", "musehub"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Project modules imported anywhere in the file (absolute names)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in ("muse", "musehub")}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        # "from muse.core import objects" names a module; "from muse.core.objects import X" not
        graph[name] = {m for m in _imports(path, name) if m in files} - {name}
    return graph


def _layer(module: str) -> str:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return module  # muse, muse.__main__


def test_no_layer_imports_upwards() -> None:
    bad = []
    for mod, deps in sorted(_graph().items()):
        allowed = ALLOWED.get(_layer(mod))
        if allowed is None:
            continue
        for dep in sorted(deps):
            if _layer(dep) not in allowed:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:  # Tarjan, iterative over a small graph is not needed
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    # A package's __init__ importing its own submodules is not a cycle worth reporting.
    real = [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c)]
    assert not real, "import cycles: " + "; ".join(" <-> ".join(c) for c in real)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The analysis itself: function-level and relative imports count."""
    f = tmp_path / "m.py"
    f.write_text(
        "import os\n"
        "from . import sibling\n"
        "from ..wire.verify import x\n"
        "def f():\n"
        "    from muse.cli import main\n"
    )
    got = _imports(f, "muse.core.m")
    assert {"muse.core.sibling", "muse.wire.verify", "muse.cli.main"} <= got
    assert "os" not in got

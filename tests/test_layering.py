"""The package's dependencies point one way: every module's imports (function-level and TYPE_CHECKING ones
included) are read from its source, and any cycle between circlebot's modules fails the test, naming it.
The core also must not reach up into features, adapters or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "circlebot"


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every circlebot module `name` imports, anywhere in its body. `from pkg import mod` counts as `pkg.mod`
    when `mod` is a module; otherwise as `pkg`."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    found.discard(name)
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _why(graph: dict[str, set[str]], comp: list[str]) -> str:
    members = set(comp)
    return "; ".join(f"{a} -> {b}" for a in comp for b in sorted(graph[a] & members))


def test_the_reader_finds_a_cycle_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_imports_are_read(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from circlebot.x import y\n    import circlebot.z\n", encoding="utf-8")
    assert _imports("circlebot.m", f, {"circlebot.x", "circlebot.x.y", "circlebot.z"}) == {
        "circlebot.x.y", "circlebot.z"}


def test_no_import_cycle() -> None:
    graph = _graph()
    assert len(graph) > 20, "the reader found too few modules: is SRC right?"
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_why(graph, c) for c in cycles)


def test_the_core_depends_on_nothing_above_it() -> None:
    graph = _graph()
    above = ("circlebot.features", "circlebot.adapters", "circlebot.cli", "circlebot.web")
    core = [m for m in graph if m == "circlebot.core" or m.startswith("circlebot.core.")]
    wrong = {m: sorted(d for d in graph[m] if d.startswith(above)) for m in core}
    assert not {m: d for m, d in wrong.items() if d}, wrong


def test_features_depend_on_the_core_only() -> None:
    """A feature reaches the bot through `core` (Context, Bot, EventHandler), never through the composition
    root, an adapter or the CLI: the router is given the features, not the other way round."""
    graph = _graph()
    above = ("circlebot.app", "circlebot.adapters", "circlebot.cli", "circlebot.web", "circlebot.export")
    features = [m for m in graph if m.startswith("circlebot.features.")]
    assert len(features) >= 6, features
    wrong = {m: sorted(d for d in graph[m] if d.startswith(above)) for m in features}
    assert not {m: d for m, d in wrong.items() if d}, wrong

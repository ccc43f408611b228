"""The import graph of ``src/nmodal``: arrows only point down, and nothing imports in a circle.

Every import of an nmodal module counts, at module level or inside a function (a lazy
import is still an arrow); only imports under ``if TYPE_CHECKING:`` are left out. The layer
of each package is written once, here and in ``docs/architecture.md``: a module may import
its own package and packages of a lower layer, never a peer or a higher one. In the modules
listed in ``ANNOTATED`` every function-level import of an nmodal module says why on its line.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "nmodal"

# Lower number = lower layer. Top-level modules (errors.py, ...) count as packages.
LAYERS: dict[str, int] = {
    "errors": 0,
    "jsonfile": 1,
    "atomic": 1,
    "integrity": 1,
    "lifeline": 1,
    "_forkserver_lifeline": 2,  # imported only by the multiprocessing forkserver
    "ops": 1,
    "media": 2,
    "encoders": 2,
    "losses": 2,
    "retrieval": 2,
    "sources": 3,
    "model": 3,
    "features": 4,
    "train": 5,
    "classify": 5,
    "index": 5,
    "evaluation": 6,
    "serve": 6,
    "report": 7,
    "demo": 8,
    "cli": 9,
    "__main__": 10,
    "__init__": 10,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom, files: set[str]) -> list[str]:
    """What ``from X import a, b`` depends on: ``X.a`` where that is a module (``from pkg
    import submodule``), else ``X`` itself."""
    if node.level:
        parts = module.split(".")
        if not is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def import_graph() -> dict[str, set[str]]:
    """module -> the nmodal modules it imports (existing modules only)."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _type_checking_nodes(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = _resolve(module, is_package, node, set(files))
            else:
                continue
            for name in names:
                # the deepest existing module a dotted name refers to
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name.startswith("nmodal.") and name != module:
                    graph[module].add(name)
        graph.setdefault(module, set())
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


GRAPH = import_graph()


def test_every_package_has_a_layer():
    unknown = sorted({_package(m) for m in GRAPH} - set(LAYERS))
    assert not unknown, f"give these packages a layer in tests/test_architecture.py: {unknown}"


def test_arrows_only_point_down():
    upward = []
    for module, targets in GRAPH.items():
        src = _package(module)
        for target in targets:
            dst = _package(target)
            if dst != src and LAYERS.get(dst, 99) >= LAYERS.get(src, -1):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports into a peer or a higher layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_between_modules():
    assert not _cycles(GRAPH), f"import cycles: {_cycles(GRAPH)}"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder_on_known_graphs(graph, expected):
    assert _cycles(graph) == expected


def test_graph_sees_function_level_imports():
    # the trainer imports the retrieval metrics; the CLI's sub-commands import lazily
    assert "nmodal.retrieval" in GRAPH["nmodal.train.trainer"]
    assert any(t.startswith("nmodal.train") for t in GRAPH["nmodal.cli.train"])


# Every function-level import of an nmodal module says why on its line
# (``# lazy: <reason>``, e.g. ``--help start-up``, ``PyAV only when decoding``).
ANNOTATED = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py"))


def unexplained_lazy_imports(source: str) -> list[int]:
    """Line numbers of function-level imports of nmodal modules without ``# lazy:``."""
    lines = source.splitlines()
    found: set[int] = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["nmodal"]
            else:
                continue
            nmodal = any(n.split(".")[0] == "nmodal" for n in names)
            if nmodal and "# lazy:" not in lines[node.lineno - 1]:
                found.add(node.lineno)
    return sorted(found)


def test_lazy_import_finder_on_known_sources():
    source = (
        "import os\n"
        "def f():\n"
        "    import json\n"
        "    from nmodal.model import X  # lazy: --help start-up\n"
        "    from nmodal.train import Y\n"
        "    def g():\n"
        "        import nmodal.index\n"
    )
    assert unexplained_lazy_imports(source) == [5, 7]


@pytest.mark.parametrize("relative", ANNOTATED)
def test_function_level_imports_say_why(relative):
    missing = unexplained_lazy_imports((SRC / relative).read_text())
    assert not missing, f"src/nmodal/{relative}: lines {missing} import lazily without '# lazy:'"

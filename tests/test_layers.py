"""The package's import graph, drawn from the code with `ast` (every import, also those inside functions and
under TYPE_CHECKING): no cycles, and no import from a lower layer up to a higher one.

Layers, bottom to top: the card model; shared building blocks; the serving pipeline; the tools on top of it
(evaluation, then induction, which reviews with evaluation); the edge (settings, the HTTP API, the CLI).

`python tests/test_layers.py` prints the graph by layer."""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "service" / "scribe_rm"
LAYERS = [
    ("card model", ("scribe_rm", "scribe_rm.library")),
    ("building blocks", ("scribe_rm.blocks",)),
    ("pipeline", ("scribe_rm.pipeline",)),
    ("evaluation", ("scribe_rm.evaluation",)),
    ("induction", ("scribe_rm.induction",)),
    ("edge", ("scribe_rm.settings", "scribe_rm.api", "scribe_rm.cli")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `module` imports, anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            # `from . import metrics` names a module; `from .judges import Judge` names something in one
            targets = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != module)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {module: imports_of(module, path, set(found)) for module, path in found.items()}


def layer_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (rank, prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_is_in_a_layer():
    for module in modules():
        layer_of(module)


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in graph().items() for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert upward == []


def test_the_import_graph_has_no_cycles():
    assert cycles(graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    edges = {"scribe_rm.pipeline.a": {"scribe_rm.pipeline.b"}, "scribe_rm.pipeline.b": {"scribe_rm.pipeline.a"}}
    assert cycles(edges) == [["scribe_rm.pipeline.a", "scribe_rm.pipeline.b"]]
    assert layer_of("scribe_rm.api.app") > layer_of("scribe_rm.pipeline.scorer") > layer_of("scribe_rm.library.cards")


def test_only_the_http_layer_speaks_http():
    words = re.compile(r"status_code|HTTPException")
    offenders = [f"{path.relative_to(PACKAGE_DIR)}:{n}" for path in PACKAGE_DIR.rglob("*.py")
                 if not module_name(path).startswith("scribe_rm.api")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if words.search(line)]
    assert offenders == []


def test_only_the_edge_reads_the_settings():
    readers = sorted(m for m, targets in graph().items() if "scribe_rm.settings" in targets)
    assert all(layer_of(m) == len(LAYERS) - 1 for m in readers), readers


if __name__ == "__main__":
    edges = graph()
    by_layer: dict[int, list[str]] = defaultdict(list)
    for module in edges:
        by_layer[layer_of(module)].append(module)
    for rank in sorted(by_layer, reverse=True):
        print(f"== {LAYERS[rank][0]}")
        for module in sorted(by_layer[rank]):
            targets = ", ".join(t.removeprefix("scribe_rm.") for t in sorted(edges[module]))
            print(f"  {module.removeprefix('scribe_rm.') or 'scribe_rm'} -> {targets or '-'}")
    problems = cycles(edges)
    print(f"cycles: {problems or 'none'}")
    sys.exit(1 if problems else 0)

"""The package's structure, checked from its source: no import cycle, no import from a higher layer,
no late import of the library's own modules below the command layers, no import of another module's
private names, no module over 500 lines.

Imports are read with ``ast`` from every module, at module level and inside functions alike (a late
import is still an edge); only imports under ``if TYPE_CHECKING:`` (never run) are left out. Run it
alone with ``pytest tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "fractal_embeddings"
MAX_LINES = 500

# Lower layers never import higher ones: data <- encoders <- model <- runs <- deploy / report / cli.
# A module's layer is the one of the longest prefix listed here.
LAYERS: dict[str, int] = {
    # 0 base: errors, argument checks, optional extras, atomic writes, devices, executors
    "_version": 0,
    "errors": 0,
    "validation": 0,
    "extras": 0,
    "atomic": 0,
    "devices": 0,
    "executors": 0,
    "stats": 0,
    # 1 data: taxonomies, loaders, tables, the data home
    "data": 1,
    # 2 persistence: the typed run record (reads and writes JSON, builds no model)
    "records": 2,
    "record_blocks": 2,
    "record_fields": 2,
    # 3 encoders: the embedding cache, trusted model folders, the head's self-contained module
    "cache": 3,
    "trust": 3,
    "fractal_head": 3,
    "encoders": 3,
    "model_files": 3,
    "split_models": 3,
    # 4 model: heads, weights, objectives, training, scoring (evaluation), sentence-transformers integration
    "heads": 4,
    "weights": 4,
    "objectives": 4,
    "training": 4,
    "evaluation": 4,
    "backbone": 4,
    "st": 4,
    "analysis": 4,
    "induce": 4,
    "retrieval": 4,
    # 5 runs: a trained run, its record, fine-tuning
    "runs": 5,
    "run": 5,
    "recording": 5,
    "finetune": 5,
    "finetune_recipe": 5,
    "finetune_config": 0,
    "store": 5,
    # 6 deploy / report / cli
    "export": 6,
    "card": 6,
    "index": 6,
    "explore": 6,
    "predictor": 6,
    "experiments": 6,
    "report": 6,
    "cli": 7,
    "__init__": 7,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path) -> list[tuple[str, str, int, bool]]:
    """(imported module inside the package, imported name or '', line, inside a function) for every
    import of ``name``."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if name != "__init__" else []
    found: list[tuple[str, str, int, bool]] = []

    def visit(node: ast.AST, late: bool = False) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = here if is_pkg else here[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                elif (child.module or "").startswith("fractal_embeddings"):
                    target = child.module.removeprefix("fractal_embeddings").lstrip(".")  # type: ignore[union-attr]
                else:
                    continue
                for alias in child.names:
                    sub = f"{target}.{alias.name}" if target else alias.name
                    mod = sub if sub in MODULES else target
                    found.append((mod or "__init__", "" if sub in MODULES else alias.name, child.lineno, late))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("fractal_embeddings."):
                        found.append((alias.name.removeprefix("fractal_embeddings."), "", child.lineno, late))
            visit(child, late or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return [(_owner(m), n, line, late) for m, n, line, late in found if _owner(m) != name]


def _owner(mod: str) -> str:
    while mod and mod not in MODULES:
        mod = mod.rpartition(".")[0]
    return mod or "__init__"


def _layer(mod: str) -> int:
    parts = mod.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in LAYERS:
            return LAYERS[key]
    raise AssertionError(f"module {mod} has no layer: add it (or its package) to LAYERS in {__file__}")


EDGES = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    graph = {m: sorted({t for t, _, _, _ in e if t in MODULES}) for m, e in EDGES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle():
    assert _cycles() == []


def test_no_import_from_a_higher_layer():
    upward = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)}) at line {line}"
        for m, edges in EDGES.items()
        for t, _, line, _ in edges
        if _layer(t) > _layer(m)
    ]
    assert upward == []


# The command layers (deploy, experiments, report, cli) import the library inside the functions that
# need it, so `fractal --help` and `import fractal_embeddings` stay light. Below them a module imports
# the library at its top. The exceptions import a module that needs an optional extra or torch, only
# where it is used, so the core install imports everything else: the user-file reader (pandas, the
# data extra) and the head modules (torch, loaded only when a model folder is loaded).
LATE_OK = {("data.catalog", "data.tabular"), ("trust", "fractal_head")}


def test_no_late_import_below_the_command_layers():
    late = [
        f"{m} imports {t} inside a function at line {line}"
        for m, edges in EDGES.items()
        for t, _, line, is_late in edges
        if is_late and _layer(m) < 6 and (m, t) not in LATE_OK
    ]
    assert late == []


def test_no_import_of_private_names():
    private = [
        f"{m} imports {t}.{n} at line {line}"
        for m, edges in EDGES.items()
        for t, n, line, _ in edges
        if n.startswith("_") and not n.startswith("__")
    ]
    assert private == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_at_most_500_lines(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(PKG.parent)} has {lines} lines; split it by concern"


def test_every_layer_entry_names_a_module():
    assert sorted(k for k in LAYERS if k not in MODULES) == []

"""The import graph of the run / model / persistence modules, read from the source (module-level and
function-level imports both count): no cycle, nothing imported upward, no late import of the
library's own modules (one exception: trust loads the torch head module only when it loads a model)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "fractal_embeddings"
OWN = {
    "runs", "run", "recording", "finetune", "weights", "records", "record_blocks", "record_fields", "st", "evaluation",
    "backbone", "trust", "devices", "training", "heads", "store", "encoders", "model_files", "cache",
    "fractal_head",
}  # fmt: skip
# layers, low to high (a module may import its own layer or lower ones)
LAYER = {
    "errors": 0, "validation": 0, "extras": 0, "atomic": 0, "devices": 0, "executors": 0,
    "data": 1,
    "records": 2, "record_blocks": 2, "record_fields": 2,
    "cache": 3, "trust": 3, "fractal_head": 3, "encoders": 3, "model_files": 3,
    "heads": 4, "objectives": 4, "training": 4, "evaluation": 4, "retrieval": 4, "backbone": 4, "st": 4,
    "weights": 4,
    "run": 5, "recording": 5, "finetune": 5, "runs": 5, "store": 5,
}  # fmt: skip
LATE_OK = {("trust", "fractal_head")}  # torch is imported only when a model folder is loaded


def _edges() -> dict[str, set[tuple[str, bool]]]:
    out: dict[str, set[tuple[str, bool]]] = {}
    for path in PKG.glob("*.py"):
        name = path.stem
        tree = ast.parse(path.read_text())
        late = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)}
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and id(node) not in typing_only:
                targets = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                for t in targets:
                    out.setdefault(name, set()).add((t, id(node) in late))
    return out


def test_no_cycle_no_upward_no_late_import():
    edges = _edges()
    for a in OWN:
        for b, late in edges.get(a, ()):
            if b in LAYER and a in LAYER:
                assert LAYER[b] <= LAYER[a], f"{a} imports {b}, a higher layer"
            if late and b in LAYER:
                assert (a, b) in LATE_OK, f"{a} imports {b} inside a function"
    graph = {a: {b for b, _ in bs} for a, bs in edges.items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for b in graph.get(todo.pop(), ()):
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        return seen

    for a in OWN:
        assert a not in reach(a), f"{a} is in an import cycle"

"""Every Python block of the README runs as written: the blocks in order, in one namespace (a later
block may use an earlier block's names, as a reader following the README would), in an empty working
folder, on the real datasets and the offline encoder. The sentence-transformers recipe is the one
exception: ``tests/test_st.py`` runs it (its model id is a hub id, swapped there for the offline
encoder's folder)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
RECIPE = re.compile(r"<!-- recipe:start -->\s*```python\n.*?```\s*<!-- recipe:end -->", re.S)

pytestmark = pytest.mark.slow


def blocks() -> list[tuple[int, str]]:
    """(line, dedented code) of every ```python block outside the recipe."""
    text = README.read_text(encoding="utf-8")
    recipe = RECIPE.search(text)
    out = []
    for m in FENCE.finditer(text):
        if recipe and recipe.start() <= m.start() < recipe.end():
            continue
        out.append((text.count("\n", 0, m.start()) + 1, textwrap.dedent(m.group(2))))
    return out


def test_the_readme_has_python_blocks_and_the_recipe():
    assert len(blocks()) >= 3 and RECIPE.search(README.read_text(encoding="utf-8"))


def test_every_readme_python_block_runs(data_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "readme"}
    for line, code in blocks():
        try:
            exec(compile(code, f"README.md, block at line {line}", "exec"), scope)  # noqa: S102 - the README's code
        except Exception as e:  # name the block that failed
            raise AssertionError(f"README.md block at line {line} failed: {type(e).__name__}: {e}") from e
    for name in ("run", "ix", "qx"):
        assert name in scope, f"the README's blocks no longer define {name!r}"

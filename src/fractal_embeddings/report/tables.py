"""A small table type that renders to Markdown (the report) and LaTeX booktabs (papers)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Table:
    name: str  # file stem of the LaTeX export, e.g. "main_steerability"
    caption: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    align: str | None = None  # one of l/r per column; default: first column left, the rest right

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.name}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([_cell(c) for c in cells])

    def _align(self) -> str:
        return self.align or "l" + "r" * (len(self.columns) - 1)

    def markdown(self) -> str:
        sep = ["---:" if a == "r" else "---" for a in self._align()]
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "|".join(sep) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        return "\n".join(lines)

    def latex(self) -> str:
        def esc(s: str) -> str:
            for a, b in (
                ("\\", r"\textbackslash{}"),
                ("&", r"\&"),
                ("%", r"\%"),
                ("_", r"\_"),
                ("#", r"\#"),
                ("±", r"$\pm$"),
                ("≥", r"$\geq$"),
                ("≤", r"$\leq$"),
                ("²", r"$^2$"),
                ("**", ""),
                ("τ", r"$\tau$"),
                ("ρ", r"$\rho$"),
                ("−", "-"),
                ("|", r"$|$"),
            ):
                s = s.replace(a, b)
            return s

        body = [" & ".join(esc(c) for c in r) + r" \\" for r in self.rows]
        return "\n".join(
            [
                r"\begin{table}[t]",
                r"\centering",
                rf"\caption{{{esc(self.caption)}}}",
                rf"\label{{tab:{self.name}}}",
                rf"\begin{{tabular}}{{{self._align()}}}",
                r"\toprule",
                " & ".join(esc(c) for c in self.columns) + r" \\",
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}",
                r"\end{table}",
                "",
            ]
        )


def _cell(c: Any) -> str:
    if c is None:
        return "-"
    if isinstance(c, (float, np.floating)):
        return "-" if math.isnan(c) else f"{c:.3f}"
    return str(c)


def pm(values: Any, digits: int = 3, signed: bool = True) -> str:
    """``mean ± SD`` over seeds (just the mean for one value)."""
    a = np.asarray(values, dtype=float)
    if len(a) == 0:
        return "-"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    m = fmt.format(a.mean())
    return f"{m} ± {a.std(ddof=1):.{digits}f}" if len(a) > 1 else m


def num(x: Any, digits: int = 3, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:{'+' if signed else ''}.{digits}f}"


def pval(p: Any) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "-"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"

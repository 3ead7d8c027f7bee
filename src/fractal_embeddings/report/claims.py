"""The claims table: one row per claim of the seed (C1..C24, read from the seed's ``claims.md``,
see :func:`claims_file`) with the seed's value, ours (from the run records, via the report sections' facts) and a
verdict.

Verdicts: ``reproduced``, ``not reproduced``, ``not testable here`` (with the reason), or
``not run yet`` (the experiment that tests it is not in this results directory). Each claim's
verdict rule is stated in the table. "V5" is the seed's recipe, ``v5-paper``; ``fractal`` (the
default method) is shown beside it where the claim compares methods.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..data.home import get_data_home
from ..errors import FractalError
from . import claim_rules as rules
from .tables import Table, num

CLAIMS_ENV = "FRACTAL_CLAIMS"


def claims_file() -> Path | None:
    """The seed's numbered claims list (``claims.md``): ``$FRACTAL_CLAIMS``, else ``claims.md`` beside
    the data home (``../shared/claims.md`` when the data home is ``../shared/datasets``)."""
    env = os.environ.get(CLAIMS_ENV)
    cands = [Path(env)] if env else [get_data_home().parent / "claims.md"]
    return next((p for p in cands if p.is_file()), None)


def seed_claims(path: str | Path | None = None) -> dict[str, tuple[str, str]]:
    """``{ID: (claim, seed's value)}`` read from the seed's claims list (a Markdown table whose rows
    are ``| C<n> | claim | seed's value |``; a ``|`` inside the value, as in H(L1|L0), is kept)."""
    path = Path(path) if path else claims_file()
    if path is None:
        raise FractalError(f"the seed's claims list (claims.md) is not here; set {CLAIMS_ENV} to its path")
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        raw = line.strip().split("|")[1:-1]
        if len(raw) >= 3 and re.fullmatch(r"C\d+", raw[0].strip()):
            out[raw[0].strip()] = (raw[1].strip(), "|".join(raw[2:]).strip())
    return out


RULES = {
    "C1": rules.c1,
    "C2": rules.per_dataset("clinc150"),
    "C3": rules.per_dataset("trec"),
    "C4": rules.per_dataset("newsgroups20"),
    "C5": rules.per_dataset("goemotions"),
    "C6": rules.c6,
    "C7": rules.c7,
    "C8": rules.c8,
    "C9": rules.c9,
    "C10": rules.ablation("clinc150"),
    "C11": rules.ablation("trec"),
    "C12": rules.c12,
    "C13": rules.c13,
    "C14": rules.c14,
    "C15": rules.c15,
    "C16": rules.c16,
    "C17": rules.c17,
    "C18": rules.c18,
    "C19": rules.c19,
    "C20": rules.c20,
    "C21": rules.c21,
    "C22": rules.c22,
    "C23": rules.c23,
    "C24": rules.c24,
}


def claims_table(facts: dict) -> tuple[Table, dict]:
    t = Table(
        "claims",
        "The seed's claims and ours (verdict rule per row)",
        ["ID", "claim", "seed's value", "ours", "verdict", "verdict rule"],
        align="llllll",
    )
    verdicts = {}
    for cid, (claim, seed) in seed_claims().items():
        rule = RULES.get(cid, rules.not_here("no rule for this claim"))
        ours, verdict, why = rule(facts, seed)
        verdicts[cid] = verdict
        t.add(cid, claim, seed, ours, f"**{verdict}**" if verdict in ("reproduced", "not reproduced") else verdict, why)
    return t, verdicts


__all__ = ["claims_table", "seed_claims", "RULES", "num"]

"""Training objectives, one small module per family; look one up by method name.

| method | module | what it trains |
|---|---|---|
| ``fractal`` | ``fractal`` | aligned prefixes + contrastive + stop-gradient (the study's family) |
| ``fractal-mrl`` | ``fractal`` | its matched control: finest level at every prefix |
| ``v5-paper`` | ``prefix`` | the seed's recipe: short prefixes on coarse labels |
| ``mrl`` | ``prefix`` | matched control: every prefix on the finest level |
| ``inverted`` | ``prefix`` | sign-reversal control: short prefixes on fine labels |
| ``uhmt`` | ``prefix`` | every prefix on an equal mix of levels |
| ``no-prefix`` | ``no_prefix`` | ``mrl`` + coarse regulariser on the full vector |
| ``heal`` | ``heal`` | HEAL-style: per-level projectors + supervised contrastive |
| ``smec`` | ``external`` | SMEC-style: finest level, 256 -> 128 -> 64 trained in turn |
| ``csr`` | ``external`` | CSR-style: TopK sparse autoencoder + contrastive (finest level) |
| ``single-level`` | ``single`` | one level on the full vector only (a dual-encoder half) |
| ``flat`` | ``flat`` | nothing: the raw encoder, truncated |
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import FractalError
from .base import Objective
from .external import CSR, SMEC
from .flat import Flat
from .fractal import Fractal, FractalMRL
from .heal import Heal
from .no_prefix import NoPrefix
from .prefix import MRL, UHMT, Inverted, PrefixSupervision, V5Paper, schedule_weights
from .single import SingleLevel

DEFAULT_METHOD = "fractal"  # chosen by the objective study (docs/objective-study.md)
OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (Fractal, FractalMRL, V5Paper, MRL, Inverted, NoPrefix, UHMT, Heal, SMEC, CSR, SingleLevel, Flat)
}


def list_methods() -> list[str]:
    return list(OBJECTIVES)


def get_objective(method: str | Objective, **options: Any) -> Objective:
    """An objective instance by method name; ``options`` set its config fields."""
    if isinstance(method, Objective):
        return dataclasses.replace(method, **options) if options else method
    if method not in OBJECTIVES:
        raise FractalError(f"unknown method '{method}'; choose one of: {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[method]
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(options) - fields)
    if bad:
        raise FractalError(
            f"method '{method}' has no option {', '.join(bad)}; its options: {', '.join(sorted(fields)) or 'none'}"
        )
    return cls(**options)


__all__ = [
    "DEFAULT_METHOD",
    "OBJECTIVES",
    "Objective",
    "PrefixSupervision",
    "get_objective",
    "list_methods",
    "schedule_weights",
]

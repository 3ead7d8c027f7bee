"""``flat``: no head at all. The raw frozen encoder vector, truncated to the same prefix dims
(the baseline row every table starts from). Nothing is trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Objective


@dataclass
class Flat(Objective):
    """``flat``: no head; the raw encoder truncated to the prefix dims."""

    name: ClassVar[str] = "flat"
    head_kind: ClassVar[str | None] = None

    def check(self, n_blocks: int, n_levels: int) -> None:
        return None

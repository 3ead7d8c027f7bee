"""``no-prefix``: alignment removed, coarse labels still seen (ablation).

Identical to ``mrl`` (every prefix trained on the finest level, same prefix sampling and block
dropout), plus a coarse-level regulariser on the *full* vector: for every level l above the finest,
``beta_l * CE(cls_l(e), y_l)`` with ``beta_l = prefix_weight * sum_j P(j) * W_aligned[j, l]``, the
expected weight level l gets in ``v5-paper``. So both methods see the coarse labels with the same
expected weight; only *where* they are applied (the short prefix vs the full vector) differs. For
two levels with the defaults, beta_L0 = 0.6 * (0.4 + 0.3 * 0.7 + 0.2 * 0.3) = 0.402.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .prefix import PrefixSupervision, aligned_weights, default_prefix_probs


@dataclass
class NoPrefix(PrefixSupervision):
    """``no-prefix``: mrl + a coarse-level regulariser on the full vector (alignment removed)."""

    name: ClassVar[str] = "no-prefix"
    schedule: str = "finest"

    def coarse_weights(self, n_blocks: int, n_levels: int) -> np.ndarray:
        probs = np.asarray(self.prefix_probs or default_prefix_probs(n_blocks))
        return self.prefix_weight * (probs @ aligned_weights(n_blocks, n_levels))[:-1]

    def terms(self, j: int, n_blocks: int, n_levels: int) -> list[tuple[str, int, float]]:
        extra = [("full", lv, float(b)) for lv, b in enumerate(self.coarse_weights(n_blocks, n_levels)) if b > 0]
        return super().terms(j, n_blocks, n_levels) + extra

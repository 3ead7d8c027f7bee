"""The one registry of report sections: experiment name -> :class:`SectionSpec`, in report order.

Each section lives in a module by topic (:mod:`.main`, :mod:`.studies`, :mod:`.retrieval`,
:mod:`.search`, :mod:`.induced`), takes the run table of one experiment and returns a
:class:`~.section.Section`. A spec's ``attach`` (when it has one) puts what the section reads beside
the run records onto the table's ``attrs`` first: the ``latency`` and ``search`` measurements
files, the ``induced`` experiment's groupings and published-level scores. :data:`MEASURED` holds the
sections of benchmark measurements that have no run records (``scale``: :mod:`.scale`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import finetune, induced, main, retrieval, scale, search, studies
from .section import Section

Render = Callable[[pd.DataFrame, Path, Path], Section]
Attach = Callable[[pd.DataFrame, "str | Path"], pd.DataFrame]


@dataclass(frozen=True)
class SectionSpec:
    """How to build one experiment's section: ``render(df, fig_dir, root)``, after ``attach(df, results)``."""

    render: Render
    attach: Attach | None = None

    def __call__(self, df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
        return self.render(df, fig_dir, root)


SECTIONS: dict[str, SectionSpec] = {
    "main": SectionSpec(main.main_section),
    "ablation": SectionSpec(studies.ablation_section),
    "synthetic": SectionSpec(studies.synthetic_section),
    "noise": SectionSpec(studies.noise_section),
    "capacity": SectionSpec(studies.capacity_section),
    "three-level": SectionSpec(studies.three_level_section),
    "cross-encoder": SectionSpec(studies.cross_encoder_section, attach=studies.attach_encoder_cost),
    "external": SectionSpec(studies.external_section),
    "backbone-control": SectionSpec(studies.backbone_section),
    "finetune": SectionSpec(finetune.finetune_section),
    "finetune-recipe": SectionSpec(finetune.recipe_section),
    "retrieval": SectionSpec(retrieval.retrieval_section),
    "dual-encoder": SectionSpec(retrieval.dual_encoder_section),
    "latency": SectionSpec(retrieval.latency_section, attach=retrieval.attach_latency),
    "search": SectionSpec(search.search_section, attach=search.attach),
    "induced": SectionSpec(induced.induced_section, attach=induced.attach),
}

# sections of measurements without run records (benchmarks): name -> render(results, fig_dir, root), None when
# their files are absent
MEASURED: dict[str, Callable[[Path, Path, Path], Section | None]] = {"scale": scale.scale_section}

__all__ = ["MEASURED", "SECTIONS", "Section", "SectionSpec"]

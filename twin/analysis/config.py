"""Settings of ``twin analyze``: a frozen dataclass validated from TOML (experiments/analyze/*.toml).

Kept free of heavy imports: ``twin --help`` imports this module through the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

PROJECTIONS = ("V1->V1", "HVA->HVA", "V1->HVA", "HVA->V1")
DEFAULT_MEASURES = ("signal_correlation", "feature_cosine", "rf_distance", "ori_difference")


@dataclass(frozen=True)
class AnalysisConfig:
    """What ``twin.analysis.analyze`` tests and how (SCIENCE.md sections 5-6).

    Inputs: ``connectome`` (a folder of CAVE-schema parquet tables), ``profiles`` (a
    ``twin.similarity`` profiles.h5; "" = none, then only population counts are written),
    ``metrics`` (``twin evaluate``'s metrics.h5 for the quality filter; "" = no filter).
    ``edges``: an edge table already written (``twin analyze --edges-only`` or
    ``twin.connectome.write_edge_table``) to analyse instead of building one from the inputs.

    Quality filter: both neurons need CC_max > ``cc_max`` and CC_abs > ``cc_abs``.
    Inclusion of a projection group (published rules): > ``min_pre`` presynaptic neurons with
    Ld > 0 and with synapses, > ``min_synapses`` synapses, and no presynaptic neuron holding
    >= ``max_share`` of the group's synapses or of its Ld.
    ``measures`` are tested when the edge table has them (the others are listed as missing).
    ``n_boot`` bootstrap resamples of presynaptic neurons for the binned trends (``n_bins``
    quantile bins); ``n_permutations`` within-presynaptic-neuron shuffles (0 = skip);
    ``by_area_layer`` adds synaptic-scale tests per area x layer group over ``layers``; ``pooled``
    one common synaptic-scale slope per measure over the included projections (like-to-like
    overall; intercepts per presynaptic neuron and projection, errors clustered by neuron).
    ``use_r``: also fit the published glmmTMB GLMM through ``Rscript`` ("auto": when
    installed; "always": fail if it is not). ``tweedie_power`` is the Tweedie variance power of
    the axonal-scale model. ``se`` picks the standard errors of the synaptic-scale slope
    ("cluster": CR3 jackknife over presynaptic neurons, t with Satterthwaite df; "model": Fisher
    information of the conditional Poisson likelihood).
    """

    seed: int = 0
    connectome: str = ""
    profiles: str = ""
    metrics: str = ""
    edges: str = ""
    measures: tuple[str, ...] = DEFAULT_MEASURES
    cc_max: float = 0.4
    cc_abs: float = 0.2
    min_pre: int = 5
    min_synapses: int = 30
    max_share: float = 0.5
    n_boot: int = 1000
    n_bins: int = 8
    n_permutations: int = 1000
    alpha: float = 0.05
    by_area_layer: bool = True
    pooled: bool = True
    layers: tuple[str, ...] = ("L2/3", "L4", "L5")
    axonal: bool = True
    invariance: bool = True
    tweedie_power: float = 1.5
    se: Literal["cluster", "model"] = "cluster"
    use_r: Literal["auto", "never", "always"] = "auto"
    radius_um: float = 5.0


def load_analysis_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()
                         ) -> AnalysisConfig:
    """Read an analysis TOML with dotted ``overrides`` and check value ranges (InputError)."""
    from twin.config import load_config

    cfg = load_config(path, AnalysisConfig, list(overrides))
    check_config(cfg, path)
    return cfg


def check_config(cfg: AnalysisConfig, path: str | os.PathLike | None = None) -> None:
    """Raise InputError for values outside their meaningful range."""
    from twin.errors import InputError

    checks = [("n_boot", cfg.n_boot >= 0, "an integer >= 0"),
              ("n_bins", cfg.n_bins >= 2, "an integer >= 2"),
              ("n_permutations", cfg.n_permutations >= 0, "an integer >= 0"),
              ("min_pre", cfg.min_pre >= 0, "an integer >= 0"),
              ("min_synapses", cfg.min_synapses >= 0, "an integer >= 0"),
              ("max_share", 0.0 < cfg.max_share <= 1.0, "a number in (0, 1]"),
              ("alpha", 0.0 < cfg.alpha < 1.0, "a number in (0, 1)"),
              ("tweedie_power", 1.0 < cfg.tweedie_power < 2.0, "a number in (1, 2)"),
              ("radius_um", cfg.radius_um > 0, "a number > 0")]
    for key, ok, expected in checks:
        if not ok:
            raise InputError(path, key, expected, getattr(cfg, key))
    from twin.similarity import KINDS

    for m in cfg.measures:
        if m not in KINDS:
            raise InputError(path, "measures", f"names from {list(KINDS)}", m)


__all__ = ["AnalysisConfig", "load_analysis_config", "check_config", "PROJECTIONS", "DEFAULT_MEASURES"]

"""The published quality filter and inclusion rules (Ding et al. 2025; SCIENCE.md section 5).

- Quality: both neurons of a pair pass the twin's quality filter, CC_max > 0.4 and CC_abs > 0.2
  (natural movies). A neuron without metrics fails when metrics were given; with no metrics at
  all every pair passes (the edge table's NaN columns).
- A group of pairs (a projection, or an area x layer group) is tested only if it has
  > min_pre presynaptic neurons with Ld > 0 and with synapses, > min_synapses synapses, and no
  presynaptic neuron contributes >= max_share of the group's synapses or of its Ld.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

QUALITY_COLUMNS = ("pre_cc_abs", "pre_cc_max", "post_cc_abs", "post_cc_max")


def quality_mask(edges: pd.DataFrame, cc_max: float = 0.4, cc_abs: float = 0.2) -> np.ndarray:
    """(n_pairs,) bool: both neurons pass CC_max > cc_max and CC_abs > cc_abs.

    Recomputed from the cc columns when any is known (so the thresholds are the config's);
    otherwise the table's ``quality_ok`` (all True without metrics)."""
    have = [c for c in QUALITY_COLUMNS if c in edges.columns]
    if len(have) == 4 and np.isfinite(edges[have].to_numpy(np.float64)).any():
        v = {c: edges[c].to_numpy(np.float64) for c in have}
        with np.errstate(invalid="ignore"):
            return ((v["pre_cc_max"] > cc_max) & (v["pre_cc_abs"] > cc_abs)
                    & (v["post_cc_max"] > cc_max) & (v["post_cc_abs"] > cc_abs))
    if "quality_ok" in edges.columns:
        return edges["quality_ok"].to_numpy(bool)
    return np.ones(len(edges), bool)


@dataclass(frozen=True)
class Inclusion:
    """Counts of a group (rows with Ld > 0) and whether it passes the rules (``reason`` if not)."""

    included: bool
    reason: str
    n_pre: int          # presynaptic neurons with Ld > 0 and >= 1 synapse
    n_pre_ld: int       # presynaptic neurons with Ld > 0
    n_pairs: int        # pairs with Ld > 0
    n_connected: int
    n_synapses: int
    max_synapse_share: float
    max_ld_share: float

    def counts(self) -> dict[str, int]:
        return {"n_pre": self.n_pre, "n_pairs": self.n_pairs, "n_synapses": self.n_synapses}


def check_inclusion(pre: np.ndarray, n_synapses: np.ndarray, ld_um: np.ndarray, *, min_pre: int = 5,
                    min_synapses: int = 30, max_share: float = 0.5, need_synapses: bool = True) -> Inclusion:
    """Apply the inclusion rules to one group's pairs with Ld > 0.

    Args: per-pair arrays (n,): pre ids, synapse counts, Ld (um; rows with Ld <= 0 are ignored).
    ``need_synapses=False`` (axonal scale) counts neurons with Ld > 0 and drops the synapse rules.
    """
    keep = np.asarray(ld_um, np.float64) > 0
    pre, syn, ld = np.asarray(pre)[keep], np.asarray(n_synapses, np.float64)[keep], np.asarray(ld_um, np.float64)[keep]
    ids, g = np.unique(pre, return_inverse=True)
    syn_g = np.bincount(g, weights=syn, minlength=len(ids))
    ld_g = np.bincount(g, weights=ld, minlength=len(ids))
    n_syn, total_ld = float(syn.sum()), float(ld.sum())
    syn_share = float(syn_g.max() / n_syn) if n_syn > 0 else float("nan")
    ld_share = float(ld_g.max() / total_ld) if total_ld > 0 else float("nan")
    n_pre = int((syn_g > 0).sum()) if need_synapses else len(ids)
    reasons = []
    if n_pre <= min_pre:
        what = "with Ld > 0 and with synapses" if need_synapses else "with Ld > 0"
        reasons.append(f"{n_pre} presynaptic neurons {what} (need > {min_pre})")
    if need_synapses and n_syn <= min_synapses:
        reasons.append(f"{int(n_syn)} synapses (need > {min_synapses})")
    if need_synapses and n_syn > 0 and syn_share >= max_share:
        reasons.append(f"one presynaptic neuron holds {syn_share:.0%} of the synapses (limit < {max_share:.0%})")
    if total_ld > 0 and ld_share >= max_share:
        reasons.append(f"one presynaptic neuron holds {ld_share:.0%} of the Ld (limit < {max_share:.0%})")
    return Inclusion(not reasons, "; ".join(reasons), n_pre, len(ids), int(keep.sum()), int((syn > 0).sum()),
                     int(n_syn), syn_share, ld_share)


def iter_groups(edges: pd.DataFrame, by_area_layer: bool = False, layers: tuple[str, ...] = ("L2/3", "L4", "L5")
                ) -> list[tuple[str, str, np.ndarray]]:
    """The tested groups as (level, label, row mask): each projection present (in the published
    order), then, with ``by_area_layer``, each ``area_layer_projection`` whose two layers are in
    ``layers`` (e.g. "V1 L2/3->HVA L4")."""
    from twin.analysis.config import PROJECTIONS

    out = []
    proj = edges["projection"].astype(str).to_numpy() if "projection" in edges.columns else np.array([], str)
    present = set(proj)
    for p in [p for p in PROJECTIONS if p in present] + sorted(present - set(PROJECTIONS)):
        out.append(("projection", p, proj == p))
    if by_area_layer and "area_layer_projection" in edges.columns:
        al = edges["area_layer_projection"].astype(str).to_numpy()
        for label in sorted(set(al)):
            try:
                pre, post = label.split("->")
                ok = pre.split(" ", 1)[1] in layers and post.split(" ", 1)[1] in layers
            except (ValueError, IndexError):
                ok = False
            if ok:
                out.append(("area_layer", label, al == label))
    return out


__all__ = ["quality_mask", "check_inclusion", "iter_groups", "Inclusion", "QUALITY_COLUMNS"]

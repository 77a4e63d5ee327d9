"""Binned like-to-like trends with bootstrap intervals over presynaptic neurons.

For one group (a projection) and one measure, pairs with Ld > 0 are split into quantile bins of
the measure; per bin: the connection probability (fraction of pairs with >= 1 synapse) and the
synapse density (synapses per um of Ld, sum over pairs / sum of Ld). Intervals: percentile
bootstrap, resampling presynaptic neurons with replacement (``n_boot`` multinomial weight
vectors; pairs of one neuron move together, as their dependence requires).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ("measure", "projection", "bin", "x_low", "x_high", "x_median", "n_pre", "n_pairs", "n_connected",
           "n_synapses", "ld_um", "connection_probability", "connection_probability_lo",
           "connection_probability_hi", "synapse_density", "synapse_density_lo", "synapse_density_hi")


def binned_trend(x: np.ndarray, n_synapses: np.ndarray, ld_um: np.ndarray, pre: np.ndarray, *, n_bins: int = 8,
                 n_boot: int = 1000, rng: np.random.Generator, level: float = 0.95) -> pd.DataFrame:
    """Connection probability and synapse density per quantile bin of ``x`` (pairs with Ld > 0).

    Args: (n,) measure, synapse counts, Ld (um, > 0), presynaptic ids. Returns one row per bin
    (columns of :data:`COLUMNS` without measure/projection); density in synapses per um."""
    x, syn, ld = (np.asarray(a, np.float64) for a in (x, n_synapses, ld_um))
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        edges = np.array([x.min(), x.max()])
    nb = len(edges) - 1
    b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, nb - 1)
    ids, g = np.unique(pre, return_inverse=True)
    G = len(ids)
    tab = {name: np.zeros((G, nb)) for name in ("pairs", "conn", "syn", "ld")}
    for name, w in (("pairs", np.ones_like(x)), ("conn", (syn > 0).astype(float)), ("syn", syn), ("ld", ld)):
        np.add.at(tab[name], (g, b), w)
    tot = {k: v.sum(0) for k, v in tab.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        prob, dens = tot["conn"] / tot["pairs"], tot["syn"] / tot["ld"]
        if n_boot > 0 and G > 0:
            w = rng.multinomial(G, np.full(G, 1.0 / G), size=n_boot).astype(float)  # (n_boot, G)
            bp = (w @ tab["conn"]) / (w @ tab["pairs"])
            bd = (w @ tab["syn"]) / (w @ tab["ld"])
            a = 100 * (1 - level) / 2
            p_lo, p_hi = np.nanpercentile(bp, [a, 100 - a], axis=0)
            d_lo, d_hi = np.nanpercentile(bd, [a, 100 - a], axis=0)
        else:
            p_lo = p_hi = d_lo = d_hi = np.full(nb, np.nan)
    return pd.DataFrame({
        "bin": np.arange(nb), "x_low": edges[:-1], "x_high": edges[1:],
        "x_median": [float(np.median(x[b == k])) if np.any(b == k) else np.nan for k in range(nb)],
        "n_pre": (tab["pairs"] > 0).sum(0), "n_pairs": tot["pairs"].astype(np.int64),
        "n_connected": tot["conn"].astype(np.int64), "n_synapses": tot["syn"].astype(np.int64), "ld_um": tot["ld"],
        "connection_probability": prob, "connection_probability_lo": p_lo, "connection_probability_hi": p_hi,
        "synapse_density": dens, "synapse_density_lo": d_lo, "synapse_density_hi": d_hi})


def binned_table(edges: pd.DataFrame, measures: list[str], *, n_bins: int = 8, n_boot: int = 1000,
                 seed: int = 0, min_pairs: int = 10) -> pd.DataFrame:
    """:func:`binned_trend` for every projection x measure (pairs with Ld > 0), one table.

    The random stream of each (measure, projection) derives from (seed, measure index,
    projection index), so a table is the same for the same seed whatever else is computed."""
    from twin.analysis.config import PROJECTIONS

    parts = []
    ld = edges["ld_um"].to_numpy(np.float64)
    proj = edges["projection"].astype(str).to_numpy()
    for mi, m in enumerate(measures):
        x = edges[m].to_numpy(np.float64)
        for pi, p in enumerate(PROJECTIONS):
            rows = (proj == p) & (ld > 0) & np.isfinite(x)
            if rows.sum() < min_pairs:
                continue
            t = binned_trend(x[rows], edges["n_synapses"].to_numpy()[rows], ld[rows],
                             edges["pre_pt_root_id"].to_numpy()[rows], n_bins=n_bins, n_boot=n_boot,
                             rng=np.random.default_rng([seed, 2, mi, pi]))
            t.insert(0, "projection", p)
            t.insert(0, "measure", m)
            parts.append(t)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS})
    return pd.concat(parts, ignore_index=True)[list(COLUMNS)]


__all__ = ["binned_trend", "binned_table", "COLUMNS"]

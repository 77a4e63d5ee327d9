"""Tests with the presynaptic neuron as the unit: connected vs ADP means, and synapse size.

- Per-presynaptic-neuron mean similarity (Ding et al. 2025): for each neuron with at least one
  connected and one ADP partner, the mean of the measure over its connected partners and over
  its ADP partners (Ld > 0, no synapse); paired t-test over neurons (scipy.stats.ttest_rel).
  Estimate = mean (connected - ADP) difference, with its t interval.
- Synapse size vs similarity: OLS of a connected pair's mean synapse size on the measure and
  log Ld (Frisch-Waugh: the slope equals that of the residuals of size and measure on log Ld),
  errors clustered by presynaptic neuron (statsmodels, t with G - 1 df).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def per_pre_means(pre: np.ndarray, x: np.ndarray, connected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_pre,) mean of ``x`` over each neuron's connected partners and over its other partners,
    for the neurons that have both (rows: one pair each; NaN x ignored)."""
    ok = np.isfinite(x)
    pre, x, connected = np.asarray(pre)[ok], np.asarray(x, np.float64)[ok], np.asarray(connected, bool)[ok]
    ids, g = np.unique(pre, return_inverse=True)
    k = len(ids)
    n_c = np.bincount(g, weights=connected, minlength=k)
    n_a = np.bincount(g, weights=~connected, minlength=k)
    s_c = np.bincount(g, weights=np.where(connected, x, 0.0), minlength=k)
    s_a = np.bincount(g, weights=np.where(connected, 0.0, x), minlength=k)
    both = (n_c > 0) & (n_a > 0)
    return s_c[both] / n_c[both], s_a[both] / n_a[both]


def paired_t(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Paired t-test of a - b (n,): estimate (mean difference), ci_low, ci_high, p, t, df."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    out = one_sample_t(a - b, level)
    if len(a) > 1 and np.isfinite(out["p"]):
        out["p"] = float(stats.ttest_rel(a, b).pvalue)  # the same test, through scipy
    return out


def one_sample_t(d: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """One-sample t-test of mean(d) = 0 (n,): estimate, ci_low, ci_high, p, t, df."""
    d = np.asarray(d, np.float64)
    n = len(d)
    if n < 2:
        nan = float("nan")
        return {"estimate": nan, "ci_low": nan, "ci_high": nan, "p": nan, "t": nan, "df": float(max(n - 1, 0))}
    mean, sem = float(d.mean()), float(d.std(ddof=1) / np.sqrt(n))
    q = float(stats.t.ppf(0.5 + level / 2, n - 1))
    t = mean / sem if sem > 0 else float("nan")
    p = float(2 * stats.t.sf(abs(t), n - 1)) if sem > 0 else float("nan")
    return {"estimate": mean, "ci_low": mean - q * sem, "ci_high": mean + q * sem, "p": p, "t": t,
            "df": float(n - 1)}


def connected_vs_adp(edges: pd.DataFrame, measure: str, rows: np.ndarray) -> tuple[dict[str, float], int, int]:
    """Per-neuron connected-vs-ADP paired t-test of ``measure`` on ``rows`` (pairs with Ld > 0).

    Returns (test dict of :func:`paired_t`, n neurons with both kinds of partner, n pairs)."""
    d = edges.loc[rows]
    conn, adp = per_pre_means(d["pre_pt_root_id"].to_numpy(), d[measure].to_numpy(np.float64),
                              d["n_synapses"].to_numpy() > 0)
    return paired_t(conn, adp), len(conn), int(np.isfinite(d[measure].to_numpy(np.float64)).sum())


def size_vs_measure(size: np.ndarray, x: np.ndarray, ld: np.ndarray, pre: np.ndarray) -> dict[str, float]:
    """OLS size ~ 1 + x + log(ld) (connected pairs, (n,) each), errors clustered by ``pre``.

    Returns estimate (size units per unit of x), se, ci_low, ci_high, p."""
    import statsmodels.api as sm

    _, g = np.unique(pre, return_inverse=True)
    X = np.column_stack([np.ones(len(x)), np.asarray(x, np.float64), np.log(np.asarray(ld, np.float64))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.OLS(np.asarray(size, np.float64), X).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
    lo, hi = res.conf_int()[1]
    return {"estimate": float(res.params[1]), "se": float(res.bse[1]), "ci_low": float(lo), "ci_high": float(hi),
            "p": float(res.pvalues[1])}


def projection_tests(edges: pd.DataFrame, measures: list[str], *, min_pre: int = 5, min_synapses: int = 30,
                     max_share: float = 0.5) -> list[dict[str, Any]]:
    """Per projection and measure: the connected-vs-ADP per-neuron test (family "per_pre_mean")
    and synapse size vs the measure (family "synapse_size"), for groups passing the inclusion
    rules (same rules as the synaptic scale, on the pairs with Ld > 0)."""
    from twin.analysis.inclusion import check_inclusion, iter_groups
    from twin.analysis.records import excluded, record

    out: list[dict[str, Any]] = []
    ld = edges["ld_um"].to_numpy(np.float64)
    syn = edges["n_synapses"].to_numpy(np.float64)
    pre = edges["pre_pt_root_id"].to_numpy()
    size = edges["synapse_size_mean"].to_numpy(np.float64) if "synapse_size_mean" in edges.columns else None
    for m in measures:
        x = edges[m].to_numpy(np.float64)
        for level, label, mask in iter_groups(edges):
            rows = mask & (ld > 0) & np.isfinite(x)
            inc = check_inclusion(pre[rows], syn[rows], ld[rows], min_pre=min_pre, min_synapses=min_synapses,
                                  max_share=max_share)
            base = {"level": level, **inc.counts()}
            if not inc.included:
                out.append(excluded("per_pre_mean", m, label, inc.reason, **base))
            else:
                t, n_both, _ = connected_vs_adp(edges, m, rows)
                if n_both < 2:
                    out.append(excluded("per_pre_mean", m, label, "fewer than 2 neurons with connected and ADP "
                                        "partners", **base))
                else:
                    out.append(record("per_pre_mean", m, label, **{k: t[k] for k in ("estimate", "ci_low",
                                                                                   "ci_high", "p")},
                                      t=t["t"], df=t["df"], n_pre_paired=n_both,
                                      method="per-presynaptic-neuron means (connected - ADP), paired t-test", **base))
            if size is None:
                continue
            conn = rows & (syn > 0) & np.isfinite(size)
            if not inc.included or conn.sum() < 4:
                why = inc.reason or f"{int(conn.sum())} connected pairs with a synapse size (need >= 4)"
                out.append(excluded("synapse_size", m, label, why, **base))
                continue
            r = size_vs_measure(size[conn], x[conn], ld[conn], pre[conn])
            out.append(record("synapse_size", m, label, **{k: r[k] for k in ("estimate", "ci_low", "ci_high", "p")},
                              se=r["se"], n_connected=int(conn.sum()),
                              method="OLS mean synapse size ~ measure + log Ld, errors clustered by pre", **base))
    return out


__all__ = ["per_pre_means", "paired_t", "one_sample_t", "connected_vs_adp", "size_vs_measure", "projection_tests"]

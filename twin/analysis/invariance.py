"""Invariance and connectivity (Ding, Tran et al. 2026; SCIENCE.md section 6).

Three hypotheses, each tested with the presynaptic neuron as the independent unit:

1. Connected pairs have more similar MEIs / VEIs than ADP controls: per-neuron mean similarity
   of connected vs ADP partners (Ld > 0), paired t-test (as :func:`paired.connected_vs_adp`).
   Estimate = connected - ADP (published ~0.06 MEI, ~0.04 VEI).
2. Postsynaptic neurons are more invariant than their presynaptic inputs (published in V1
   L2/3): over connected pairs, d = post - pre invariance, averaged per presynaptic neuron, then
   a one-sample t-test over neurons. The same difference over ADP pairs is reported beside it
   (``adp_estimate``): a baseline for the post/pre asymmetry of the sampled populations.
3. Less invariant neurons form more connections: per presynaptic neuron (pooled over
   projections), a Poisson GLM of its number of connected partners on its invariance with offset
   log(its total Ld), robust (HC1) errors; a Spearman correlation of connections per um of Ld
   with invariance is reported beside it.
Invariance columns used when present: ``pre_/post_`` + phase_invariance, bipartite_index,
vei_diversity; similarity columns mei_similarity, vei_similarity.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from twin.analysis.paired import connected_vs_adp, one_sample_t
from twin.analysis.records import excluded, record

INVARIANCE_NAMES = ("phase_invariance", "bipartite_index", "vei_diversity")
SIMILARITY_NAMES = ("mei_similarity", "vei_similarity")
V1_L23 = "V1 L2/3->V1 L2/3"


def _groups(edges: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    from twin.analysis.inclusion import iter_groups

    out = [("all", np.ones(len(edges), bool))]
    out += [(label, mask) for _, label, mask in iter_groups(edges)]
    return out


def mei_vei_tests(edges: pd.DataFrame, min_pre: int = 5) -> list[dict[str, Any]]:
    """Hypothesis 1 records (family "invariance"), per similarity column present, for all pairs
    and per projection."""
    out = []
    ld = edges["ld_um"].to_numpy(np.float64)
    for m in [c for c in SIMILARITY_NAMES if c in edges.columns]:
        for label, mask in _groups(edges):
            rows = mask & (ld > 0)
            t, n_pre, n_pairs = connected_vs_adp(edges, m, rows)
            n_syn = int(edges["n_synapses"].to_numpy()[rows].sum())
            name = f"invariance/{m}/connected_minus_adp/{label}"
            counts = {"n_pre": n_pre, "n_pairs": n_pairs, "n_synapses": n_syn, "level": "projection",
                      "hypothesis": "connected pairs have more similar MEIs/VEIs than ADP pairs"}
            if n_pre <= min_pre:
                out.append(excluded("invariance", m, label, f"{n_pre} presynaptic neurons with connected and "
                                    f"ADP partners (need > {min_pre})", name=name, **counts))
                continue
            out.append(record("invariance", m, label, name=name, estimate=t["estimate"], ci_low=t["ci_low"],
                              ci_high=t["ci_high"], p=t["p"], t=t["t"], df=t["df"],
                              method="per-presynaptic-neuron means, paired t-test", **counts))
    return out


def _per_pre_diff(pre: np.ndarray, d: np.ndarray) -> np.ndarray:
    ids, g = np.unique(pre, return_inverse=True)
    return np.bincount(g, weights=d, minlength=len(ids)) / np.bincount(g, minlength=len(ids))


def post_vs_pre_tests(edges: pd.DataFrame, min_pre: int = 5) -> list[dict[str, Any]]:
    """Hypothesis 2 records: post - pre invariance over connected pairs, all pairs and V1 L2/3."""
    out = []
    conn = edges["n_synapses"].to_numpy() > 0
    adp = (~conn) & (edges["ld_um"].to_numpy(np.float64) > 0)
    pre = edges["pre_pt_root_id"].to_numpy()
    groups = [("all", np.ones(len(edges), bool))]
    if "area_layer_projection" in edges.columns:
        groups.append((V1_L23, edges["area_layer_projection"].astype(str).to_numpy() == V1_L23))
    for name in INVARIANCE_NAMES:
        a, b = f"pre_{name}", f"post_{name}"
        if a not in edges.columns or b not in edges.columns:
            continue
        d_all = edges[b].to_numpy(np.float64) - edges[a].to_numpy(np.float64)
        for label, mask in groups:
            rows = mask & conn & np.isfinite(d_all)
            per_pre = _per_pre_diff(pre[rows], d_all[rows])
            t = one_sample_t(per_pre)
            ctrl = mask & adp & np.isfinite(d_all)
            ctrl_est = float(np.mean(_per_pre_diff(pre[ctrl], d_all[ctrl]))) if ctrl.any() else None
            rname = f"invariance/{name}/post_minus_pre/{label}"
            counts = {"n_pre": len(per_pre), "n_pairs": int(rows.sum()),
                      "n_synapses": int(edges["n_synapses"].to_numpy()[rows].sum()), "level": "projection",
                      "hypothesis": "postsynaptic neurons are more invariant than their presynaptic inputs"}
            if len(per_pre) <= min_pre:
                out.append(excluded("invariance", name, label, f"{len(per_pre)} presynaptic neurons with connected "
                                    f"partners (need > {min_pre})", name=rname, **counts))
                continue
            out.append(record("invariance", name, label, name=rname, estimate=t["estimate"], ci_low=t["ci_low"],
                              ci_high=t["ci_high"], p=t["p"], t=t["t"], df=t["df"], adp_estimate=ctrl_est,
                              method="post - pre over connected pairs, per-presynaptic-neuron means, one-sample t",
                              **counts))
    return out


def per_pre_degree(edges: pd.DataFrame, name: str) -> pd.DataFrame:
    """One row per presynaptic neuron: invariance, out_degree (connected partners), ld_total (um)."""
    d = pd.DataFrame({"pre": edges["pre_pt_root_id"].to_numpy(),
                      "inv": edges[f"pre_{name}"].to_numpy(np.float64),
                      "conn": (edges["n_synapses"].to_numpy() > 0).astype(np.int64),
                      "ld": np.where(edges["ld_um"].to_numpy(np.float64) > 0, edges["ld_um"].to_numpy(np.float64), 0)})
    agg = d.groupby("pre").agg(invariance=("inv", "first"), out_degree=("conn", "sum"), ld_total=("ld", "sum"))
    return agg[np.isfinite(agg["invariance"]) & (agg["ld_total"] > 0)].reset_index()


def degree_tests(edges: pd.DataFrame, min_pre: int = 5) -> list[dict[str, Any]]:
    """Hypothesis 3 records: Poisson slope of out-degree on pre invariance (offset log total Ld)
    and the Spearman correlation of out-degree per um of Ld with invariance."""
    import statsmodels.api as sm

    out = []
    for name in INVARIANCE_NAMES:
        if f"pre_{name}" not in edges.columns:
            continue
        per = per_pre_degree(edges, name)
        n_pre, n_syn = len(per), int(edges["n_synapses"].sum())
        counts = {"n_pre": n_pre, "n_pairs": len(edges), "n_synapses": n_syn, "level": "projection",
                  "hypothesis": "neurons with lower invariance form more connections"}
        pname, sname = f"invariance/{name}/out_degree_poisson/all", f"invariance/{name}/out_degree_spearman/all"
        if n_pre <= min_pre or per["out_degree"].sum() == 0:
            why = f"{n_pre} presynaptic neurons with Ld > 0 (need > {min_pre})" if n_pre <= min_pre else "no connections"
            out.append(excluded("invariance", f"pre_{name}", "all", why, name=pname, **counts))
            out.append(excluded("invariance", f"pre_{name}", "all", why, name=sname, **counts))
            continue
        X = sm.add_constant(per["invariance"].to_numpy(), has_constant="add")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sm.GLM(per["out_degree"].to_numpy(float), X, family=sm.families.Poisson(),
                         offset=np.log(per["ld_total"].to_numpy())).fit(cov_type="HC1")
        lo, hi = res.conf_int()[1]
        out.append(record("invariance", f"pre_{name}", "all", name=pname, estimate=res.params[1], ci_low=lo,
                          ci_high=hi, p=res.pvalues[1], se=res.bse[1],
                          method="Poisson GLM out_degree ~ invariance + offset(log total Ld), HC1 errors", **counts))
        rho, p = stats.spearmanr(per["invariance"], per["out_degree"] / per["ld_total"])
        z, se = np.arctanh(np.clip(rho, -0.999999, 0.999999)), 1 / np.sqrt(max(n_pre - 3, 1))
        out.append(record("invariance", f"pre_{name}", "all", name=sname, estimate=rho,
                          ci_low=np.tanh(z - 1.96 * se), ci_high=np.tanh(z + 1.96 * se), p=p,
                          method="Spearman rho of out-degree per um Ld vs invariance (Fisher-z CI)", **counts))
    return out


def invariance_tests(edges: pd.DataFrame, min_pre: int = 5) -> list[dict[str, Any]]:
    """All invariance records that the edge table's columns allow."""
    return mei_vei_tests(edges, min_pre) + post_vs_pre_tests(edges, min_pre) + degree_tests(edges, min_pre)


__all__ = ["invariance_tests", "mei_vei_tests", "post_vs_pre_tests", "degree_tests", "per_pre_degree",
           "INVARIANCE_NAMES", "SIMILARITY_NAMES"]

"""Like-to-like at the synaptic and the axonal scale (Ding et al. 2025; SCIENCE.md section 5).

Synaptic scale, per group (projection; optionally area x layer) and measure x, on pairs with
Ld > 0: n_synapses ~ Poisson(Ld exp(b_pre + beta x)) with one intercept per presynaptic neuron
(:mod:`twin.analysis.fe_poisson`: conditional likelihood, errors clustered by neuron). beta is the
change in log synapse density (synapses per um of Ld) per unit of x. A permutation test
(shuffling x among each neuron's partners with Ld > 0) checks the GLM's p-value.

Axonal scale, per projection and measure, on pairs without synapse (Ld >= 0): Tweedie GLM (log
link, variance power ~1.5: a point mass at Ld = 0 plus a continuous positive part) of Ld on x,
statsmodels, with errors clustered by presynaptic neuron (a GEE with independence working
correlation). With a log link a random intercept per neuron shifts only the intercept, so this
marginal slope estimates the GLMM's; the clustered sandwich covers the within-neuron dependence.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd

from twin.analysis.fe_poisson import fit_poisson_fe, permutation_pvalue
from twin.analysis.inclusion import check_inclusion, iter_groups
from twin.analysis.records import excluded, record


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def synaptic_scale(edges: pd.DataFrame, measures: list[str], *, by_area_layer: bool = False,
                   layers: tuple[str, ...] = ("L2/3", "L4", "L5"), min_pre: int = 5, min_synapses: int = 30,
                   max_share: float = 0.5, se: str = "cluster", n_permutations: int = 0, seed: int = 0,
                   pooled: bool = True, log: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """Synaptic-scale slope records (family "synaptic_scale") and, per projection, permutation
    records (family "permutation"; estimate = the GLM slope, p = permutation p, p_glm beside).
    With ``pooled``, per measure also one common slope over the projections that passed the
    inclusion rules (projection "all", level "pooled": like-to-like overall, the question a
    single test answers with the most power; intercepts per neuron and projection).

    ``edges``: the (quality-filtered) edge table. Returns a list of records (results.json)."""
    out: list[dict[str, Any]] = []
    ld = edges["ld_um"].to_numpy(np.float64)
    syn = edges["n_synapses"].to_numpy(np.float64)
    pre = edges["pre_pt_root_id"].to_numpy()
    groups = iter_groups(edges, by_area_layer, layers)
    proj = edges["projection"].astype(str).to_numpy() if pooled else None
    for mi, m in enumerate(measures):
        x_all = edges[m].to_numpy(np.float64)
        passed = []                                           # projections that passed the rules
        for gi, (level, label, mask) in enumerate(groups):
            rows = mask & (ld > 0) & np.isfinite(x_all)
            inc = check_inclusion(pre[rows], syn[rows], ld[rows], min_pre=min_pre,
                                  min_synapses=min_synapses, max_share=max_share)
            base = {"level": level, **inc.counts(), "n_connected": inc.n_connected}
            if not inc.included:
                out.append(excluded("synaptic_scale", m, label, inc.reason, **base))
                if level == "projection" and n_permutations > 0:
                    out.append(excluded("permutation", m, label, inc.reason, **base))
                continue
            y, x, off, g = syn[rows], x_all[rows], np.log(ld[rows]), pre[rows]
            fit = fit_poisson_fe(y, x, off, g)
            if not np.all(np.isfinite(fit.beta)):
                out.append(excluded("synaptic_scale", m, label, "no variation of the measure within neurons", **base))
                continue
            if level == "projection":
                passed.append(label)
            rec = _slope_record(m, label, fit, se, "poisson_fixed_pre_intercepts", base)
            out.append(rec)
            if level == "projection" and n_permutations > 0:
                log(f"permutation test {m} {label} ({n_permutations} shuffles)")
                u, p_perm = permutation_pvalue(y, x, off, g, n_permutations, _rng(seed, 1, mi, gi))
                out.append(record("permutation", m, label, estimate=rec["estimate"], p=p_perm, p_glm=rec["p"],
                                  statistic=u, n_permutations=n_permutations,
                                  method="score statistic, measure shuffled within presynaptic neuron", **base))
        if pooled:
            out.append(_pooled(m, x_all, passed, proj, ld, syn, pre, se))
    return out


def _slope_record(m: str, label: str, fit, se: str, method: str, base: dict[str, Any]) -> dict[str, Any]:
    """The synaptic-scale record of a fitted slope: ``se``-type inference beside the model-based one."""
    inf, mod = fit.inference(0, se), fit.inference(0, "model")
    return record("synaptic_scale", m, label, **{k: inf[k] for k in ("estimate", "ci_low", "ci_high", "p")},
                  se=inf["se"], df=fit.df(se), se_type=se, se_model=mod["se"], p_model=mod["p"],
                  converged=fit.converged, method=method, **base)


def _pooled(m: str, x_all: np.ndarray, projections: list[str], proj: np.ndarray, ld: np.ndarray,
            syn: np.ndarray, pre: np.ndarray, se: str) -> dict[str, Any]:
    """One common slope over the included ``projections`` (level "pooled", projection "all"): an
    intercept per presynaptic neuron and projection, errors clustered by presynaptic neuron.
    Counts as the per-projection records (n_pre: neurons with Ld > 0 and with synapses)."""
    base = {"level": "pooled", "projections": projections}
    if len(projections) < 2:
        return excluded("synaptic_scale", m, "all", "fewer than two projections passed the inclusion rules", **base)
    rows = np.isin(proj, projections) & (ld > 0) & np.isfinite(x_all)
    inc = check_inclusion(pre[rows], syn[rows], ld[rows], min_pre=0, min_synapses=0, max_share=1.0)
    base.update(inc.counts(), n_connected=inc.n_connected)
    g = pd.factorize(pd.MultiIndex.from_arrays([pre[rows], proj[rows]]))[0]
    fit = fit_poisson_fe(syn[rows], x_all[rows], np.log(ld[rows]), g, clusters=pre[rows])
    if not np.all(np.isfinite(fit.beta)):
        return excluded("synaptic_scale", m, "all", "no variation of the measure within neurons", **base)
    return _slope_record(m, "all", fit, se, "poisson_fixed_pre_projection_intercepts_common_slope", base)


def fit_tweedie(ld: np.ndarray, x: np.ndarray, groups: np.ndarray, var_power: float = 1.5) -> dict[str, float]:
    """Tweedie (log link) GLM ld ~ 1 + x with errors clustered by ``groups`` (statsmodels).

    Args: (n,) Ld in um (>= 0), measure, presynaptic ids. Returns estimate, se, ci_low, ci_high, p
    (t with G - 1 df), for the slope: change in log mean Ld per unit of x."""
    import statsmodels.api as sm

    _, g = np.unique(groups, return_inverse=True)
    X = sm.add_constant(np.asarray(x, np.float64), has_constant="add")
    model = sm.GLM(np.asarray(ld, np.float64), X, family=sm.families.Tweedie(
        var_power=var_power, link=sm.families.links.Log()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
    lo, hi = res.conf_int()[1]
    return {"estimate": float(res.params[1]), "se": float(res.bse[1]), "ci_low": float(lo),
            "ci_high": float(hi), "p": float(res.pvalues[1]), "converged": bool(res.converged)}


def axonal_scale(edges: pd.DataFrame, measures: list[str], *, min_pre: int = 5, max_share: float = 0.5,
                 var_power: float = 1.5) -> list[dict[str, Any]]:
    """Axonal-scale slope records (family "axonal_scale"), per projection, on pairs without synapse.

    A group needs > ``min_pre`` presynaptic neurons with Ld > 0 and none holding >= ``max_share``
    of the Ld."""
    out: list[dict[str, Any]] = []
    ld = edges["ld_um"].to_numpy(np.float64)
    syn = edges["n_synapses"].to_numpy(np.float64)
    pre = edges["pre_pt_root_id"].to_numpy()
    for m in measures:
        x_all = edges[m].to_numpy(np.float64)
        for level, label, mask in iter_groups(edges):
            rows = mask & (syn == 0) & np.isfinite(x_all) & np.isfinite(ld) & (ld >= 0)
            inc = check_inclusion(pre[rows], syn[rows], ld[rows], min_pre=min_pre, max_share=max_share,
                                  need_synapses=False)
            counts = {"level": level, "n_pre": inc.n_pre_ld, "n_pairs": int(rows.sum()), "n_synapses": 0,
                      "n_pairs_ld": inc.n_pairs}
            if not inc.included:
                out.append(excluded("axonal_scale", m, label, inc.reason, **counts))
                continue
            try:
                r = fit_tweedie(ld[rows], x_all[rows], pre[rows], var_power)
            except (ValueError, np.linalg.LinAlgError) as e:  # e.g. perfect separation
                out.append(excluded("axonal_scale", m, label, f"fit failed: {e}", **counts))
                continue
            out.append(record("axonal_scale", m, label, **{k: r[k] for k in ("estimate", "ci_low", "ci_high", "p")},
                              se=r["se"], converged=r["converged"], var_power=var_power,
                              method="tweedie_glm_log_link_cluster_pre", **counts))
    return out


__all__ = ["synaptic_scale", "axonal_scale", "fit_tweedie"]

"""Edge tables with planted effects, shaped like ``twin.connectome.build_edge_table``'s output.

Used by the tests and by the calibration (experiments/analyze/calibration.py): the statistics of
:mod:`twin.analysis` must recover what is planted here, and must not find what is not.

Generative model, per projection p with P presynaptic neurons (SCIENCE.md section 5):
- each neuron g gets a share of the ~C (1 + adp_per_connected) pairs with Ld > 0 (gamma(2)
  shares: neurons differ in arbor size) and ``same_region_per_pre`` pairs with Ld = 0;
- Ld (um) ~ lognormal(ld_log_mean + axonal_beta * x, ld_log_sd);
- the planted measure x = clip(x_mean + u_g + N(0, x_sd)), u_g ~ N(0, x_pre_sd) (neurons differ
  in how similar their partners are);
- n_synapses ~ Poisson(Ld exp(a_p + b_g + beta_g x) * e), b_g ~ N(0, sd_pre) (+ ``confound`` *
  u_g / x_pre_sd, + degree_invariance * (pre invariance - 0.5)), beta_g ~ N(beta_p, sd_slope),
  e ~ Gamma(mean 1, variance ``overdispersion``) (1 when 0); a_p is solved so that the expected
  number of connected pairs is C, i.e. ~``adp_per_connected`` ADP pairs per connected pair.
The other similarity measures are independent of connectivity (nulls), except MEI / VEI
similarity, which are ``mei_shift`` (and 2/3 of it) higher for connected pairs; posts'
phase invariance is ``invariance_shift`` higher than the pres'.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from scipy import optimize

from twin.analysis.config import PROJECTIONS

PUBLISHED_N_PRE = {"V1->V1": 36, "HVA->HVA": 99, "V1->HVA": 29, "HVA->V1": 90}
PUBLISHED_N_CONNECTED = {"V1->V1": 2411, "HVA->HVA": 2543, "V1->HVA": 515, "HVA->V1": 1139}
PUBLISHED_SLOPES = {"signal_correlation": {"V1->V1": 2.30, "HVA->HVA": 1.04, "V1->HVA": 1.99, "HVA->V1": 1.60},
                    "feature_cosine": {"V1->V1": 2.22, "HVA->HVA": 1.40, "V1->HVA": 1.75, "HVA->V1": 1.95}}
# Assumed pairwise distributions (mean, sd per pair, sd of a neuron's mean, clip range).
MEASURE_DIST = {"signal_correlation": (0.05, 0.12, 0.03, (-1.0, 1.0)),
                "feature_cosine": (0.10, 0.20, 0.05, (-1.0, 1.0))}
_HVA = np.array(["LM", "RL", "AL"])
_LAYERS, _LAYER_P = np.array(["L2/3", "L4", "L5", "L6"]), np.array([0.5, 0.2, 0.2, 0.1])


def _solve_intercept(rate: np.ndarray, target: float, overdispersion: float) -> float:
    """a such that sum_i P(n_i > 0) = target for means exp(a) * rate (Poisson or gamma-Poisson)."""
    def connected(a: float) -> float:
        mu = np.exp(a) * rate
        p = -np.expm1(-mu) if overdispersion <= 0 else 1 - (1 + overdispersion * mu) ** (-1 / overdispersion)
        return float(p.sum()) - target
    return float(optimize.brentq(connected, -40.0, 20.0, xtol=1e-6))


def draw_projection(rng: np.random.Generator, P: int, C: int, beta: float, *, measure: str = "signal_correlation",
                    adp_per_connected: float = 34.0, sd_pre: float = 0.5, sd_slope: float = 0.0,
                    overdispersion: float = 0.0, confound: float = 0.0, ld_log_mean: float = float(np.log(15.0)),
                    ld_log_sd: float = 1.0, axonal_beta: float = 0.0, degree_invariance: float = 0.0
                    ) -> dict[str, np.ndarray]:
    """The pairs with Ld > 0 of one projection (numpy only; the calibration's inner loop).

    Returns g (n,) pre index 0..P-1, x (n,) planted measure, ld (n,) um, y (n,) synapse counts,
    u (P,) neurons' mean-similarity shifts, pre_inv (P,) pre invariance, m (P,) pairs per pre."""
    x_mean, x_sd, x_pre_sd, (lo, hi) = MEASURE_DIST.get(measure, MEASURE_DIST["signal_correlation"])
    shares = rng.gamma(2.0, size=P)
    m = np.maximum(rng.multinomial(int(round(C * (1 + adp_per_connected))), shares / shares.sum()), 5)
    g = np.repeat(np.arange(P), m)
    n = len(g)
    u = rng.normal(0, x_pre_sd, P)
    x = np.clip(x_mean + u[g] + rng.normal(0, x_sd, n), lo, hi)
    pre_inv = rng.beta(2, 2, P)
    b = rng.normal(0, sd_pre, P) + confound * u / x_pre_sd + degree_invariance * (pre_inv - 0.5)
    slope = beta + (rng.normal(0, sd_slope, P) if sd_slope > 0 else np.zeros(P))
    ld = rng.lognormal(ld_log_mean + axonal_beta * (x - x_mean), ld_log_sd)
    rate = ld * np.exp(b[g] + slope[g] * x)
    mu = np.exp(_solve_intercept(rate, C, overdispersion)) * rate
    if overdispersion > 0:
        mu = mu * rng.gamma(1 / overdispersion, overdispersion, n)
    return {"g": g, "x": x, "ld": ld, "y": rng.poisson(mu), "u": u, "pre_inv": pre_inv, "m": m}


def synthetic_edges(seed: int = 0, *, n_pre: Mapping[str, int] | None = None,
                    n_connected: Mapping[str, int] | None = None, beta: Mapping[str, float] | None = None,
                    measure: str = "signal_correlation", same_region_per_pre: int = 0, size_beta: float = 0.0,
                    invariance_shift: float = 0.0, mei_shift: float = 0.0, other_measures: bool = True,
                    **draw: float) -> pd.DataFrame:
    """A synthetic edge table (one row per pre/post pair; columns of the contract's edge table).

    ``n_pre`` / ``n_connected`` / ``beta``: per projection (default: published sizes, beta 0);
    ``beta`` is the planted change in log synapse density per unit of ``measure``; ``draw``:
    keyword arguments of :func:`draw_projection` (sd_pre, sd_slope, overdispersion, ...)."""
    n_pre = dict(PUBLISHED_N_PRE if n_pre is None else n_pre)
    n_connected = dict(PUBLISHED_N_CONNECTED if n_connected is None else n_connected)
    beta = dict(beta or {})
    rng = np.random.default_rng(seed)
    x_mean, x_sd, x_pre_sd, (lo, hi) = MEASURE_DIST.get(measure, MEASURE_DIST["signal_correlation"])
    parts = []
    for k, proj in enumerate(p for p in PROJECTIONS if p in n_pre):
        P = int(n_pre[proj])
        d = draw_projection(rng, P, int(n_connected[proj]), float(beta.get(proj, 0.0)), measure=measure, **draw)
        m, u, pre_inv = d["m"], d["u"], d["pre_inv"]
        # Ld = 0 ("same region") pairs: no synapse, same similarity distribution
        s = same_region_per_pre
        g0 = np.repeat(np.arange(P), s)
        g = np.r_[d["g"], g0]
        x = np.r_[d["x"], np.clip(x_mean + u[g0] + rng.normal(0, x_sd, len(g0)), lo, hi)]
        ld, y = np.r_[d["ld"], np.zeros(len(g0))], np.r_[d["y"], np.zeros(len(g0), np.int64)]
        n = len(g)
        # posts: drawn without replacement per pre from a pool (so pairs are unique)
        pool = int(m.max() + s + 50)
        post = np.concatenate([rng.choice(pool, mi + s, replace=False) for mi in m])
        order = np.argsort(g, kind="stable")  # each pre's Ld > 0 rows, then its Ld = 0 rows
        post_of_row = np.empty(n, np.int64)
        post_of_row[order] = post
        pre_src, post_src = proj.split("->")
        pre_area = np.full(P, "V1", object) if pre_src == "V1" else _HVA[rng.integers(0, 3, P)].astype(object)
        pool_area = np.full(pool, "V1", object) if post_src == "V1" else _HVA[rng.integers(0, 3, pool)].astype(object)
        pre_layer = rng.choice(4, P, p=_LAYER_P)
        pool_layer = rng.choice(4, pool, p=_LAYER_P)
        label = np.array([f"{pre_src} {a}->{post_src} {b}" for a in _LAYERS for b in _LAYERS], object)
        pool_inv = np.clip(rng.beta(2, 2, pool) + invariance_shift, 0, None)
        size_mean = np.exp(rng.normal(0, 0.3, n) + size_beta * x)
        sizes = np.where(y > 0, y * 1000.0 * size_mean, 0.0)
        cols = {"pre_pt_root_id": (10_000_000 * (k + 1) + g).astype(np.int64),
                "post_pt_root_id": (10_000_000 * (k + 5) + post_of_row).astype(np.int64),
                "pre_recording_id": "0-1-1", "pre_unit_id": g.astype(np.int64),
                "post_recording_id": "0-1-2", "post_unit_id": post_of_row.astype(np.int64),
                "pre_area": pre_area[g], "post_area": pool_area[post_of_row],
                "pre_layer": _LAYERS[pre_layer[g]].astype(object),
                "post_layer": _LAYERS[pool_layer[post_of_row]].astype(object), "projection": proj,
                "area_layer_projection": label[4 * pre_layer[g] + pool_layer[post_of_row]],
                "n_synapses": y.astype(np.int64), "synapse_size_sum": sizes,
                "synapse_size_mean": np.where(y > 0, sizes / np.maximum(y, 1), np.nan), "ld_um": ld,
                measure: x, "pre_phase_invariance": pre_inv[g], "post_phase_invariance": pool_inv[post_of_row],
                "pre_bipartite_index": rng.beta(2, 2, P)[g], "post_bipartite_index": rng.beta(2, 2, pool)[post_of_row]}
        parts.append(pd.DataFrame(cols))
    df = pd.concat(parts, ignore_index=True)
    _finish(df, rng, measure, other_measures, mei_shift)
    return df


def _finish(df: pd.DataFrame, rng: np.random.Generator, measure: str, other_measures: bool, mei_shift: float) -> None:
    """Add populations, quality and the null measures (in place)."""
    n = len(df)
    conn = df["n_synapses"].to_numpy() > 0
    df["population"] = np.where(conn, "connected", np.where(df["ld_um"].to_numpy() > 0, "adp", "same_region"))
    for c in ("pre_cc_abs", "pre_cc_max", "post_cc_abs", "post_cc_max"):
        df[c] = np.nan
    df["quality_ok"] = True
    if other_measures:
        null = {"signal_correlation": lambda: rng.normal(0.05, 0.12, n),
                "feature_cosine": lambda: rng.normal(0.10, 0.20, n),
                "rf_distance": lambda: np.hypot(*rng.normal(0, 8.0, (2, n))),
                "ori_difference": lambda: rng.uniform(0, 90, n)}
        for name, draw in null.items():
            if name != measure:
                df[name] = draw()
        df["mei_similarity"] = rng.normal(0.3, 0.15, n) + mei_shift * conn
        df["vei_similarity"] = rng.normal(0.25, 0.12, n) + (2 / 3) * mei_shift * conn
    df["pre_out_degree"] = pd.Series(conn.astype(np.int64)).groupby(df["pre_pt_root_id"]).transform("sum")


__all__ = ["synthetic_edges", "draw_projection", "PUBLISHED_N_PRE", "PUBLISHED_N_CONNECTED", "PUBLISHED_SLOPES",
           "MEASURE_DIST"]

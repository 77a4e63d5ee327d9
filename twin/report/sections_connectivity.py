"""Report sections about wiring: like-to-like density curves, slopes vs published values,
invariance tests and a plain-language verdict per hypothesis.

Inputs (from ``twin analyze``'s folder): ``results.json`` (one record per test: name, measure,
projection, estimate, CI, p, adjusted p, n pre, n pairs, n synapses) and the edge table
(``edges.parquet``: one row per pre/post pair with n_synapses, Ld, projection, similarities).
Field names are read leniently (see :func:`normalise_tests`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from twin.report import figures
from twin.report import html as H
from twin.report.numbers import clean
from twin.report.published import MEASURE_NAMES, PROJECTIONS, published_slope
from twin.report.sections_data import Section
from twin.report.sources import Sources, read_json

ALPHA = 0.05
_ALIASES = {"estimate": ("estimate", "slope", "effect", "beta", "coef"),
            "ci_low": ("ci_low", "ci_lower", "lower", "ci_lo"),
            "ci_high": ("ci_high", "ci_upper", "upper", "ci_hi"),
            "p": ("p", "p_value", "pvalue"),
            "p_adj": ("p_adj", "p_adjusted", "adjusted_p", "q", "p_bh"),
            "n_pre": ("n_pre", "n_presynaptic"), "n_pairs": ("n_pairs",),
            "n_synapses": ("n_synapses", "n_syn"),
            "measure": ("measure", "similarity", "kind", "variable"),
            "projection": ("projection", "group"),
            "family": ("family", "scale", "test", "model", "kind_of_test")}


def _get(d: dict[str, Any], key: str) -> Any:
    for k in _ALIASES.get(key, (key,)):
        if k in d and d[k] is not None:
            return d[k]
    return None


def normalise_tests(results: Any) -> list[dict[str, Any]]:
    """Flatten ``results.json`` into records with keys name, family, measure, projection,
    estimate, ci_low, ci_high, p, p_adj, n_pre, n_pairs, n_synapses (None where absent).

    Accepts ``{"tests": [...]}``, a list of records, or ``{name: record}``; a CI may be given as
    ``ci: [low, high]``."""
    if isinstance(results, dict) and "tests" in results:
        results = results["tests"]
    if isinstance(results, dict):
        results = [{"name": k, **v} for k, v in results.items() if isinstance(v, dict)]
    out = []
    for r in results or []:
        rec = {k: _get(r, k) for k in _ALIASES}
        ci = r.get("ci") or r.get("ci95")
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            rec["ci_low"], rec["ci_high"] = rec["ci_low"] if rec["ci_low"] is not None else ci[0], \
                rec["ci_high"] if rec["ci_high"] is not None else ci[1]
        rec["name"] = str(r.get("name") or "/".join(str(x) for x in (rec["family"], rec["measure"],
                                                                        rec["projection"]) if x))
        rec["level"] = r.get("level") or "projection"
        rec["included"] = r.get("included", True) is not False
        rec["reason"] = r.get("reason")
        out.append(rec)
    return out


def headline(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tests a reader is shown first: included ones at the projection level (area x layer
    breakdowns and tests excluded by the inclusion rules are listed apart)."""
    return [t for t in tests if t["included"] and t["level"] != "area_layer"]


def _excluded_note(tests: list[dict[str, Any]]) -> str:
    out = [t for t in tests if not t["included"] and t["level"] != "area_layer"]
    if not out:
        return ""
    items = "; ".join(f"{t['name']}: {t['reason'] or 'excluded'}" for t in out)
    return H.para(f"Not tested (published inclusion rules): {items}.")


def _is_synaptic(t: dict[str, Any]) -> bool:
    fam = str(t.get("family") or t["name"]).lower()
    return "synap" in fam and "size" not in fam


def _is_invariance(t: dict[str, Any]) -> bool:
    text = f"{t.get('family')} {t.get('measure')} {t['name']}".lower()
    return any(w in text for w in ("invarian", "mei", "vei", "outgoing", "out_degree"))


# ------------------------------------------------------------------ slopes
def planted_betas(params: Any) -> dict[str, float]:
    """Planted like-to-like betas per projection from the simulator's ``truth/params.json``:
    the first table under a key containing "beta" whose keys are projections (``V1->V1``...)."""
    if isinstance(params, dict):
        for k, v in params.items():
            if "beta" in str(k).lower() and isinstance(v, dict) and set(v) & set(PROJECTIONS):
                return {p: float(x) for p, x in v.items() if p in PROJECTIONS and isinstance(x, (int, float))}
        for v in params.values():
            found = planted_betas(v)
            if found:
                return found
    return {}


def slopes(src: Sources) -> Section:
    """Synaptic-scale slopes per projection and measure, with CIs, beside the published ones."""
    title = "Like-to-like slopes vs published"
    res = read_json(src.analyze / "results.json") if src.analyze else None
    if res is None:
        return Section.absent("slopes", title, "No analysis output (analyze/results.json) was found.")
    every = [t for t in normalise_tests(res) if _is_synaptic(t) and not _is_invariance(t)]
    tests = headline(every)
    planted = planted_betas(read_json(src.data / "truth" / "params.json")) if src.is_simulated else {}
    rows = []
    for t in tests:
        pub = published_slope(str(t["measure"]), str(t["projection"]))
        covered = None
        if pub is not None and t["ci_low"] is not None and t["ci_high"] is not None:
            covered = bool(t["ci_low"] <= pub <= t["ci_high"])
        rows.append({"measure": t["measure"], "projection": t["projection"], "estimate": t["estimate"],
                     "ci_low": t["ci_low"], "ci_high": t["ci_high"], "p": t["p"], "p_adj": t["p_adj"],
                     "n_pre": t["n_pre"], "n_pairs": t["n_pairs"], "n_synapses": t["n_synapses"],
                     "published": pub, "published_within_ci": covered,
                     "planted": planted.get(str(t["projection"])) if t["measure"] == "signal_correlation" else None})
    if not rows:
        return Section.absent("slopes", title, "results.json holds no synaptic-scale slopes.")
    data = clean({"status": "ok", "model": "Poisson: n_synapses ~ similarity, offset log Ld, per projection "
                                           "(projection 'all': one common slope over the included projections)",
                  "slopes": rows})
    cols = ["measure", "projection", "estimate", "ci_low", "ci_high", "p", "p_adj", "n_pre", "n_pairs",
            "n_synapses", "published", "published_within_ci"] + (["planted"] if planted else [])
    parts = [H.para("Change in log synapse density per unit of each similarity measure (synaptic scale, "
                    "pairs with Ld > 0). Published: Ding et al. 2025 (RF distance ~0 there, with mixed signs)."
                    + (" planted: the simulator's beta per unit of TRUE signal correlation (the twin's "
                       "in-silico similarity is a noisy, rescaled estimate of it)." if planted else "")),
             H.table(cols, [[r[c] for c in cols] for r in data["slopes"]]), _excluded_note(every)]
    frows = [{"label": f"{r['measure']} {r['projection']}", **r} for r in data["slopes"]]
    parts.append(H.figure(figures.forest(frows, "Synaptic-scale slopes"),
                          "Slopes with 95% CIs (circles) and published values (crosses)."))
    return Section("slopes", title, data, "".join(parts))


# ------------------------------------------------------------------ density curves
def _col(df: Any, *names: str) -> str | None:
    return next((n for n in names if n in df.columns), None)


def binned_density(n_syn: np.ndarray, ld: np.ndarray, x: np.ndarray, pre: np.ndarray, n_bins: int = 6,
                   n_boot: int = 200, seed: int = 0) -> dict[str, list[float]]:
    """Synapse density (sum n_synapses / sum Ld per um) in quantile bins of ``x`` with a 95%
    bootstrap band over presynaptic neurons (``pre`` ids resampled with replacement).

    Args: per-pair arrays (n_pairs,): synapse counts, Ld (um, > 0), similarity, pre id.
    Returns: x (bin centres: median of x), density, lo, hi, n_pairs per bin (lists)."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    nb = len(edges) - 1
    ids, p = np.unique(pre, return_inverse=True)
    syn = np.zeros((len(ids), nb))
    lds = np.zeros((len(ids), nb))
    np.add.at(syn, (p, b), n_syn)
    np.add.at(lds, (p, b), ld)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=n_boot).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ syn) / (w @ lds)
        dens = syn.sum(0) / lds.sum(0)
    return {"x": [float(np.median(x[b == k])) for k in range(nb)], "density": dens.tolist(),
            "lo": np.nanpercentile(boot, 2.5, axis=0).tolist(), "hi": np.nanpercentile(boot, 97.5, axis=0).tolist(),
            "n_pairs": np.bincount(b, minlength=nb).tolist()}


def density(src: Sources, measures: tuple[str, ...] = ("signal_correlation", "feature_cosine", "rf_distance"),
            n_boot: int = 200) -> Section:
    """Like-to-like: synapse density vs similarity per projection, bootstrap bands (from the edge table)."""
    title = "Like-to-like: synapse density vs similarity"
    path = None
    if src.analyze:
        path = next((p for p in (src.analyze / "edges.parquet", src.analyze / "edge_table.parquet") if p.is_file()),
                    None)
    if path is None:
        return Section.absent("density", title, "No edge table (analyze/edges.parquet) was found.")
    import pandas as pd

    df = pd.read_parquet(path)
    c_syn, c_ld = _col(df, "n_synapses", "n_syn"), _col(df, "ld_um", "ld", "Ld", "ld_mm")
    c_pre, c_proj = _col(df, "pre_pt_root_id", "pre_root_id", "pre"), _col(df, "projection")
    if None in (c_syn, c_ld, c_pre, c_proj):
        return Section.absent("density", title, f"{path}: expected columns n_synapses, ld_um, pre_pt_root_id, "
                                                f"projection; found {list(df.columns)}.")
    df = df[df[c_ld] > 0]
    out: dict[str, Any] = {"status": "ok", "ld_column": c_ld, "n_bootstrap": n_boot, "measures": {}}
    parts = [H.para(f"Synapses per unit of axon-dendrite proximity (Ld, column {c_ld}) in quantile bins of "
                    f"each similarity, pairs with Ld > 0; bands: 95% bootstrap over presynaptic neurons "
                    f"({n_boot} resamples).")]
    for m in measures:
        if m not in df.columns:
            continue
        panels = {}
        for proj in [p for p in PROJECTIONS if p in set(df[c_proj])] + sorted(set(df[c_proj]) - set(PROJECTIONS)):
            d = df[(df[c_proj] == proj) & np.isfinite(df[m])]
            if len(d) < 10 or d[c_pre].nunique() < 2:
                continue
            panels[str(proj)] = binned_density(d[c_syn].to_numpy(float), d[c_ld].to_numpy(float),
                                               d[m].to_numpy(float), d[c_pre].to_numpy(), n_boot=n_boot)
        if not panels:
            continue
        panels = clean(panels)
        out["measures"][m] = panels
        parts.append(H.figure(figures.density_curves(panels, MEASURE_NAMES.get(m, m), MEASURE_NAMES.get(m, m)),
                              f"Synapse density vs {MEASURE_NAMES.get(m, m)} per projection."))
        rows = [[proj, k + 1, p["x"][k], p["density"][k], p["lo"][k], p["hi"][k], p["n_pairs"][k]]
                for proj, p in panels.items() for k in range(len(p["x"]))]
        parts.append(H.details(f"Numbers: {MEASURE_NAMES.get(m, m)}", H.table(
            ["projection", "bin", "median similarity", "density", "2.5%", "97.5%", "pairs"], rows)))
    if not out["measures"]:
        return Section.absent("density", title, f"{path}: no similarity column with enough pairs per projection.")
    return Section("density", title, out, "".join(parts))


# ------------------------------------------------------------------ invariance + verdicts
def invariance(src: Sources) -> Section:
    """Invariance hypotheses (MEI/VEI similarity of connected vs ADP pairs, post vs pre invariance,
    invariance vs outgoing connections) as reported by the analysis."""
    title = "Invariance and connectivity"
    res = read_json(src.analyze / "results.json") if src.analyze else None
    if res is None:
        return Section.absent("invariance", title, "No analysis output (analyze/results.json) was found.")
    every = [t for t in normalise_tests(res) if _is_invariance(t)]
    tests = headline(every)
    if not tests:
        return Section.absent("invariance", title, "results.json holds no invariance tests that passed the "
                              "inclusion rules." if every else "results.json holds no invariance tests.")
    cols = ["name", "estimate", "ci_low", "ci_high", "p", "p_adj", "n_pre", "n_pairs"]
    data = clean({"status": "ok", "tests": [{c: t[c] for c in cols} for t in tests]})
    html = H.table(cols, [[r[c] for c in cols] for r in data["tests"]]) + _excluded_note(every)
    return Section("invariance", title, data, html)


# Invariance hypotheses (Ding, Tran et al. 2026): the sign each predicts, and what it means.
_INVARIANCE_CLAIMS = (("connected_minus_adp", 1, "connected pairs have more similar {m} than axon-dendrite "
                       "proximity controls"),
                      ("post_minus_pre", 1, "postsynaptic neurons are more invariant ({m}) than their "
                       "presynaptic inputs"),
                      ("out_degree", -1, "less invariant neurons ({m}) form more outgoing connections"))


def _invariance_verdict(t: dict[str, Any], est: float | None, p: float | None) -> tuple[str, str] | None:
    for key, sign, claim in _INVARIANCE_CLAIMS:
        if key in t["name"]:
            text = claim.format(m=MEASURE_NAMES.get(str(t.get("measure")), str(t.get("measure"))))
            if est is None or p is None:
                return "inconclusive", "no estimate or p-value was reported"
            if p >= ALPHA:
                return "inconclusive", f"no significant effect at this sample size (hypothesis: {text})"
            return ("supported", text) if est * sign > 0 else ("not supported", f"the opposite of: {text}")
    return None


# The sign of a like-to-like slope: positive for similarities, negative for differences (a pair
# whose preferred orientations differ less is the more alike).
LIKE_TO_LIKE_SIGN = {"ori_difference": -1}


def _verdict(t: dict[str, Any]) -> dict[str, Any]:
    p = t["p_adj"] if t["p_adj"] is not None else t["p"]
    est, measure = t["estimate"], str(t.get("measure") or "")
    expect_zero = measure == "rf_distance"
    inv = _invariance_verdict(t, est, p) if _is_invariance(t) else None
    if inv is not None:
        status, text = inv
    elif est is None or p is None:
        status, text = "inconclusive", "no estimate or p-value was reported"
    elif expect_zero:
        # a p-value cannot show that an effect is absent: no significant dependence is reported as
        # consistent with the published null, not as support for it
        status = "consistent" if p >= ALPHA else "not supported"
        text = ("no significant dependence of synapse density on RF distance, as published (an absent "
                "effect at this sample size, not proof of none)" if p >= ALPHA
                else "synapse density depends on RF distance, unlike the published result")
    elif p < ALPHA and est * LIKE_TO_LIKE_SIGN.get(measure, 1) > 0:
        status, text = "supported", "more similar neurons are more likely to be connected (like-to-like)"
    elif p < ALPHA:
        status, text = "not supported", "the effect goes in the opposite direction to like-to-like"
    else:
        status, text = "inconclusive", "no significant dependence at this sample size"
    where = "all projections (one common slope)" if t.get("level") == "pooled" else t.get("projection")
    label = MEASURE_NAMES.get(measure, measure)
    for key, how in (("out_degree_poisson", "outgoing connections, Poisson"),
                     ("out_degree_spearman", "outgoing connections, Spearman")):
        if key in t["name"]:
            label = f"{label} ({how})"
    name = f"{label}, {where}" if where else t["name"]
    return {"hypothesis": name, "verdict": status, "effect": est, "ci_low": t["ci_low"], "ci_high": t["ci_high"],
            "p_adj": p, "explanation": text}


def verdicts(src: Sources) -> Section:
    """One plain-language verdict per tested hypothesis (BH-adjusted p < 0.05)."""
    title = "Verdicts"
    res = read_json(src.analyze / "results.json") if src.analyze else None
    if res is None:
        return Section.absent("verdicts", title, "No analysis output, so no hypothesis was tested.")
    tests = headline([t for t in normalise_tests(res) if _is_synaptic(t) or _is_invariance(t)])
    data = clean({"status": "ok", "alpha": ALPHA, "verdicts": [_verdict(t) for t in tests]})
    parts = [H.para(f"A hypothesis is supported when its Benjamini-Hochberg adjusted p is below {ALPHA} "
                    "with the predicted sign. Where the published result is no dependence (RF centre "
                    f"distance), an adjusted p of {ALPHA} or more is reported as consistent with it.")]
    for v in data["verdicts"]:
        cls = v["verdict"].replace(" ", "-")
        from twin.report.numbers import fmt

        parts.append(H.para(f"{v['hypothesis']}: {v['verdict'].upper()}: {v['explanation']} (effect "
                            f"{fmt(v['effect'])}, 95% CI {fmt(v['ci_low'])} to {fmt(v['ci_high'])}, "
                            f"adjusted p = {fmt(v['p_adj'])}).", f"verdict {cls}"))
    return Section("verdicts", title, data, "".join(parts))

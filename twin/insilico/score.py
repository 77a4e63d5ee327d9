"""Score an in-silico battery run on a trained twin against the simulator's ground truth.

``score_battery(battery_dir, sim_dir, truth_battery_dir=None, metrics_path=None)`` returns the
numbers of the issue's quality bar (``format_score`` prints them; ``twin insilico ... --score
SIM_DIR`` runs both batteries and prints them):

* ``ori_error_median_deg``: median circular difference (0..90) between the battery's preferred
  orientation (gratings) and the planted ``pref_ori_deg``, among orientation-tuned cells (the
  truth battery's permutation test passes and its gOSI >= ``min_gosi``; bipartite cells, whose
  texture subfield has its own orientation, excluded); bar: < 15 deg;
* ``gosi_spearman``: Spearman r of the battery's gOSI with the truth battery's gOSI (the same
  experiment run on the planted neurons: gOSI is emergent, not a planted parameter); bar: >= 0.7;
  ``noise_gosi_spearman`` and ``noise_ori_error_median_deg``: the same from directional noise
  (reported beside the gratings' numbers; the bar entries stay the gratings'). ``truth_model``
  names what the truth battery's neurons answered (its config.json ``model``): since 2026-12-06
  the planted neurons' expected *observed* activity, the like-for-like yardstick of a twin trained
  on observed activity (:mod:`twin.simulate.truth`). With ``rate_battery_dir`` (the tuning
  experiment on the planted rates) ``gosi_spearman_rate`` and ``noise_gosi_spearman_rate`` say
  how well the twin's gOSI follows the latent tuning, under the imaging pipeline's floor.
* ``simple_complex_auc``: ROC AUC of the battery's ``phase_invariance`` (1 - clip(F1/F0, 0, 2)/2)
  for planted complex vs simple cells (``cell_class``; direction and bipartite cells excluded);
  bar: >= 0.85;
* ``rf_within_radius``: fraction of cells (bipartite excluded: their RF includes the texture
  subfield) whose RF centre lies within one planted RF radius (``rf_sigma_deg``, the Gabor
  envelope's sigma) of the planted centre, and ``rf_distance_median_radii``; bar: the median
  cell within one radius (fraction >= 0.5);
* ``signal_corr_r``: Pearson r between the battery's and the truth's pairwise signal correlations
  over (up to ``max_pairs`` random) pairs, both on the same natural-movie battery when the truth
  battery is given (else on the simulator's truth/profiles.h5 battery); bar: >= 0.7;
* ``quality_bar``: each criterion's pass/fail.

Diagnostics beside the bar (why a number falls short):

* ``gosi_vs_planted``: {planted parameter: {"model": rho, "truth": rho}}, the Spearman r of the
  battery's and of the truth battery's gOSI with each planted parameter of ``PLANTED`` over the
  scored neurons: which planted properties the model's tuning follows and which it misses (on the
  default mouse the planted gratings' gOSI follows RF size and normalisation, the twin's does not);
* ``first_pc_share`` and ``signal_corr_mean``: {"model": x, "truth": y}, the share of the
  natural-movie battery responses' variance (each neuron z-scored) on their first principal
  component, and the mean pairwise signal correlation over the scored pairs: a model whose
  responses lean on a shared component more than the truth's inflates every pair's correlation.

Only neurons the twin predicts well enter when ``metrics_path`` (``twin evaluate``'s
metrics.h5) is given: natural-movie ``cc_norm >= min_cc_norm``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu, pearsonr, spearmanr

from twin.errors import InputError
from twin.insilico.common import load_dataset
from twin.similarity import load_profiles, pair_similarity

KEY = ["recording_id", "unit_id"]
PLANTED = ("rf_sigma_deg", "sf_cpd", "tf_hz", "norm_sigma", "phase_invariance", "direction_strength", "threshold",
           "amplitude_hz", "noise_sd")


def _frame(ds, names) -> pd.DataFrame:
    out = pd.DataFrame({"recording_id": ds["recording_id"].values.astype(str), "unit_id": ds["unit_id"].values})
    for n in names:
        if n in ds:
            out[n] = ds[n].values if ds[n].ndim == 1 else list(ds[n].values)
    return out


def _circ(a, b, period=180.0):
    d = np.abs(np.asarray(a) - np.asarray(b)) % period
    return np.minimum(d, period - d)


def score_battery(battery_dir: str | os.PathLike, sim_dir: str | os.PathLike,
                  truth_battery_dir: str | os.PathLike | None = None, metrics_path: str | os.PathLike | None = None,
                  *, min_cc_norm: float = 0.3, min_gosi: float = 0.15, max_pairs: int = 200_000,
                  seed: int = 0, rate_battery_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The quality-bar numbers (see the module docstring) as a JSON-ready dict."""
    battery_dir, sim_dir = Path(battery_dir), Path(sim_dir)
    upath = sim_dir / "truth" / "units.parquet"
    if not upath.is_file():
        raise InputError(upath, "file", "the simulator's truth/units.parquet", "no such file")
    truth = pd.read_parquet(upath)
    truth["recording_id"] = truth["recording_id"].astype(str)
    tw = _frame(load_dataset(battery_dir / "tuning.h5"), ["pref_ori", "gosi", "phase_invariance", "noise_pref_ori",
                                                           "noise_gosi"])
    df = truth.merge(tw, on=KEY, how="inner")
    if truth_battery_dir is not None:
        tt = _frame(load_dataset(Path(truth_battery_dir) / "tuning.h5"), ["gosi", "tuned", "noise_gosi"])
        df = df.merge(tt.rename(columns={"gosi": "true_gosi", "tuned": "true_tuned", "noise_gosi": "true_noise_gosi"}),
                      on=KEY, how="left")
    if rate_battery_dir is not None:
        tr = _frame(load_dataset(Path(rate_battery_dir) / "tuning.h5"), ["gosi", "noise_gosi"])
        df = df.merge(tr.rename(columns={"gosi": "rate_gosi", "noise_gosi": "rate_noise_gosi"}), on=KEY, how="left")
    rf_path = battery_dir / "rf.h5"
    if rf_path.is_file():
        rf = load_dataset(rf_path)
        r = _frame(rf, [])
        r["rf_cx"], r["rf_cy"] = rf["rf_center"].values[:, 0], rf["rf_center"].values[:, 1]
        df = df.merge(r, on=KEY, how="left")
    n_all = len(df)
    if metrics_path is not None:
        m = load_dataset(metrics_path)
        if "stimulus_type" in m["cc_norm"].dims:   # twin evaluate: per stimulus type
            m = m.sel(stimulus_type="natural_movie")
        mf = _frame(m, ["cc_norm"])
        df = df.merge(mf, on=KEY, how="left")
        df = df[df["cc_norm"].fillna(-np.inf) >= min_cc_norm]
    out: dict[str, Any] = {"n_units_matched": int(n_all), "n_units_scored": int(len(df))}
    tcfg = None if truth_battery_dir is None else Path(truth_battery_dir) / "config.json"
    if tcfg is not None and tcfg.is_file():    # untagged: written before the tag, on the planted rates
        out["truth_model"] = json.loads(tcfg.read_text()).get("model", "planted neurons: rate")
    # orientation
    nonbip = df["cell_class"] != "bipartite"
    if "true_gosi" in df:
        tuned = nonbip & (df["true_gosi"] >= min_gosi) & df["true_tuned"].fillna(False).astype(bool)
    else:
        tuned = nonbip
    err = _circ(df.loc[tuned, "pref_ori"], df.loc[tuned, "pref_ori_deg"])
    out["ori_error_median_deg"] = float(np.median(err)) if len(err) else None
    out["n_tuned"] = int(tuned.sum())
    if "true_gosi" in df:
        ok = df["true_gosi"].notna()
        rho = spearmanr(df.loc[ok, "gosi"], df.loc[ok, "true_gosi"]).statistic if ok.sum() > 2 else None
        out["gosi_spearman"] = None if rho is None else float(rho)
        if ok.sum() > 2:
            # a planted column that the battery also has (phase_invariance) carries pandas' "_x"
            col = {c: c + "_x" if c in tw.columns else c for c in PLANTED}
            out["gosi_vs_planted"] = {c: {"model": _rho(df.loc[ok, col[c]], df.loc[ok, "gosi"]),
                                          "truth": _rho(df.loc[ok, col[c]], df.loc[ok, "true_gosi"])}
                                      for c in PLANTED if col[c] in df}
    else:
        out["gosi_spearman"] = None
    # the same from directional noise (MICrONS' "Monet2" stimulus), reported beside the gratings
    if "noise_pref_ori" in df:
        err = _circ(df.loc[tuned, "noise_pref_ori"], df.loc[tuned, "pref_ori_deg"])
        out["noise_ori_error_median_deg"] = float(np.median(err)) if len(err) else None
    if "true_noise_gosi" in df and "noise_gosi" in df:
        ok = df["true_noise_gosi"].notna() & df["noise_gosi"].notna()
        out["noise_gosi_spearman"] = (float(spearmanr(df.loc[ok, "noise_gosi"], df.loc[ok, "true_noise_gosi"]).statistic)
                                      if ok.sum() > 2 else None)
    for mine, theirs in (("gosi", "rate_gosi"), ("noise_gosi", "rate_noise_gosi")):
        if theirs in df and mine in df:
            out[f"{mine}_spearman_rate"] = _rho(df[mine], df[theirs])
    # simple vs complex
    est = df["phase_invariance_y"] if "phase_invariance_y" in df else None
    if "cell_class" in df:
        cls = df["cell_class"].astype(str)
        cx, sx = cls == "complex", cls == "simple"
    else:
        lab = df["phase_invariance_x"] if "phase_invariance_x" in df else df["phase_invariance"]
        cx, sx = nonbip & (lab > 0.5), nonbip & (lab <= 0.5)
    if est is not None:
        cx, sx = cx & est.notna(), sx & est.notna()
    if est is not None and cx.any() and sx.any():
        u = mannwhitneyu(est[cx], est[sx]).statistic
        out["simple_complex_auc"] = float(u / (cx.sum() * sx.sum()))
    else:
        out["simple_complex_auc"] = None
    out["n_simple"], out["n_complex"] = int(sx.sum()), int(cx.sum())
    # RF centres
    if "rf_cx" in df:
        dist = (np.hypot(df["rf_cx"] - df["rf_x_deg"], df["rf_cy"] - df["rf_y_deg"]) / df["rf_sigma_deg"]).to_numpy()
        d = dist[nonbip.to_numpy()]
        d = d[np.isfinite(d)]
        out["rf_within_radius"] = float(np.mean(d <= 1.0)) if len(d) else None
        out["rf_distance_median_radii"] = float(np.median(d)) if len(d) else None
        out["rf_within_radius_all_cells"] = float(np.mean(dist <= 1.0)) if len(dist) else None
    # pairwise signal correlation
    ppath = battery_dir / "profiles.h5"
    tpath = (Path(truth_battery_dir) / "profiles.h5" if truth_battery_dir is not None
             else sim_dir / "truth" / "profiles.h5")
    if ppath.is_file() and tpath.is_file():
        p, q = load_profiles(ppath), load_profiles(tpath)
        pk = pd.DataFrame({"recording_id": p["recording_id"].values.astype(str), "unit_id": p["unit_id"].values,
                           "ip": np.arange(p.sizes["unit"])})
        qk = pd.DataFrame({"recording_id": q["recording_id"].values.astype(str), "unit_id": q["unit_id"].values,
                           "iq": np.arange(q.sizes["unit"])})
        keep = df[KEY].merge(pk, on=KEY).merge(qk, on=KEY)
        n = len(keep)
        if n > 2:
            rng = np.random.default_rng(seed)
            n_pairs = n * (n - 1) // 2
            if n_pairs <= max_pairs:
                a, b = np.triu_indices(n, 1)
            else:
                a, b = rng.integers(0, n, (2, max_pairs))
                a, b = a[a != b], b[a != b]
            sp = pair_similarity(p, keep["ip"].values[a], keep["ip"].values[b], ["signal_correlation"])
            sq = pair_similarity(q, keep["iq"].values[a], keep["iq"].values[b], ["signal_correlation"])
            out["signal_corr_r"] = float(pearsonr(sp["signal_correlation"], sq["signal_correlation"]).statistic)
            out["n_pairs"] = int(len(a))
            out["signal_corr_mean"] = {"model": float(np.mean(sp["signal_correlation"])),
                                       "truth": float(np.mean(sq["signal_correlation"]))}
            out["first_pc_share"] = {"model": _first_pc_share(p["signal_response"].values[keep["ip"].values]),
                                     "truth": _first_pc_share(q["signal_response"].values[keep["iq"].values])}
    out["quality_bar"] = {k: (None if out.get(k) is None else bool(f(out[k]))) for k, (f, _) in BAR.items()}
    return out


def _rho(x, y) -> float | None:
    """Spearman r, or None where either side is constant or has fewer than 3 finite pairs."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return float(spearmanr(x[ok], y[ok]).statistic)


def _first_pc_share(responses: np.ndarray) -> float:
    """Share of the variance of (unit, sample) responses, each unit z-scored (constant units
    dropped), on their first principal component."""
    r = np.asarray(responses, np.float64)
    r = r - r.mean(1, keepdims=True)
    sd = r.std(1)
    r = r[sd > 0] / sd[sd > 0, None]
    if len(r) == 0:
        return float("nan")
    s = np.linalg.svd(r, compute_uv=False) ** 2
    return float(s[0] / s.sum())


BAR = {"ori_error_median_deg": (lambda v: v < 15, "< 15 deg (orientation-tuned cells)"),
       "gosi_spearman": (lambda v: v >= 0.7, ">= 0.7 (Spearman vs the truth battery)"),
       "simple_complex_auc": (lambda v: v >= 0.85, ">= 0.85 (complex vs simple, phase invariance)"),
       "rf_within_radius": (lambda v: v >= 0.5, ">= 0.5 of cells within one RF radius"),
       "signal_corr_r": (lambda v: v >= 0.7, ">= 0.7 (pairwise signal correlations)")}


def format_score(s: dict[str, Any]) -> str:
    """The quality-bar numbers of :func:`score_battery` as a few printable lines."""
    lines = [f"quality bar ({s.get('n_units_scored')} of {s.get('n_units_matched')} units scored"
             + (f"; truth battery: {s['truth_model']}" if s.get("truth_model") else "") + "):"]
    for k, (_, text) in BAR.items():
        v = s.get(k)
        ok = s.get("quality_bar", {}).get(k)
        mark = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        lines.append(f"  {mark} {k:22s} {'-' if v is None else f'{v:.3f}':>8}  {text}")
    extra = {k: s[k] for k in ("noise_ori_error_median_deg", "noise_gosi_spearman", "gosi_spearman_rate",
                               "noise_gosi_spearman_rate", "n_tuned", "n_simple",
                               "n_complex", "rf_distance_median_radii",
                               "rf_within_radius_all_cells", "n_pairs") if s.get(k) is not None}
    lines.append("  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()))
    pair = [f"{k} {d['model']:.3g} (truth {d['truth']:.3g})" for k in ("signal_corr_mean", "first_pc_share")
            if (d := s.get(k)) is not None]
    if pair:
        lines.append("  natural-movie battery: " + ", ".join(pair))
    gp = s.get("gosi_vs_planted") or {}
    fmt = lambda v: "-" if v is None else f"{v:+.2f}"  # noqa: E731
    if gp:
        lines.append("  gOSI vs planted (Spearman, model / truth): "
                     + ", ".join(f"{k} {fmt(d['model'])} / {fmt(d['truth'])}" for k, d in gp.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m twin.insilico.score BATTERY_DIR SIM_DIR [--truth-battery DIR] [--metrics H5]``."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("battery_dir")
    p.add_argument("sim_dir")
    p.add_argument("--truth-battery")
    p.add_argument("--rate-battery", help="the tuning experiment on the planted rates (adds *_spearman_rate)")
    p.add_argument("--metrics")
    p.add_argument("--min-cc-norm", type=float, default=0.3)
    p.add_argument("--json", action="store_true", help="print the full JSON")
    a = p.parse_args(argv)
    s = score_battery(a.battery_dir, a.sim_dir, a.truth_battery, a.metrics, min_cc_norm=a.min_cc_norm,
                      rate_battery_dir=a.rate_battery)
    print(json.dumps(s, indent=2) if a.json else format_score(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

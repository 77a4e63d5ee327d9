"""Report sections about the data and the twin: data summary, twin quality, tuning recovery.

Each builder takes :class:`twin.report.sources.Sources` and returns a :class:`Section`: its JSON
data (numbers rounded by :func:`twin.report.numbers.clean`) and its HTML, built from that same
data so page and JSON agree. A missing input gives a section that says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.report import figures
from twin.report import html as H
from twin.report.numbers import clean
from twin.report.sources import Sources, read_json


@dataclass
class Section:
    anchor: str
    title: str
    data: dict[str, Any] = field(default_factory=dict)
    html: str = ""

    @classmethod
    def absent(cls, anchor: str, title: str, why: str) -> "Section":
        return cls(anchor, title, {"status": "missing", "note": why}, H.missing(why))


def recording_files(data_dir: Path) -> list[Path]:
    """Recording HDF5 files of a simulate/import folder (``recordings/*.h5`` or ``*.h5``)."""
    found = sorted((data_dir / "recordings").glob("*.h5")) if (data_dir / "recordings").is_dir() else []
    return found or sorted(data_dir.glob("*.h5"))


# ------------------------------------------------------------------ data summary
def data_summary(src: Sources) -> Section:
    """Scans, neurons per area, trials per tier and stimulus type, frame rate."""
    title = "Data"
    if src.data is None:
        return Section.absent("data", title, "No data stage output (simulate or import) was found.")
    files = recording_files(src.data)
    if not files:
        return Section.absent("data", title, f"No Recording files under {src.data}.")
    from twin.data.recording import open_recording

    scans, areas, types = [], {}, {}
    for f in files:
        with open_recording(f) as ds:
            tiers = {t: int(n) for t, n in zip(*np.unique(np.asarray(ds["tier"].values).astype(str),
                                                           return_counts=True))}
            for a in np.asarray(ds["area"].values).astype(str):
                areas[a] = areas.get(a, 0) + 1
            for t in np.asarray(ds["stimulus_type"].values).astype(str):
                types[t] = types.get(t, 0) + 1
            scans.append({"recording_id": str(ds.attrs["recording_id"]), "n_units": int(ds.sizes["unit"]),
                          "n_trials": int(ds.sizes["trial"]), "train": tiers.get("train", 0),
                          "validation": tiers.get("validation", 0), "test": tiers.get("test", 0),
                          "frame_rate_hz": float(ds.attrs["frame_rate"]),
                          "image": f"{ds.sizes['y']}x{ds.sizes['x']}"})
    data = clean({"status": "ok", "source": "synthetic mouse (ground truth available)" if src.is_simulated
                  else "imported recordings", "n_scans": len(scans),
                  "n_units": sum(s["n_units"] for s in scans), "scans": scans,
                  "units_per_area": dict(sorted(areas.items())),
                  "trials_per_stimulus_type": dict(sorted(types.items()))})
    parts = [H.para(f"Source: {data['source']}. {data['n_scans']} scans, {data['n_units']} neurons.")]
    cols = ["recording_id", "n_units", "n_trials", "train", "validation", "test", "frame_rate_hz", "image"]
    parts.append(H.table(cols, [[s[c] for c in cols] for s in data["scans"]], "Scans"))
    parts.append(H.table(["area", "neurons"], list(data["units_per_area"].items()), "Neurons per area"))
    parts.append(H.table(["stimulus type", "trials (all scans)"], list(data["trials_per_stimulus_type"].items()),
                         "Trials per stimulus type"))
    return Section("data", title, data, "".join(parts))


# ------------------------------------------------------------------ training
def training(src: Sources) -> Section:
    """What training did: steps, best validation correlation, ensemble members."""
    title = "Training"
    if src.train is None:
        return Section.absent("training", title, "No training stage output was found.")
    model = read_json(src.train / "model.json") or {}
    rows = []
    log = src.train / "metrics.jsonl"
    if not log.is_file():  # an ensemble: show its first member's curve
        log = next(iter(sorted(src.train.glob("seed_*/metrics.jsonl"))), log)
    if log.is_file():
        import json

        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    val = [(r.get("step"), r["val_corr"]) for r in rows if r.get("val_corr") is not None]
    loss = [(r.get("step"), r["loss"]) for r in rows if r.get("loss") is not None]
    data = clean({"status": "ok", "finished": bool(model.get("finished", False)),
                  "n_members": len(model.get("members") or []) or 1,
                  "steps_logged": len(loss),
                  "best_validation_correlation": max((v for _, v in val), default=None),
                  "final_loss": loss[-1][1] if loss else None})
    parts = [H.table(["finished", "ensemble members", "steps logged", "best validation correlation",
                      "final training loss"],
                     [[data["finished"], data["n_members"], data["steps_logged"],
                       data["best_validation_correlation"], data["final_loss"]]])]
    if loss:
        x = [s for s, _ in loss]
        parts.append(H.figure(figures.line_plot(x, {"Poisson loss": [v for _, v in loss]}, "step", "loss",
                                                "Training loss"), "Training loss per step."))
    return Section("training", title, data, "".join(parts))


# ------------------------------------------------------------------ twin quality
QUALITY_METRICS = ("single_trial_correlation", "correlation_to_average", "feve", "cc_norm")


def quality(src: Sources) -> Section:
    """Twin quality per stimulus type and per area (medians over neurons), and the ratio to the
    ground truth's noise-free prediction when the data are simulated."""
    title = "Twin quality"
    summary = read_json(src.evaluate / "summary.json") if src.evaluate else None
    if summary is None:
        return Section.absent("quality", title, "No evaluation output (evaluate/summary.json) was found.")
    types = summary.get("stimulus_types", {})
    ratio = summary.get("ratio_to_truth") or {}
    per_type, per_area = [], []
    for stype, e in types.items():
        row = {"stimulus_type": stype, "n_units": e.get("n_units")}
        row.update({m: (e.get("median") or {}).get(m) for m in QUALITY_METRICS})
        row["ratio_to_truth"] = (ratio.get(stype) or {}).get("correlation_to_average")
        per_type.append(row)
        for area, a in (e.get("by_area") or {}).items():
            per_area.append({"stimulus_type": stype, "area": area, "n_units": a.get("n_units"),
                             "correlation_to_average": (a.get("median") or {}).get("correlation_to_average"),
                             "cc_norm": (a.get("median") or {}).get("cc_norm")})
    data = clean({"status": "ok", "statistic": "median over neurons", "per_stimulus_type": per_type,
                  "per_area": per_area})
    cols = ["stimulus_type", "n_units", *QUALITY_METRICS, "ratio_to_truth"]
    parts = [H.para("Medians over neurons of held-out test trials. ratio_to_truth = the twin's median "
                    "correlation to average divided by that of the noise-free ground truth (the best "
                    "any model can do on these data; n/a without ground truth)."),
             H.table(cols, [[r[c] for c in cols] for r in data["per_stimulus_type"]], "Per stimulus type")]
    acols = ["stimulus_type", "area", "n_units", "correlation_to_average", "cc_norm"]
    parts.append(H.table(acols, [[r[c] for c in acols] for r in data["per_area"]], "Per stimulus type and area"))
    if per_type:
        groups = [r["stimulus_type"] for r in data["per_stimulus_type"]]
        parts.append(H.figure(figures.grouped_bars(
            groups, {m: [r[m] for r in data["per_stimulus_type"]] for m in QUALITY_METRICS},
            "median", "Twin quality per stimulus type"), "Median metrics per stimulus type."))
    return Section("quality", title, data, "".join(parts))


# ------------------------------------------------------------------ tuning recovery
def _circ_diff(a: np.ndarray, b: np.ndarray, period: float) -> np.ndarray:
    d = np.abs(a - b) % period
    return np.minimum(d, period - d)


def recovery(src: Sources) -> Section:
    """Recovered (in-silico on the twin) vs planted tuning: preferred orientation, gOSI, phase
    invariance and RF centres, joined per neuron on (recording_id, unit_id)."""
    title = "Recovered vs planted tuning"
    if not src.is_simulated:
        return Section.absent("recovery", title, "No ground truth: the data are not from the simulator.")
    prof_path = src.insilico / "profiles.h5" if src.insilico else None
    if prof_path is None or not prof_path.is_file():
        return Section.absent("recovery", title, "No in-silico profiles (insilico/profiles.h5) were found.")
    import pandas as pd
    from scipy import stats

    from twin.similarity import load_profiles

    prof = load_profiles(prof_path)
    truth = pd.read_parquet(src.data / "truth" / "units.parquet")
    # the same in-silico battery run on the planted neurons (insilico/truth/) is the fair yardstick
    # for emergent quantities such as gOSI; the simulator's own profile is the fallback
    tprof_path = next((p for p in (src.insilico / "truth" / "profiles.h5", src.data / "truth" / "profiles.h5")
                       if p.is_file() and "gosi" in load_profiles(p)), None)
    tprof = load_profiles(tprof_path) if tprof_path is not None else None
    est = pd.DataFrame({"recording_id": np.asarray(prof["recording_id"].values).astype(str),
                        "unit_id": np.asarray(prof["unit_id"].values).astype(np.int64)})
    for name in ("pref_ori", "gosi", "phase_invariance"):
        if name in prof:
            est[name] = np.asarray(prof[name].values, float)
    if "rf_center" in prof:
        c = np.asarray(prof["rf_center"].values, float)
        est["rf_x"], est["rf_y"] = c[:, 0], c[:, 1]
    truth = truth.assign(recording_id=truth["recording_id"].astype(str), unit_id=truth["unit_id"].astype(np.int64))
    if tprof is not None and "gosi" in tprof:
        tg = pd.DataFrame({"recording_id": np.asarray(tprof["recording_id"].values).astype(str),
                           "unit_id": np.asarray(tprof["unit_id"].values).astype(np.int64),
                           "true_gosi": np.asarray(tprof["gosi"].values, float)})
        truth = truth.merge(tg, on=["recording_id", "unit_id"], how="left")
    # since 2026-12-06 the truth battery answers with the planted neurons' expected observed
    # activity (twin.simulate.truth); truth_rate/ holds the tuning battery on their planted rates
    yardstick = None
    if tprof_path is not None and (tprof_path.parent / "config.json").is_file() and tprof_path.parent.name == "truth":
        yardstick = read_json(tprof_path.parent / "config.json").get("model", "planted neurons: rate")
    rate_path = src.insilico / "truth_rate" / "tuning.h5"
    if rate_path.is_file():
        from twin.insilico.common import load_dataset

        rt = load_dataset(rate_path)
        truth = truth.merge(pd.DataFrame({"recording_id": np.asarray(rt["recording_id"].values).astype(str),
                                          "unit_id": np.asarray(rt["unit_id"].values).astype(np.int64),
                                          "rate_gosi": np.asarray(rt["gosi"].values, float)}),
                            on=["recording_id", "unit_id"], how="left")
    j = est.merge(truth, on=["recording_id", "unit_id"], how="inner", suffixes=("", "_true"))
    good = np.ones(len(j), bool)
    if src.evaluate and (src.evaluate / "metrics.h5").is_file():
        from twin.evaluate import open_metrics

        m = open_metrics(src.evaluate / "metrics.h5")
        q = pd.DataFrame({"recording_id": np.asarray(m["recording_id"].values).astype(str),
                          "unit_id": np.asarray(m["unit_id"].values).astype(np.int64),
                          "passes_quality": m["passes_quality"].sel(stimulus_type="natural_movie").values
                          if "natural_movie" in m["stimulus_type"].values else True})
        j = j.merge(q, on=["recording_id", "unit_id"], how="left")
        good = j["passes_quality"].fillna(False).to_numpy(bool)
    res: dict[str, Any] = {"status": "ok", "n_matched": int(len(j)), "n_well_predicted": int(good.sum())}
    parts = []
    imgs = []
    if "pref_ori" in j and "pref_ori_deg" in j:
        tuned = good & (j["gosi"].to_numpy() > 0.1 if "gosi" in j else True)
        err = _circ_diff(j["pref_ori"].to_numpy(), j["pref_ori_deg"].to_numpy(), 180.0)[tuned]
        res["pref_ori_median_error_deg"] = float(np.median(err)) if err.size else None
        res["pref_ori_n"] = int(tuned.sum())
        imgs.append(H.figure(figures.scatter_truth(j["pref_ori_deg"].to_numpy(), j["pref_ori"].to_numpy(),
                                                   "planted preferred orientation (deg)",
                                                   "twin preferred orientation (deg)", "Preferred orientation",
                                                   (0, 180)), "Preferred orientation, twin vs planted."))
    if "gosi" in j and "true_gosi" in j:
        ok = np.isfinite(j["gosi"]) & np.isfinite(j["true_gosi"]) & good
        rho = stats.spearmanr(j["gosi"][ok], j["true_gosi"][ok]).statistic if ok.sum() > 2 else None
        res["gosi_spearman"], res["gosi_n"] = rho, int(ok.sum())
        if yardstick is not None:
            res["gosi_yardstick"] = yardstick
        if "rate_gosi" in j:
            ok = np.isfinite(j["gosi"]) & np.isfinite(j["rate_gosi"]) & good
            res["gosi_spearman_rate"] = (stats.spearmanr(j["gosi"][ok], j["rate_gosi"][ok]).statistic
                                         if ok.sum() > 2 else None)
        imgs.append(H.figure(figures.scatter_truth(j["true_gosi"].to_numpy(), j["gosi"].to_numpy(), "planted gOSI",
                                                   "twin gOSI", "gOSI", (0, 1)), "gOSI, twin vs planted."))
    if "phase_invariance" in j and "cell_class" in j:
        cls = j["cell_class"].astype(str).to_numpy()
        pi = j["phase_invariance"].to_numpy(float)
        cx, sx = pi[good & (cls == "complex") & np.isfinite(pi)], pi[good & (cls == "simple") & np.isfinite(pi)]
        if cx.size and sx.size:  # AUC = P(complex more invariant than simple) = U / (n1 n2)
            res["simple_complex_auc"] = float(stats.mannwhitneyu(cx, sx).statistic / (cx.size * sx.size))
    if "rf_x" in j and "rf_x_deg" in j:
        d = np.hypot(j["rf_x"] - j["rf_x_deg"], j["rf_y"] - j["rf_y_deg"]).to_numpy()[good]
        res["rf_center_median_error_deg"] = float(np.median(d)) if d.size else None
        if "rf_sigma_deg" in j:
            res["rf_within_one_radius_fraction"] = float(np.mean(d <= j["rf_sigma_deg"].to_numpy()[good])) if d.size else None
    data = clean(res)
    keys = [k for k in ("n_matched", "n_well_predicted", "pref_ori_n", "pref_ori_median_error_deg", "gosi_n",
                        "gosi_spearman", "gosi_yardstick", "gosi_spearman_rate", "simple_complex_auc",
                        "rf_center_median_error_deg",
                        "rf_within_one_radius_fraction") if k in data]
    parts.append(H.para("In-silico experiments on the twin against the simulator's planted parameters "
                        "(preferred orientation, cell class, RF centre) and against the same battery run on "
                        "the planted neurons (gOSI); statistics over neurons passing the quality filter "
                        "(CC_max > 0.4, CC_abs > 0.2) when evaluation results exist. The planted neurons "
                        "answer that battery with their expected observed activity (gosi_yardstick), what a "
                        "twin trained on the recordings predicts: gOSI divides by the mean response, which the "
                        "imaging pipeline's noise events raise; gosi_spearman_rate compares with the same "
                        "neurons' planted rates."))
    parts.append(H.table(["quantity", "value"], [[k, data[k]] for k in keys]))
    parts.extend(imgs)
    return Section("recovery", title, data, "".join(parts))

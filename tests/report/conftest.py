"""A tiny fake pipeline output folder, shaped like each stage's real output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from twin.data.recording import make_recording, write_recording
from twin.similarity import save_profiles

AREAS = np.array(["V1", "V1", "LM", "AL", "V1", "RL"])
STAGES = ("simulate", "train", "evaluate", "insilico", "analyze", "sweep")


def _units(n: int, rng: np.random.Generator) -> pd.DataFrame:
    classes = np.array(["simple", "complex"])[np.arange(n) % 2]
    return pd.DataFrame({
        "recording_id": "1-4-1", "animal_id": "1", "session": 4, "scan_idx": 1,
        "unit_id": np.arange(n, dtype=np.int64), "pt_root_id": np.arange(n, dtype=np.int64) + 100,
        "area": AREAS[np.arange(n) % len(AREAS)], "layer": "L2/3", "cell_class": classes,
        "pref_ori_deg": rng.uniform(0, 180, n), "rf_x_deg": rng.normal(0, 5, n), "rf_y_deg": rng.normal(0, 5, n),
        "rf_sigma_deg": np.full(n, 4.0), "phase_invariance": np.where(classes == "complex", 0.9, 0.1)})


def make_run(root: Path, stages: tuple[str, ...] = STAGES, n: int = 12, seed: int = 0) -> Path:
    """Write the outputs of ``stages`` under ``root/<stage>/``; returns ``root``."""
    rng = np.random.default_rng(seed)
    units = _units(n, rng)
    if "simulate" in stages:
        d = root / "simulate"
        (d / "truth").mkdir(parents=True)
        T, nt = 5, 6
        rec = make_recording(
            stimulus=rng.integers(0, 255, (nt, T, 4, 6)).astype(np.uint8),
            response=rng.random((nt, T, n)).astype(np.float32), running=np.zeros((nt, T), np.float32),
            pupil=np.ones((nt, T), np.float32), eye_position=np.zeros((nt, T, 2), np.float32),
            units={"unit_id": units["unit_id"].to_numpy(), "area": units["area"].to_numpy(object),
                   "layer": units["layer"].to_numpy(object), "cortical_x": np.zeros(n), "cortical_y": np.zeros(n),
                   "cortical_z": np.zeros(n), "pt_root_id": units["pt_root_id"].to_numpy()},
            trials={"tier": np.array(["train"] * 3 + ["validation"] + ["test"] * 2, object),
                    "stimulus_type": np.array(["natural_movie"] * 5 + ["drifting_grating"], object),
                    "clip_id": np.array([f"c{i}" for i in range(nt)], object), "repeat": np.zeros(nt, np.int64)},
            frame_rate=10.0, animal_id="1", session=4, scan_idx=1)
        write_recording(rec, d / "recordings" / "1-4-1.h5")
        units.to_parquet(d / "truth" / "units.parquet")
        tp = xr.Dataset({"gosi": ("unit", rng.random(n))},
                        coords={"recording_id": ("unit", np.full(n, "1-4-1", object)),
                                "unit_id": ("unit", units["unit_id"].to_numpy()),
                                "pt_root_id": ("unit", units["pt_root_id"].to_numpy())})
        save_profiles(tp, d / "truth" / "profiles.h5")
        (d / "summary.json").write_text(json.dumps({"seed": 0, "n_neurons": n}))
        (d / "truth" / "params.json").write_text(json.dumps(
            {"connectome": {"beta": {"V1->V1": 2.5, "HVA->HVA": 1.25, "V1->HVA": 2.0, "HVA->V1": 1.5}}}))
    if "train" in stages:
        d = root / "train"
        d.mkdir(parents=True)
        (d / "model.json").write_text(json.dumps({"finished": True}))
        (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / (s + 1)}) + "\n"
                                                 for s in range(5)) + json.dumps({"step": 4, "val_corr": 0.4321}) + "\n")
    if "evaluate" in stages:
        d = root / "evaluate"
        d.mkdir(parents=True)
        med = {"single_trial_correlation": 0.2345, "correlation_to_average": 0.5678, "feve": 0.41234, "cc_norm": 0.71}
        summary = {"n_units": n, "stimulus_types": {
            st: {"n_units": n, "median": {k: v * f for k, v in med.items()}, "mean": med,
                 "by_area": {a: {"n_units": int((units["area"] == a).sum()),
                                 "median": {k: v * f * 0.9 for k, v in med.items()}} for a in sorted(set(AREAS))}}
            for st, f in (("natural_movie", 1.0), ("drifting_grating", 0.8))},
            "ratio_to_truth": {"natural_movie": {"correlation_to_average": 0.8765}}}
        (d / "summary.json").write_text(json.dumps(summary))
    if "insilico" in stages:
        d = root / "insilico"
        d.mkdir(parents=True)
        prof = xr.Dataset({"pref_ori": ("unit", (units["pref_ori_deg"].to_numpy() + rng.normal(0, 5, n)) % 180),
                           "gosi": ("unit", rng.random(n) * 0.5 + 0.2),
                           "phase_invariance": ("unit", units["phase_invariance"].to_numpy() + rng.normal(0, .1, n)),
                           "rf_center": (("unit", "axis"), np.c_[units["rf_x_deg"], units["rf_y_deg"]] + 1.0),
                           "signal_response": (("unit", "sample"), rng.random((n, 20)))},
                          coords={"recording_id": ("unit", np.full(n, "1-4-1", object)),
                                  "unit_id": ("unit", units["unit_id"].to_numpy()), "axis": ["x", "y"],
                                  "pt_root_id": ("unit", units["pt_root_id"].to_numpy())})
        save_profiles(prof, d / "profiles.h5")
    if "analyze" in stages:
        d = root / "analyze"
        d.mkdir(parents=True)
        tests = []
        for k, proj in enumerate(("V1->V1", "HVA->HVA", "V1->HVA", "HVA->V1")):
            for m, est in (("signal_correlation", 2.1 + 0.01 * k), ("rf_distance", -0.0123 * k)):
                tests.append({"name": f"synaptic/{m}/{proj}", "family": "synaptic_scale", "measure": m,
                              "projection": proj, "estimate": est, "ci_low": est - 0.5, "ci_high": est + 0.5,
                              "p": 0.001 if m == "signal_correlation" else 0.6, "p_adj": 0.0023 if m ==
                              "signal_correlation" else 0.7, "n_pre": 10 + k, "n_pairs": 400 + k, "n_synapses": 77 + k})
        tests.append({"name": "mei_similarity connected vs ADP", "family": "invariance", "measure": "mei_similarity",
                      "estimate": 0.061, "ci": [0.02, 0.1], "p": 0.01, "p_adj": 0.02, "n_pre": 10, "n_pairs": 300})
        (d / "results.json").write_text(json.dumps({"tests": tests}))
        m = 4000
        pre = rng.integers(0, 20, m)
        proj = np.array(["V1->V1", "HVA->HVA", "V1->HVA", "HVA->V1"])[pre % 4]
        sim = rng.uniform(-0.2, 0.8, m)
        ld = rng.exponential(10.0, m)
        pd.DataFrame({"pre_pt_root_id": pre, "post_pt_root_id": rng.integers(0, 99, m), "projection": proj,
                      "ld_um": ld, "n_synapses": rng.poisson(0.01 * ld * np.exp(2 * sim)),
                      "signal_correlation": sim, "rf_distance": rng.uniform(0, 20, m)}).to_parquet(d / "edges.parquet")
    if "sweep" in stages:
        (root / "sweep").mkdir(parents=True)
        pd.DataFrame({"rank": [1, 2], "trial": ["ab12", "cd34"], "train.lr": [0.01, 0.5], "status": ["ok", "failed"],
                      "metric": [0.3125, None], "seconds": [12.5, 3.25], "error": ["", "exit code 1"]}
                     ).to_csv(root / "sweep" / "leaderboard.csv", index=False)
    return root


@pytest.fixture
def run_factory():
    """``make_run(root, stages)``: write fake outputs of the named stages under ``root``."""
    return make_run


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("report") / "run")

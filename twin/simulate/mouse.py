"""``simulate(config, out_dir)``: the whole synthetic mouse, written as a user's data would be.

Steps: plant the population; calibrate each neuron's drive on natural movies; per scan render
every trial's stimulus (uint8), draw behaviour, compute the noise-free expected response (the
truth model, so the Recording and the ResponseModel agree exactly), pass it through the
observation model and write the Recording plus the noise-free test responses; compute the
true functional profiles on a natural-movie battery and their signal correlations; hand the
neurons and similarities to the connectome generator; write units, params and a summary.
The output folder appears only when complete (a hidden partial folder + rename), and an
interrupted run resumes from its finished scans.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from twin.config import to_dict
from twin.data.recording import make_recording, write_recording
from twin.io import atomic_path, write_text_atomic
from twin.provenance import provenance
from twin.similarity import save_profiles, signal_correlation_matrix
from twin.simulate import neurons
from twin.simulate.behaviour import behaviour_traces
from twin.simulate.config import SimConfig, config_dict, connectome_config
from twin.simulate.observation import expected_observation, observe
from twin.simulate.population import sample_population
from twin.simulate.trials import n_frames, plan_trials, render
from twin.simulate.truth import TruthModel, predict_in_chunks
from twin.stimuli import natural_movie

NORM_SIGMA_FRACTION = 0.25  # semi-saturation of divisive normalisation, x median natural pool
NEURON_COLUMNS = ["pt_root_id", "nucleus_id", "recording_id", "session", "scan_idx", "unit_id", "area", "layer",
                  "cortical_x", "cortical_y", "cortical_z", "excitatory", "cell_class", "cell_type",
                  "phase_invariance", "bipartite_index"]


STREAMS = ("population", "calibration", "profiles", "trials", "behaviour", "noise", "connectome")


def _rng(seed: int, stream: str, scan_idx: int = 0) -> np.random.Generator:
    """An independent generator per (seed, stream, scan): a scan's data never depend on the
    other scans, so an interrupted run resumes with identical numbers."""
    return np.random.default_rng(np.random.SeedSequence([seed, STREAMS.index(stream), scan_idx]))


def _battery(cfg: SimConfig, n_clips: int, rng: np.random.Generator) -> np.ndarray:
    s = cfg.stimulus
    seeds = rng.integers(0, 2 ** 31, n_clips)
    movies = [natural_movie(n_frames(cfg), tuple(s.image_shape), frame_rate=s.frame_rate,
                            pixel_size_deg=s.pixel_size_deg, seed=int(k)) for k in seeds]
    return np.clip(np.rint(np.stack(movies)), 0, 255).astype(np.uint8)


def calibrate(units: pd.DataFrame, cfg: SimConfig, battery: np.ndarray, burn_in: int) -> pd.DataFrame:
    """Calibrate each neuron on the natural-movie ``battery`` (clip, T, H, W), frames after
    ``burn_in``: ``norm_sigma`` = a quarter of the median normalisation pool, then ``drive_offset`` /
    ``drive_scale`` = mean and s.d. of the normalised drive. Returns a copy of ``units`` with
    those columns."""
    import jax
    import jax.numpy as jnp

    s = cfg.stimulus
    pool_fn = jax.jit(lambda p, x: neurons.pool(p, (x - 127.5) / 127.5))
    drive_fn = jax.jit(lambda p, x: neurons.drive(p, (x - 127.5) / 127.5))
    units = units.copy()
    cols = {"norm_sigma": 1.0, "drive_offset": 0.0, "drive_scale": 1.0}
    for c, v in cols.items():
        units[c] = v

    def run(fn, p, n):
        return np.concatenate([np.asarray(fn(p, jnp.asarray(battery[i:i + 4], jnp.float32)))[:, burn_in:]
                               for i in range(0, len(battery), 4)]).reshape(-1, n)

    for rid, idx in units.groupby("recording_id", sort=False).indices.items():
        build = lambda: neurons.to_device(neurons.build_params(units.iloc[idx], tuple(s.image_shape),  # noqa: E731
                                                               s.pixel_size_deg, s.frame_rate))
        units.iloc[idx, units.columns.get_loc("norm_sigma")] = np.maximum(
            NORM_SIGMA_FRACTION * np.median(run(pool_fn, build(), len(idx)), axis=0), 1e-6)
        d = run(drive_fn, build(), len(idx))
        units.iloc[idx, units.columns.get_loc("drive_offset")] = d.mean(0)
        units.iloc[idx, units.columns.get_loc("drive_scale")] = np.maximum(d.std(0), 1e-6)
    return units


def _params_json(cfg: SimConfig, burn_in: int, default_behaviour: dict[str, Any]) -> dict[str, Any]:
    c = config_dict(cfg)
    ccfg = connectome_config(cfg)  # the resolved connectome config (every field, planted betas)
    return {"seed": cfg.seed, "config": c, "stimulus": c["stimulus"], "behaviour": c["behaviour"],
            "burn_in": burn_in, "default_behaviour": default_behaviour,
            "connectome": c["connectome"] if ccfg is None else to_dict(ccfg),
            "response_units": "expected events per frame at stimulus.frame_rate",
            "eye_position_units": "degrees (x right, y up); the retina sees screen(x + eye * eye_shift_gain)"}


def _corr_cols(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r (ddof 0) of matching columns of (sample, unit) arrays; 0 for constant columns."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    den = np.sqrt((x ** 2).sum(0) * (y ** 2).sum(0))
    return np.where(den > 0, (x * y).sum(0) / np.maximum(den, 1e-12), 0.0)


def simulate(config: SimConfig, out_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Simulate the synthetic mouse of ``config`` into ``out_dir`` (layout: docs/INTERFACES.md).

    Returns ``out_dir``. Work goes to a hidden sibling ``.<name>.partial`` folder, renamed onto
    ``out_dir`` (replacing it) only when complete; finished scans there are kept, so running the
    same config again after an interruption resumes where it stopped.
    """
    t0 = time.perf_counter()
    cfg = config
    out_dir = Path(out_dir)
    s = cfg.stimulus
    burn_in = neurons.temporal_kernels(np.ones(1), s.frame_rate)[0].shape[1]
    ccfg = connectome_config(cfg)
    if cfg.sensorium:
        _sensorium_writer()  # fail before any work if the exporter is missing
    cfg_json = json.dumps(config_dict(cfg), sort_keys=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial"
    if tmp.exists() and not ((tmp / "config.json").is_file() and (tmp / "config.json").read_text() == cfg_json):
        shutil.rmtree(tmp)
    for sub in ("truth/test_responses", "recordings", "done"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    write_text_atomic(tmp / "config.json", cfg_json)
    units = sample_population(cfg, _rng(cfg.seed, "population"))
    units = calibrate(units, cfg, _battery(cfg, cfg.calibration_clips, _rng(cfg.seed, "calibration")), burn_in)
    prov = provenance(config_dict(cfg))
    summary: dict[str, Any] = {"seed": cfg.seed, "n_neurons": len(units), "scans": {}}
    default_behaviour: dict[str, dict[str, float]] = {}
    model = TruthModel(units, _params_json(cfg, burn_in, {}))
    scans = list(dict.fromkeys(units.recording_id))
    shared: dict[str, np.ndarray] = {}  # test clips are the same in every scan: render once
    for rid in tqdm(scans, desc="scans", disable=not progress):
        done = tmp / "done" / f"{rid}.json"
        if done.is_file():
            record = json.loads(done.read_text())
        else:
            record = _simulate_scan(cfg, units, rid, model, burn_in, prov, shared, tmp)
            write_text_atomic(done, json.dumps(record))
        default_behaviour[rid] = record["default_behaviour"]
        summary["scans"][rid] = record["summary"]
    # true functional profiles and pairwise similarity
    battery = _battery(cfg, cfg.profile_clips, _rng(cfg.seed, "profiles"))
    sig = []
    for rid in scans:
        mean_state = {"running": np.zeros(battery.shape[:2], np.float32),
                      "pupil": np.full(battery.shape[:2], cfg.behaviour.pupil_mean_px, np.float32)}
        r = predict_in_chunks(model, battery, rid, mean_state)[:, burn_in:]
        sig.append(r.reshape(-1, r.shape[-1]).T)
    signal = np.concatenate(sig).astype(np.float32)
    similarity = signal_correlation_matrix(signal)
    save_profiles(_profiles(units, signal), tmp / "truth" / "profiles.h5")
    # connectome
    tables = _connectome(units, similarity, ccfg, _rng(cfg.seed, "connectome"))
    if tables is not None:
        if (tmp / "connectome").exists():
            shutil.rmtree(tmp / "connectome")
        (tmp / "connectome").mkdir()
        skeletons = tables.pop("skeletons", None)
        for name, table in tables.items():
            table.to_parquet(tmp / "connectome" / f"{name}.parquet", index=False)
        units["has_proofread_axon"] = _proofread(units, tables)
        summary["connectome"] = {name: len(t) for name, t in tables.items()}
        if skeletons is not None:
            from twin.simulate.connectome import write_skeleton_files

            summary["connectome"]["skeletons"] = len(write_skeleton_files(skeletons, tmp / "connectome" / "skeletons"))
    else:
        summary["connectome"] = "not written: twin.simulate.connectome is not available"
    units.to_parquet(tmp / "truth" / "units.parquet", index=False)
    write_text_atomic(tmp / "truth" / "params.json",
                      json.dumps(_params_json(cfg, burn_in, default_behaviour), indent=1))
    off = similarity[~np.eye(len(similarity), dtype=bool)]
    summary.update({"true_signal_correlation": {"mean": float(off.mean()) if off.size else 0.0,
                                                "sd": float(off.std()) if off.size else 0.0},
                    "n_trials_per_scan": int(next(iter(summary["scans"].values()))["n_trials"]),
                    "frames_per_trial": n_frames(cfg),
                    "cell_class_counts": units.cell_class.value_counts().to_dict(),
                    "area_counts": units.area.value_counts().to_dict(),
                    "seconds": round(time.perf_counter() - t0, 2), "provenance": prov})
    write_text_atomic(tmp / "summary.json", json.dumps(summary, indent=1, default=str))
    shutil.rmtree(tmp / "done")
    (tmp / "config.json").unlink()
    tmp.chmod(0o755)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def _simulate_scan(cfg: SimConfig, units: pd.DataFrame, rid: str, model: TruthModel, burn_in: int,
                   prov: dict[str, Any], shared: dict[str, np.ndarray], tmp: Path) -> dict[str, Any]:
    """Render, respond, observe and write one scan; returns its typical behaviour and summary."""
    s = cfg.stimulus
    u = units[units.recording_id == rid].reset_index(drop=True)
    scan_idx = int(u.scan_idx.iloc[0])
    specs = plan_trials(cfg, scan_idx, _rng(cfg.seed, "trials", scan_idx))
    cache: dict[str, np.ndarray] = {}
    for sp in specs:
        store = shared if sp.tier == "test" else cache
        if sp.clip_id not in store:
            store[sp.clip_id] = render(sp, cfg)
        cache[sp.clip_id] = store[sp.clip_id]
    stim = np.stack([cache[sp.clip_id] for sp in specs])
    beh = behaviour_traces(len(specs), n_frames(cfg), s.frame_rate, cfg.behaviour, _rng(cfg.seed, "behaviour", scan_idx))
    expected = predict_in_chunks(model, stim, rid, beh)
    observed = observe(expected, u.noise_sd.to_numpy(), s.frame_rate, cfg.observation,
                       _rng(cfg.seed, "noise", scan_idx))
    trials = {"tier": np.array([sp.tier for sp in specs], object),
              "stimulus_type": np.array([sp.stimulus_type for sp in specs], object),
              "clip_id": np.array([sp.clip_id for sp in specs], object),
              "repeat": np.array([sp.repeat for sp in specs], np.int64)}
    unit_coords = {"unit_id": u.unit_id.to_numpy(), "area": u.area.to_numpy(object),
                   "layer": u.layer.to_numpy(object), "cortical_x": u.cortical_x.to_numpy(),
                   "cortical_y": u.cortical_y.to_numpy(), "cortical_z": u.cortical_z.to_numpy(),
                   "pt_root_id": u.pt_root_id.to_numpy(np.int64)}
    ds = make_recording(stimulus=stim, response=observed, running=beh["running"], pupil=beh["pupil"],
                        eye_position=beh["eye_position"], units=unit_coords, trials=trials,
                        frame_rate=s.frame_rate, animal_id=cfg.animal_id, session=cfg.session,
                        scan_idx=scan_idx, pixel_size_deg=s.pixel_size_deg,
                        provenance={**prov, "source": "twin simulate"})
    ds.attrs.update(eye_position_units="deg", running_units="cm/s", pupil_units="px",
                    response_units="deconvolved events per frame")
    write_recording(ds, tmp / "recordings" / f"{rid}.h5")
    test = np.flatnonzero(trials["tier"] == "test")
    obs_mean = np.concatenate([expected_observation(expected[test[i:i + 16]], u.noise_sd.to_numpy(),
                                                    s.frame_rate, cfg.observation)
                               for i in range(0, len(test), 16)]) if len(test) else expected[test]
    truth_ds = xr.Dataset({"response": (("trial", "time", "unit"), expected[test]),
                           "response_observed_mean": (("trial", "time", "unit"), obs_mean)},
                          coords={**{kk: ("trial", v[test]) for kk, v in trials.items()},
                                  "n_frames": ("trial", np.full(len(test), n_frames(cfg), np.int64)),
                                  "unit_id": ("unit", u.unit_id.to_numpy()),
                                  "pt_root_id": ("unit", u.pt_root_id.to_numpy(np.int64))},
                          attrs={"recording_id": rid, "frame_rate": s.frame_rate,
                                 "units": "events per frame",
                                 "response": "noise-free expected events (this trial's stimulus and "
                                             "behaviour): the truth model's output",
                                 "response_observed_mean": "mean of the observed (deconvolved, rectified) "
                                                           "activity over spikes and noise"})
    for name in ("tier", "stimulus_type", "clip_id"):
        truth_ds.coords[name] = truth_ds.coords[name].astype(str).astype(object)
    with atomic_path(tmp / "truth" / "test_responses" / f"{rid}.h5") as p:
        truth_ds.to_netcdf(p, engine="h5netcdf")
    if cfg.sensorium:
        _write_sensorium(ds, tmp / "sensorium" / rid)
    return {"default_behaviour": {"running": float(beh["running"].mean()), "pupil": float(beh["pupil"].mean())},
            "summary": _scan_summary(expected, observed, trials, burn_in, len(u))}


def _scan_summary(expected: np.ndarray, observed: np.ndarray, trials: dict[str, np.ndarray], burn_in: int,
                  n_units: int) -> dict[str, Any]:
    sel = (trials["tier"] == "test") & (trials["stimulus_type"] == "natural_movie")
    if not sel.any():
        sel = trials["tier"] == "train"
    e = expected[sel][:, burn_in:].reshape(-1, n_units)
    o = observed[sel][:, burn_in:].reshape(-1, n_units)
    r = _corr_cols(e, o)
    return {"n_units": n_units, "n_trials": int(len(trials["tier"])),
            "single_trial_corr_true_vs_observed": {"median": float(np.median(r)), "q10": float(np.quantile(r, 0.1)),
                                                   "q90": float(np.quantile(r, 0.9))},
            "mean_activity_events_per_frame": float(observed.mean())}


def _profiles(units: pd.DataFrame, signal: np.ndarray) -> xr.Dataset:
    return xr.Dataset(
        {"signal_response": (("unit", "sample"), signal),
         "rf_center": (("unit", "axis"), units[["rf_x_deg", "rf_y_deg"]].to_numpy()),
         "pref_ori": ("unit", units.pref_ori_deg.to_numpy()),
         "pref_dir": ("unit", units.pref_dir_deg.to_numpy()),
         "sf_cpd": ("unit", units.sf_cpd.to_numpy()), "tf_hz": ("unit", units.tf_hz.to_numpy()),
         "phase_invariance": ("unit", units.phase_invariance.to_numpy()),
         "bipartite_index": ("unit", units.bipartite_index.to_numpy()),
         "direction_strength": ("unit", units.direction_strength.to_numpy())},
        coords={"recording_id": ("unit", units.recording_id.to_numpy(object)),
                "session": ("unit", units.session.to_numpy()), "scan_idx": ("unit", units.scan_idx.to_numpy()),
                "unit_id": ("unit", units.unit_id.to_numpy()), "pt_root_id": ("unit", units.pt_root_id.to_numpy()),
                "area": ("unit", units.area.to_numpy(object)), "layer": ("unit", units.layer.to_numpy(object)),
                "cell_class": ("unit", units.cell_class.to_numpy(object)), "axis": ["x", "y"]},
        attrs={"source": "twin simulate (planted neurons, noise-free)",
               "signal_response": "expected events per frame to the natural-movie battery, frames after burn-in"})


def _connectome(units: pd.DataFrame, similarity: np.ndarray, ccfg: Any, rng: np.random.Generator):
    if ccfg is None:
        return None
    from twin.simulate.connectome import simulate_connectome

    seed = int(rng.integers(0, 2 ** 31))
    return simulate_connectome(units[NEURON_COLUMNS].copy(), similarity, ccfg, seed)


def _proofread(units: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> np.ndarray:
    t = tables.get("proofreading_status_and_strategy")
    if t is None or "status_axon" not in t:
        return np.zeros(len(units), bool)
    status = t["status_axon"]
    ok = status.astype(bool) if status.dtype == bool else status.astype(str).str.lower().isin(
        ["clean", "extended", "t", "true", "axon_fully_extended", "axon_partially_extended"])
    good = set(t.loc[ok.to_numpy(), "pt_root_id"].astype(np.int64))
    return units.pt_root_id.isin(good).to_numpy()


def _write_sensorium(ds: xr.Dataset, out: Path) -> None:
    _sensorium_writer()(ds, out)


def _sensorium_writer():
    try:
        from twin.data.sensorium import write_sensorium_folder
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("twin.data.sensorium"):
            from twin.errors import InputError
            raise InputError(None, "sensorium", "twin.data.sensorium (the Sensorium exporter) to be installed",
                             "missing") from None
        raise
    return write_sensorium_folder

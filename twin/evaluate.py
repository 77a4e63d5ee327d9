"""Score a ResponseModel on held-out test trials: per-neuron metrics per stimulus type.

``evaluate(model, recordings, out_dir)`` predicts every test trial of each Recording (in
batches of trials, with that trial's own running, pupil and eye position), groups repeats by
``clip_id``, and computes every metric of :mod:`twin.metrics` per neuron and per stimulus type
(``natural_movie`` and each out-of-domain type). It writes

    out_dir/metrics.h5     xarray Dataset: one variable per metric, dims (unit, stimulus_type);
                           unit coords recording_id, animal_id, session, scan_idx, unit_id,
                           area, layer, pt_root_id; n_trials / n_clips per (recording,
                           stimulus_type); attrs hold the provenance (JSON)
    out_dir/summary.json   medians and means per stimulus type and per area, counts, provenance

The same function scores the simulator's ground truth (``twin.simulate.load_truth_model``), so a
twin can be judged relative to the best possible (noise-free) prediction: with ``truth=`` the
truth is scored on the same trials, written to ``truth_metrics.h5``, and ``summary.json`` gets
``ratio_to_truth`` (twin median / truth median per stimulus type of the correlations, FEVE and
``prediction_sd``: the correlation to average is the quality bar of issue 4; the s.d. ratio
says how much the twin compresses the responses' range).

The connectomics quality filter uses the ``natural_movie`` entries of ``cc_abs`` / ``cc_max``
(``passes_quality``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from twin import metrics
from twin.errors import InputError

IN_DOMAIN = "natural_movie"
UNIT_COORDS = ("recording_id", "animal_id", "session", "scan_idx", "unit_id", "area", "layer",
               "pt_root_id")
RATIO_METRICS = ("correlation_to_average", "single_trial_correlation", "cc_norm", "feve", "prediction_sd")
UNIT_CHUNK = 2048  # units scored at once (bounds float64 temporaries)


# ---------------------------------------------------------------- prediction
def predict_test_trials(model: Any, path: str | os.PathLike, *, batch_size: int = 8,
                        use_behaviour: bool = True, progress: bool = False
                        ) -> dict[str, Any]:
    """Predict every test trial of one Recording.

    Returns a dict with ``response`` and ``prediction`` (trial, time, unit) float32 aligned to
    the model's unit order, ``valid`` (trial, time) bool (frames inside ``n_frames`` and past
    the model's ``burn_in``), ``stimulus_type`` and ``clip_id`` (trial,) str, ``units``
    (DataFrame of the model's units with the Recording's coords) and ``recording_id``.
    Raises InputError if the Recording does not fit the model (scan, image size, frame rate,
    units) or has no test trials.
    """
    import jax.numpy as jnp
    import pandas as pd
    from tqdm.auto import tqdm

    from twin.data.recording import open_recording

    path = Path(path)
    with open_recording(path) as ds:
        rid = str(ds.attrs["recording_id"])
        if rid not in list(model.recording_ids()):
            raise InputError(path, "recording_id", f"one of the model's scans {model.recording_ids()}", rid)
        shape = (ds.sizes["y"], ds.sizes["x"])
        if tuple(model.image_shape) != shape:
            raise InputError(path, "stimulus", f"frames of {tuple(model.image_shape)} pixels (the model's)",
                             shape)
        rate = float(ds.attrs["frame_rate"])
        if not np.isclose(rate, float(model.frame_rate)):
            raise InputError(path, "attribute frame_rate", f"{model.frame_rate} Hz (the model's)", rate)
        tier = np.asarray(ds["tier"].values).astype(str)
        test = np.flatnonzero(tier == "test")
        if test.size == 0:
            raise InputError(path, "tier", "at least one 'test' trial to evaluate on", "none")
        rec_units = ds["unit_id"].values.astype(np.int64)
        model_units = model.units(rid).reset_index(drop=True)
        where = pd.Index(rec_units).get_indexer(model_units["unit_id"].to_numpy(np.int64))
        if (where < 0).any():
            missing = model_units["unit_id"].to_numpy()[where < 0][:5].tolist()
            raise InputError(path, "unit_id", "every unit the model predicts", f"missing {missing}")
        units = pd.DataFrame({"recording_id": np.full(len(where), rid, dtype=object)})
        for name in UNIT_COORDS[1:]:
            units[name] = ds[name].values[where] if name in ds.coords else np.zeros(len(where), np.int64)
        n_time = ds.sizes["time"]
        n_frames = ds["n_frames"].values[test].astype(np.int64)
        burn_in = int(getattr(model, "burn_in", 0))
        t = np.arange(n_time)
        valid = (t[None, :] < n_frames[:, None]) & (t[None, :] >= burn_in)
        response = np.empty((len(test), n_time, len(where)), np.float32)
        prediction = np.empty_like(response)
        batches = range(0, len(test), batch_size)
        for start in tqdm(batches, desc=f"predict {rid}", unit="batch", disable=not progress):
            idx = test[start:start + batch_size]
            n = len(idx)
            pad = np.concatenate([idx, np.repeat(idx[-1:], batch_size - n)])  # one compiled shape
            sub = ds.isel(trial=pad)
            stim = jnp.asarray(np.asarray(sub["stimulus"].values, np.float32))
            behaviour = None
            if use_behaviour:
                behaviour = {k: jnp.asarray(np.asarray(sub[k].values, np.float32))
                             for k in ("running", "pupil", "eye_position")}
            out = np.asarray(model.predict(stim, rid, behaviour), np.float32)[:n]
            if out.shape != (n, n_time, len(where)):
                raise ValueError(f"model.predict returned {out.shape}, expected {(n, n_time, len(where))}")
            prediction[start:start + n] = out
            response[start:start + n] = np.asarray(sub["response"].values[:n])[..., where]
        stimulus_type = np.asarray(ds["stimulus_type"].values).astype(str)[test]
        clip_id = np.asarray(ds["clip_id"].values).astype(str)[test]
    return {"recording_id": rid, "response": response, "prediction": prediction, "valid": valid,
            "stimulus_type": stimulus_type, "clip_id": clip_id, "units": units}


def stack_repeats(values: np.ndarray, valid: np.ndarray, clip_id: Sequence[str]
                  ) -> tuple[np.ndarray, list[str]]:
    """(trial, time, unit) -> (clip, repeat, time, unit), NaN where absent or not ``valid``.

    Trials sharing a ``clip_id`` become the repeats of that clip, in trial order. Returns the
    stacked array and the clip ids in order of first appearance.
    """
    clip_id = np.asarray(clip_id).astype(str)
    clips = list(dict.fromkeys(clip_id.tolist()))
    slot = np.zeros(len(clip_id), np.int64)
    seen: dict[str, int] = {}
    for i, c in enumerate(clip_id):
        slot[i] = seen.get(c, 0)
        seen[c] = slot[i] + 1
    out = np.full((len(clips), max(seen.values()), values.shape[1], values.shape[2]), np.nan,
                  np.float32)
    row = np.array([clips.index(c) for c in clip_id])
    out[row, slot] = np.where(valid[..., None], values, np.nan)
    return out, clips


# ---------------------------------------------------------------- metrics
def _ordered_types(types: Iterable[str]) -> list[str]:
    types = set(types)
    return ([IN_DOMAIN] if IN_DOMAIN in types else []) + sorted(types - {IN_DOMAIN})


def score(predicted: list[dict[str, Any]], fev_threshold: float | None = metrics.FEV_THRESHOLD
          ) -> "xr.Dataset":  # noqa: F821
    """Per-neuron metrics (xarray) from :func:`predict_test_trials` outputs, one per Recording.

    Variables: each name in :data:`twin.metrics.METRIC_NAMES`, dims (unit, stimulus_type),
    NaN where a Recording has no trials of that type; ``n_trials`` and ``n_clips`` with dims
    (recording, stimulus_type).
    """
    import pandas as pd
    import xarray as xr

    types = _ordered_types(t for p in predicted for t in p["stimulus_type"])
    n_units = [len(p["units"]) for p in predicted]
    values = {k: np.full((sum(n_units), len(types)), np.nan) for k in metrics.METRIC_NAMES}
    n_trials = np.zeros((len(predicted), len(types)), np.int64)
    n_clips = np.zeros_like(n_trials)
    offset = 0
    for r, p in enumerate(predicted):
        for j, stype in enumerate(types):
            sel = p["stimulus_type"] == stype
            if not sel.any():
                continue
            y, _ = stack_repeats(p["response"][sel], p["valid"][sel], p["clip_id"][sel])
            yhat, clips = stack_repeats(p["prediction"][sel], p["valid"][sel], p["clip_id"][sel])
            n_trials[r, j], n_clips[r, j] = int(sel.sum()), len(clips)
            for u0 in range(0, n_units[r], UNIT_CHUNK):
                chunk = metrics.all_metrics(y[..., u0:u0 + UNIT_CHUNK], yhat[..., u0:u0 + UNIT_CHUNK],
                                            fev_threshold)
                for k, v in chunk.items():
                    values[k][offset + u0:offset + u0 + len(v), j] = v
        offset += n_units[r]
    units = pd.concat([p["units"] for p in predicted], ignore_index=True)
    coords: dict[str, Any] = {"stimulus_type": np.array(types, dtype=object),
                              "recording": np.array([p["recording_id"] for p in predicted], dtype=object)}
    for name in UNIT_COORDS:
        col = units[name].to_numpy()
        coords[name] = ("unit", col.astype(object) if col.dtype.kind in "OUS" or name in
                        ("recording_id", "animal_id", "area", "layer") else col.astype(np.int64))
    data = {k: (("unit", "stimulus_type"), v.astype(np.float64)) for k, v in values.items()}
    data["passes_quality"] = (("unit", "stimulus_type"), values["passes_quality"] > 0.5)
    data["n_trials"] = (("recording", "stimulus_type"), n_trials)
    data["n_clips"] = (("recording", "stimulus_type"), n_clips)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs["fev_threshold"] = float(np.nan if fev_threshold is None else fev_threshold)
    return ds


def _stats(ds: "xr.Dataset", stype: str, mask: np.ndarray) -> dict[str, Any]:  # noqa: F821
    has = mask & np.isfinite(ds["single_trial_correlation"].sel(stimulus_type=stype).values)
    out: dict[str, Any] = {"n_units": int(has.sum()), "median": {}, "mean": {}}
    for name in metrics.METRIC_NAMES:
        v = ds[name].sel(stimulus_type=stype).values[has].astype(np.float64)
        v = v[np.isfinite(v)]
        out["median"][name] = float(np.median(v)) if v.size else None
        out["mean"][name] = float(np.mean(v)) if v.size else None
    fe = ds["feve"].sel(stimulus_type=stype).values[has]
    out["n_units_feve"] = int(np.isfinite(fe).sum())  # units passing the FEV threshold
    return out


def summarize(ds: "xr.Dataset") -> dict[str, Any]:  # noqa: F821
    """Medians and means of every metric per stimulus type, overall and per area (JSON-ready).

    Units with no trials of a type are left out of that type; FEVE statistics cover only units
    with FEV >= the threshold (``n_units_feve``).
    """
    areas = np.asarray(ds["area"].values).astype(str)
    out: dict[str, Any] = {"n_units": int(ds.sizes["unit"]),
                           "recordings": [str(r) for r in ds["recording"].values],
                           "stimulus_types": {}}
    for j, stype in enumerate(ds["stimulus_type"].values.tolist()):
        entry = _stats(ds, stype, np.ones(ds.sizes["unit"], bool))
        entry["n_trials"] = int(ds["n_trials"].values[:, j].sum())
        entry["n_clips"] = int(ds["n_clips"].values[:, j].sum())
        entry["by_area"] = {a: _stats(ds, stype, areas == a) for a in sorted(set(areas))}
        out["stimulus_types"][str(stype)] = entry
    return out


def ratio_to_truth(twin_summary: dict[str, Any], truth_summary: dict[str, Any],
                   names: Sequence[str] = RATIO_METRICS, stat: str = "median"
                   ) -> dict[str, dict[str, float | None]]:
    """``twin stat / truth stat`` per stimulus type and metric (issue 4's quality bar uses the
    median correlation to average). None where either is missing or the truth's is 0."""
    out: dict[str, dict[str, float | None]] = {}
    for stype, entry in twin_summary["stimulus_types"].items():
        truth = truth_summary["stimulus_types"].get(stype)
        out[stype] = {}
        for name in names:
            a = entry[stat].get(name)
            b = truth[stat].get(name) if truth else None
            out[stype][name] = float(a / b) if a is not None and b else None
    return out


# ---------------------------------------------------------------- the entry points
def _write(ds: "xr.Dataset", path: Path, prov: dict[str, Any]) -> None:  # noqa: F821
    from twin.io import atomic_path

    ds = ds.copy()
    ds.attrs["provenance"] = json.dumps(prov, default=str)
    ds["passes_quality"] = ds["passes_quality"].astype(np.int8)
    ds["passes_quality"].attrs["meaning"] = "1 = CC_max > 0.4 and CC_abs > 0.2"
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def open_metrics(path: str | os.PathLike) -> "xr.Dataset":  # noqa: F821
    """Read a ``metrics.h5`` written by :func:`evaluate` (``passes_quality`` back to bool)."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "a metrics.h5 written by `twin evaluate`", "no such file")
    ds = xr.load_dataset(path, engine="h5netcdf")
    ds["passes_quality"] = ds["passes_quality"].astype(bool)
    return ds


def evaluate(model: Any, recordings: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None,
             *, truth: Any = None, batch_size: int = 8, use_behaviour: bool = True,
             fev_threshold: float | None = metrics.FEV_THRESHOLD, config: dict[str, Any] | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Score ``model`` (a ResponseModel) on the test trials of ``recordings`` (Recording paths).

    Args:
      model: the twin (or any ResponseModel); recordings: Recording files of the model's scans.
      out_dir: where metrics.h5 and summary.json go (atomically); None writes nothing.
      truth: optional ResponseModel of the ground truth (the simulator's); scored on the same
        trials (``truth_metrics.h5``) and compared: ``summary["ratio_to_truth"]``.
      batch_size: trials per predict call; use_behaviour: pass each trial's behaviour.
    Returns:
      The summary dict (also ``summary.json``); ``summary["metrics"]`` holds the xarray Dataset
      in memory (not written to JSON).
    """
    from twin.provenance import provenance

    recordings = [Path(p) for p in recordings]
    if not recordings:
        raise InputError(None, "recordings", "at least one Recording file to evaluate on", "none")
    settings = {"batch_size": batch_size, "use_behaviour": use_behaviour,
                "fev_threshold": fev_threshold, **(config or {})}
    prov = provenance(settings, recordings)

    def run(m: Any) -> Any:
        return score([predict_test_trials(m, p, batch_size=batch_size, use_behaviour=use_behaviour,
                                          progress=progress) for p in recordings], fev_threshold)

    ds = run(model)
    summary = summarize(ds)
    truth_ds = None
    if truth is not None:
        truth_ds = run(truth)
        summary["truth"] = summarize(truth_ds)
        summary["ratio_to_truth"] = ratio_to_truth(summary, summary["truth"])
    summary["provenance"] = prov
    if out_dir is not None:
        from twin.io import write_text_atomic

        out_dir = Path(out_dir)
        _write(ds, out_dir / "metrics.h5", prov)
        if truth_ds is not None:
            _write(truth_ds, out_dir / "truth_metrics.h5", prov)
        write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    summary["metrics"] = ds
    if truth_ds is not None:
        summary["truth_metrics"] = truth_ds
    return summary


def _listed_recordings(run_dir: Path, recording_ids: Sequence[str]) -> list[Path]:
    """The run's own Recordings (``data.recordings`` of its config.toml: files, folders, globs)
    that hold the model's scans."""
    from twin.config import read_toml
    from twin.train.data import resolve_recordings

    if not (run_dir / "config.toml").is_file():
        return []
    patterns = (read_toml(run_dir / "config.toml").get("data") or {}).get("recordings") or []
    try:
        files = resolve_recordings(list(patterns), config_path=run_dir / "config.toml")
    except InputError:
        return []
    return [f for f in files if f.stem in set(recording_ids)]


def evaluate_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 recordings: Sequence[str | os.PathLike] | None = None,
                 truth: str | os.PathLike | None = None, *, batch_size: int = 8,
                 progress: bool = True, model_scans_only: bool = False) -> dict[str, Any]:
    """``twin evaluate``: load the twin in ``run_dir`` (``twin.model.load_model``) and score it.

    ``recordings`` default to the simulator's ``truth/../recordings/<recording_id>.h5`` when
    ``truth`` (a ``twin simulate`` output folder) is given, else to the Recordings the run was
    trained on (``data.recordings`` of its config.toml, relative to the working directory). With ``truth`` the simulator's
    ground-truth model (``twin.simulate.load_truth_model``) is scored on the same trials.
    ``model_scans_only`` drops given Recordings of scans the twin has no readout for (a pipeline
    hands over every scan, some of them held out for transfer) instead of refusing them.
    """
    from twin.model import load_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run directory", "a folder written by `twin train`", "no such folder")
    model = load_model(run_dir)
    truth_model = None
    if truth is not None:
        from twin.simulate import load_truth_model

        truth_model = load_truth_model(truth)
    if recordings and model_scans_only:
        recordings = [r for r in recordings if Path(r).stem in set(model.recording_ids())]
    if not recordings:
        if truth is not None:
            recordings = [Path(truth) / "recordings" / f"{rid}.h5" for rid in model.recording_ids()
                          if (Path(truth) / "recordings" / f"{rid}.h5").is_file()]
        else:
            recordings = _listed_recordings(run_dir, model.recording_ids())
    if not recordings:
        raise InputError(run_dir, "recordings", "Recording files to evaluate on (pass --recordings)",
                         "none found")
    config = {"run_dir": str(run_dir), "truth": None if truth is None else str(truth)}
    return evaluate(model, recordings, out_dir, truth=truth_model, batch_size=batch_size,
                    config=config, progress=progress)


def _print_summary(summary: dict[str, Any]) -> None:
    rows = [("stimulus_type", "n_units", "single_trial", "corr_to_avg", "feve", "cc_norm", "ratio", "sd_ratio")]
    for stype, e in summary["stimulus_types"].items():
        med = e["median"]
        rt = (summary.get("ratio_to_truth") or {}).get(stype, {})
        rows.append((stype, str(e["n_units"])) + tuple(
            "-" if v is None else f"{v:.3f}" for v in (med["single_trial_correlation"],
                                                        med["correlation_to_average"], med["feve"],
                                                        med["cc_norm"], rt.get("correlation_to_average"),
                                                        rt.get("prediction_sd"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print("(medians over units; ratio = twin / ground truth median correlation to average; "
          "sd_ratio = twin / ground truth median s.d. of the predictions, 1 = the same range)")


def _handler(args: argparse.Namespace) -> int:
    summary = evaluate_run(args.run_dir, args.out, recordings=args.recordings, truth=args.truth,
                           batch_size=args.batch_size)
    _print_summary(summary)
    print(f"wrote {Path(args.out) / 'metrics.h5'} and {Path(args.out) / 'summary.json'}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``twin evaluate RUN_DIR --out DIR [--recordings ...] [--truth SIM_DIR]``."""
    p = subparsers.add_parser(
        "evaluate", help="score a trained twin on held-out test trials",
        description="Per-neuron single-trial correlation, correlation to average, FEVE, oracle, "
                    "CC_abs/CC_max/CC_norm and the predictions' s.d. per stimulus type; writes DIR/metrics.h5 and "
                    "DIR/summary.json.")
    p.add_argument("run_dir", help="a folder written by `twin train`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--recordings", nargs="+", default=None,
                   help="Recording files (default: the run's own, or SIM_DIR/recordings)")
    p.add_argument("--truth", default=None, metavar="SIM_DIR",
                   help="a `twin simulate` folder: also score its ground truth and report ratios")
    p.add_argument("--batch-size", type=int, default=8, help="trials per prediction batch")
    p.set_defaults(func=_handler)

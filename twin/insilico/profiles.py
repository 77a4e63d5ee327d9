"""Functional profiles (the :mod:`twin.similarity` format) from the in-silico battery.

``signal_response`` = predicted responses (events per frame, frames after burn-in, clips
concatenated) to a natural-movie battery from :func:`twin.stimuli.natural_movies`; computed a
batch of clips at a time, each model call answering for every neuron of a scan, so memory is
``batch x T x N`` for the calls plus the ``N x samples`` profile itself. The other variables
come from the experiment outputs that exist (tuning, rf, mei, vei, bipartite).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from twin.insilico.common import by_scan, dataset, scored

SCALARS = {"tuning": ("gosi", "gdsi", "pref_dir", "phase_invariance", "f1_f0", "pref_sf", "pref_tf", "gosi_p"),
           "vei": ("vei_diversity",), "bipartite": ("bipartite_index",),
           "rf": ("rf_sigma",), "mei": ("mei_response",)}


def signal_responses(model, units: pd.DataFrame, cfg, seed: int) -> np.ndarray:
    """(n_units, n_clips * (n_frames - burn_in)) float32 predicted responses to the battery."""
    from twin.stimuli import natural_movies

    clips = natural_movies(cfg.n_clips, cfg.n_frames, tuple(model.image_shape), frame_rate=model.frame_rate,
                           pixel_size_deg=model.pixel_size_deg, seed=seed)
    from twin.insilico.engine import iter_responses

    n_s = cfg.n_clips * (cfg.n_frames - int(model.burn_in))
    out = np.zeros((len(units), n_s), np.float32)
    per_clip = cfg.n_frames - int(model.burn_in)
    for s, r in iter_responses(model, units, clips, cfg.batch):
        r = scored(model, r)                                               # (b, T', n)
        out[:, s * per_clip:(s + len(r)) * per_clip] = r.reshape(-1, len(units)).T
    return out


def metric_columns(units: pd.DataFrame, metrics: xr.Dataset,
                   names: tuple[str, ...] = ("cc_abs", "cc_max", "cc_norm")) -> dict[str, np.ndarray]:
    """Per-unit prediction metrics of ``twin evaluate`` (natural-movie entries) aligned to
    ``units`` by (recording_id, unit_id); NaN where a unit was not evaluated."""
    if "stimulus_type" in metrics.dims:
        metrics = metrics.sel(stimulus_type="natural_movie")
    m = pd.DataFrame({"recording_id": metrics["recording_id"].values.astype(str),
                      "unit_id": metrics["unit_id"].values.astype(np.int64)})
    for n in names:
        if n in metrics:
            m[n] = metrics[n].values
    key = pd.DataFrame({"recording_id": units["recording_id"].astype(str).to_numpy(),
                        "unit_id": units["unit_id"].to_numpy().astype(np.int64)})
    j = key.merge(m, on=["recording_id", "unit_id"], how="left")
    return {n: j[n].to_numpy(np.float64) for n in names if n in j}


def build_profiles(model, units: pd.DataFrame, cfg, seed: int, results: dict[str, xr.Dataset],
                   metrics: xr.Dataset | None = None) -> xr.Dataset:
    """The profile Dataset (dim ``unit``) from the battery ``results`` {experiment: Dataset};
    with ``metrics`` (``twin evaluate``'s metrics.h5) also ``cc_abs, cc_max, cc_norm``."""
    data: dict = {"signal_response": (("unit", "sample"), signal_responses(model, units, cfg, seed))}
    if hasattr(model, "readout_features"):
        feats = [np.asarray(model.readout_features(rid))[idx] for rid, rows, idx in by_scan(units)]
        order = np.concatenate([rows for _, rows, _ in by_scan(units)])
        f = np.zeros((len(units), feats[0].shape[1]), np.float32)
        f[order] = np.concatenate(feats)
        data["readout_feature"] = (("unit", "channel"), f)
    if "rf" in results:
        data["rf_center"] = (("unit", "axis"), results["rf"]["rf_center"].values)
    if "tuning" in results:
        data["pref_ori"] = ("unit", results["tuning"]["pref_ori"].values)
    if "mei" in results:
        data["mei"] = (("unit", "y", "x"), results["mei"]["mei"].values)
    if "vei" in results:
        data["vei"] = (("unit", "k", "y", "x"), results["vei"]["vei"].values)
    for exp, names in SCALARS.items():
        if exp in results:
            for name in names:
                data[name] = ("unit", results[exp][name].values)
    if metrics is not None:
        for k, v in metric_columns(units, metrics).items():
            data[k] = ("unit", v)
    attrs = {"source": "twin insilico", "signal_response": "expected events per frame to the natural-movie "
             "battery, frames after burn-in", "rf_center": "degrees, x right, y up"}
    return dataset(units, data, {"axis": ["x", "y"]}, attrs)

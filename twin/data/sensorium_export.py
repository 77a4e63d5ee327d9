"""Recording -> Sensorium 2023 folder (the layout users hold), used by ``twin simulate --sensorium``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from twin.io import atomic_path


def _sensorium_tier(tier: str, stimulus_type: str) -> str:
    if tier in ("train", "validation"):
        return tier
    return "oracle" if stimulus_type.startswith("natural") else "final_test_bonus"


def write_sensorium_folder(ds: xr.Dataset, out_dir: str | os.PathLike) -> Path:
    """Write a Recording in the Sensorium 2023 folder layout (atomically; returns ``out_dir``).

    Per trial ``i`` (only its first ``n_frames`` frames): ``data/videos/i.npy`` (H, W, T) in
    the Recording's stimulus dtype, ``data/responses/i.npy`` (N, T) float32,
    ``data/behavior/i.npy`` (2, T) pupil, running, ``data/pupil_center/i.npy`` (2, T).
    ``meta/neurons/*.npy`` as Sensorium names them; ``meta/trials/tiers.npy`` with train,
    validation, ``oracle`` (natural test trials) and ``final_test_bonus`` (other test trials),
    plus ``trial_idx``, ``clip_id``, ``stimulus_type``; ``meta/statistics/<key>/all/*.npy``;
    and ``meta/twin.json`` (frame_rate, pixel_size_deg, animal_id, session, scan_idx).
    """
    out_dir = Path(out_dir)
    n_frames = np.asarray(ds["n_frames"].values, np.int64)
    tier = np.asarray(ds["tier"].values).astype(str)
    stype = np.asarray(ds["stimulus_type"].values).astype(str)
    with atomic_path(out_dir, is_dir=True) as tmp:
        for sub in ("videos", "responses", "behavior", "pupil_center"):
            (tmp / "data" / sub).mkdir(parents=True)
        stats: dict[str, list[np.ndarray]] = {"videos": [], "responses": [], "behavior": [], "pupil_center": []}
        for i in range(ds.sizes["trial"]):
            n = int(n_frames[i])
            tr = ds.isel(trial=i, time=slice(0, n))
            arrays = {
                "videos": np.moveaxis(np.asarray(tr["stimulus"].values), 0, 2),
                "responses": np.asarray(tr["response"].values, np.float32).T,
                "behavior": np.stack([np.asarray(tr["pupil"].values), np.asarray(tr["running"].values)]).astype(np.float32),
                "pupil_center": np.asarray(tr["eye_position"].values, np.float32).T,
            }
            for key, arr in arrays.items():
                np.save(tmp / "data" / key / f"{i}.npy", np.ascontiguousarray(arr))
                stats[key].append(arr.reshape(arr.shape[0], -1) if key != "videos" else arr.reshape(1, -1))
        neurons = tmp / "meta" / "neurons"
        neurons.mkdir(parents=True)
        np.save(neurons / "unit_ids.npy", np.asarray(ds["unit_id"].values, np.int64))
        for fname, coord in (("area", "area"), ("layer", "layer"), ("animal_ids", "animal_id")):
            np.save(neurons / f"{fname}.npy", np.asarray(ds[coord].values).astype(str))
        for fname, coord in (("sessions", "session"), ("scan_idx", "scan_idx")):
            np.save(neurons / f"{fname}.npy", np.asarray(ds[coord].values, np.int64))
        np.save(neurons / "cell_motor_coordinates.npy",
                np.stack([np.asarray(ds[f"cortical_{a}"].values, np.float64) for a in "xyz"], 1))
        if "pt_root_id" in ds.coords:
            np.save(neurons / "pt_root_id.npy", np.asarray(ds["pt_root_id"].values, np.int64))
        trials = tmp / "meta" / "trials"
        trials.mkdir(parents=True)
        np.save(trials / "tiers.npy", np.array([_sensorium_tier(t, s) for t, s in zip(tier, stype)]))
        np.save(trials / "trial_idx.npy", np.arange(ds.sizes["trial"], dtype=np.int64))
        np.save(trials / "clip_id.npy", np.asarray(ds["clip_id"].values).astype(str))
        np.save(trials / "stimulus_type.npy", stype)
        for key, parts in stats.items():
            d = tmp / "meta" / "statistics" / key / "all"
            d.mkdir(parents=True)
            x = np.concatenate(parts, axis=1).astype(np.float64)
            for name, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max),
                             ("median", np.median)):
                v = fn(x, axis=1)
                np.save(d / f"{name}.npy", v[0] if key == "videos" else v)
        side = {k: ds.attrs[k] for k in ("frame_rate", "pixel_size_deg", "animal_id", "session", "scan_idx",
                                         "recording_id") if k in ds.attrs}
        (tmp / "meta" / "twin.json").write_text(json.dumps(side, default=lambda o: o.item(), indent=1))
    return out_dir


__all__ = ["write_sensorium_folder"]

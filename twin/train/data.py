"""Training data: Recordings' train/validation trials in memory, and deterministic batches.

The batch for step ``s`` is a pure function of ``(seed, s)`` (a NumPy generator seeded by both),
so a resumed run draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twin.data.recording import open_recording
from twin.errors import InputError
from twin.model.twin_model import ScanSpec

UNIT_COLUMNS = ("recording_id", "animal_id", "session", "scan_idx", "unit_id", "area", "layer",
                "pt_root_id", "cortical_x", "cortical_y", "cortical_z")


@dataclass
class ScanData:
    """One scan's trials of one tier: stimulus (n, T, H, W) uint8/float32 grey levels, response
    (n, T, N), running/pupil (n, T), eye_position (n, T, 2), n_frames (n,)."""

    recording_id: str
    stimulus: np.ndarray
    response: np.ndarray
    running: np.ndarray
    pupil: np.ndarray
    eye_position: np.ndarray
    n_frames: np.ndarray

    def behaviour(self, idx, start: int = 0, length: int | None = None) -> dict[str, np.ndarray]:
        sl = slice(start, None if length is None else start + length)
        return {"running": self.running[idx, sl], "pupil": self.pupil[idx, sl],
                "eye_position": self.eye_position[idx, sl]}


@dataclass
class ScanMeta:
    recording_id: str
    units: pd.DataFrame
    frame_rate: float
    image_shape: tuple[int, int]
    pixel_size_deg: float
    path: str


def resolve_recordings(patterns: list[str] | tuple[str, ...], include: list[str] | tuple[str, ...] = (),
                       config_path: str | os.PathLike | None = None) -> list[Path]:
    """Recording files named by ``patterns`` (files, folders of ``*.h5``, or globs), sorted;
    with ``include``, only those whose stem (the recording id) is listed."""
    files: list[Path] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_dir():
            files += sorted(p.glob("*.h5"))
        elif any(ch in pat for ch in "*?["):
            files += sorted(Path(f) for f in glob.glob(pat))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(config_path, "data.recordings", "existing Recording files or folders", pat)
    if include:
        files = [f for f in files if f.stem in set(include)]
    if not files:
        raise InputError(config_path, "data.recordings", "at least one Recording (after data.include)",
                         list(patterns))
    return sorted(dict.fromkeys(files))


def load_scan(path: Path) -> tuple[ScanMeta, dict[str, ScanData]]:
    """Read one Recording's metadata, unit table and its train/validation trials into memory."""
    ds = open_recording(path)
    try:
        rid = str(ds.attrs["recording_id"])
        n = ds.sizes["unit"]
        units = pd.DataFrame({"recording_id": [rid] * n})
        for col in UNIT_COLUMNS[1:]:
            if col in ds.coords:
                units[col] = np.asarray(ds.coords[col].values)
            elif col == "pt_root_id":
                units[col] = np.zeros(n, np.int64)
        for col in ("animal_id", "area", "layer"):
            units[col] = units[col].astype(str)
        meta = ScanMeta(rid, units, float(ds.attrs["frame_rate"]), (ds.sizes["y"], ds.sizes["x"]),
                        float(ds.attrs.get("pixel_size_deg", 1.0)), str(path))
        tiers = np.asarray(ds["tier"].values).astype(str)
        out = {}
        for tier in ("train", "validation"):
            idx = np.flatnonzero(tiers == tier)
            if len(idx) == 0:
                continue
            sub = ds.isel(trial=idx)
            out[tier] = ScanData(rid, np.asarray(sub["stimulus"].values), np.asarray(sub["response"].values),
                                 np.asarray(sub["running"].values), np.asarray(sub["pupil"].values),
                                 np.asarray(sub["eye_position"].values), np.asarray(sub["n_frames"].values))
    finally:
        ds.close()
    return meta, out


def load_training_scans(paths: list[Path], source) -> tuple[dict, dict, dict]:
    """The scans a training run reads: ``(metas, train, validation)``, each keyed by recording id
    in ``paths``' order (validation only for the scans that have such trials; every Recording has
    'train' trials, which opening it checks). All must share one image shape and frame rate;
    ``source`` (the config's first recording pattern) is named in the error when they do not."""
    metas, train, val = {}, {}, {}
    for p in paths:
        meta, tiers = load_scan(p)
        metas[meta.recording_id], train[meta.recording_id] = meta, tiers["train"]
        if "validation" in tiers:
            val[meta.recording_id] = tiers["validation"]
    shapes = {m.image_shape for m in metas.values()}
    rates = {m.frame_rate for m in metas.values()}
    if len(shapes) > 1 or len(rates) > 1:
        raise InputError(source, "data.recordings", "scans sharing one image shape and frame rate",
                         f"shapes {sorted(shapes)}, rates {sorted(rates)}")
    return metas, train, val


def scan_spec(meta: ScanMeta, train: ScanData, with_coords: bool) -> ScanSpec:
    """Behaviour and response statistics of the training trials, for building a readout."""
    valid = np.arange(train.response.shape[1])[None, :] < train.n_frames[:, None]
    beh = np.concatenate([train.running[..., None], train.pupil[..., None], train.eye_position], -1)[valid]
    mean, std = beh.mean(0), beh.std(0)
    std = np.where(std > 1e-6, std, 1.0)
    xyz = None
    if with_coords:
        xyz = tuple(map(tuple, meta.units[["cortical_x", "cortical_y", "cortical_z"]].to_numpy(float)))
    return ScanSpec(meta.recording_id, train.response.shape[2], tuple(map(float, mean)), tuple(map(float, std)),
                    xyz, tuple(map(float, train.response[valid].mean(0))))


def stimulus_stats(trains: list[ScanData]) -> tuple[float, float]:
    """Mean and std of training grey levels over all scans (valid frames only)."""
    s, s2, n = 0.0, 0.0, 0
    for d in trains:
        for i in range(len(d.stimulus)):
            x = d.stimulus[i, : d.n_frames[i]].astype(np.float64)
            s, s2, n = s + x.sum(), s2 + (x ** 2).sum(), n + x.size
    mean = s / n
    return float(mean), float(max(np.sqrt(max(s2 / n - mean ** 2, 0.0)), 1e-3))


def sample_batch(data: ScanData, rng: np.random.Generator, batch_size: int, clip_frames: int) -> dict:
    """``batch_size`` random windows of ``clip_frames`` frames from random trials.

    Returns numpy arrays: stimulus (B, T, H, W) float32, response (B, T, N), mask (B, T) (1 on
    frames holding data), running, pupil (B, T), eye_position (B, T, 2)."""
    n_trial, t_max = data.response.shape[:2]
    t = min(clip_frames, t_max)
    trials = rng.integers(0, n_trial, size=batch_size)
    starts = np.array([rng.integers(0, max(int(data.n_frames[i]) - t, 0) + 1) for i in trials])
    idx_t = starts[:, None] + np.arange(t)[None, :]
    ti = trials[:, None]
    return {
        "stimulus": data.stimulus[ti, idx_t].astype(np.float32),
        "response": data.response[ti, idx_t],
        "mask": (idx_t < data.n_frames[trials][:, None]).astype(np.float32),
        "running": data.running[ti, idx_t],
        "pupil": data.pupil[ti, idx_t],
        "eye_position": data.eye_position[ti, idx_t],
    }


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator for one step's batch: depends only on ``(seed, step)``."""
    return np.random.default_rng([seed, step])

"""Shared plumbing of the in-silico experiments: neuron coordinates and batched prediction.

Every experiment runs against :class:`twin.response_model.ResponseModel`; one call of
``model.predict`` on a batch of clips answers for *every* neuron of a scan, so the work of a
stimulus battery grows with the number of stimuli, not with the number of neurons.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
import xarray as xr

from twin.errors import InputError

COORDS = ("recording_id", "animal_id", "session", "scan_idx", "unit_id", "pt_root_id")


def scans(model, recording_ids: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The scans to run: ``recording_ids`` (checked against the model) or all of them."""
    have = list(model.recording_ids())
    if not recording_ids:
        return have
    for rid in recording_ids:
        if rid not in have:
            raise InputError(None, "recording_ids", f"scans of the model {have}", rid)
    return list(recording_ids)


def unit_table(model, recording_ids: list[str], max_units: int = 0) -> pd.DataFrame:
    """Concatenated unit rows of ``recording_ids`` with a column ``index`` = position in the
    scan's model output (the first ``max_units`` of each scan when > 0)."""
    rows = []
    for rid in recording_ids:
        u = model.units(rid).reset_index(drop=True).copy()
        u["recording_id"] = rid
        u["index"] = np.arange(len(u))
        if max_units > 0:
            u = u.iloc[:max_units]
        rows.append(u)
    table = pd.concat(rows, ignore_index=True)
    for c in COORDS:
        if c not in table:
            table[c] = 0 if c != "animal_id" else ""
    return table


def unit_coords(units: pd.DataFrame) -> dict[str, tuple[str, np.ndarray]]:
    """xarray coordinates on dim ``unit`` (recording_id, animal_id, session, scan_idx, unit_id,
    pt_root_id) from a unit table."""
    out = {}
    for c in COORDS:
        v = units[c].to_numpy()
        if c in ("recording_id", "animal_id"):
            v = v.astype(str).astype(object)
        else:
            v = v.astype(np.int64)
        out[c] = ("unit", v)
    return out


def by_scan(units: pd.DataFrame) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (recording_id, rows in ``units``, output indices in the scan's model output)."""
    for rid in dict.fromkeys(units["recording_id"]):
        rows = np.flatnonzero(units["recording_id"].to_numpy() == rid)
        yield rid, rows, units["index"].to_numpy()[rows]


def iter_batches(model, stimuli: np.ndarray, recording_id: str, batch: int = 16,
                 units: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_clip, responses (b, T, n_units) float32)`` of ``model.predict`` over clips
    in fixed-size batches (the last one padded, so there is one compilation). Callers reduce each
    batch at once, so memory stays ``batch x T x n_units`` whatever the number of clips.

    Args:
      stimuli: (n_clips, T, H, W) grey levels.
      units: output indices to keep (None = all).
    """
    import jax.numpy as jnp

    if stimuli.ndim != 4 or tuple(stimuli.shape[2:]) != tuple(model.image_shape):
        raise InputError(None, "stimulus", f"(clips, time, {model.image_shape[0]}, {model.image_shape[1]})",
                         stimuli.shape)
    n = len(stimuli)
    batch = max(1, min(batch, n))
    for s in range(0, n, batch):
        chunk = np.asarray(stimuli[s:s + batch], np.float32)
        pad = batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        r = np.asarray(model.predict(jnp.asarray(chunk), recording_id))[:batch - pad]
        yield s, np.asarray(r if units is None else r[..., units], np.float32)


def predict_batches(model, stimuli: np.ndarray, recording_id: str, batch: int = 16,
                    units: np.ndarray | None = None) -> np.ndarray:
    """All of :func:`iter_batches` concatenated: (n_clips, T, n_units) float32 NumPy."""
    return np.concatenate([r for _, r in iter_batches(model, stimuli, recording_id, batch, units)])


def scored(model, responses: np.ndarray) -> np.ndarray:
    """Frames after the model's burn-in: (..., T, N) -> (..., T - burn_in, N)."""
    b = int(model.burn_in)
    if responses.shape[-2] <= b:
        raise InputError(None, "n_frames", f"more frames than the model's burn_in ({b})", responses.shape[-2])
    return responses[..., b:, :]


def static_frames(model, n_frames: int) -> int:
    """Clip length for a static image: ``n_frames``, but at least two frames after the burn-in."""
    return max(int(n_frames), int(model.burn_in) + 2)


def dataset(units: pd.DataFrame, data: dict, coords: dict | None = None, attrs: dict | None = None) -> xr.Dataset:
    """An xarray Dataset on dim ``unit`` with the neuron coordinates plus ``data``/``coords``."""
    c = unit_coords(units)
    c.update(coords or {})
    return xr.Dataset(data, coords=c, attrs=attrs or {})


def save_dataset(ds: xr.Dataset, path) -> None:
    """Write ``ds`` as HDF5 (netCDF4 via h5netcdf) atomically; dict attrs are JSON strings."""
    import json

    from twin.io import atomic_path

    ds = ds.copy()
    ds.attrs = {k: (json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in ds.attrs.items()
                if v is not None}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def load_dataset(path) -> xr.Dataset:
    """Read an experiment output into memory."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "an in-silico experiment output (HDF5)", "no such file")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()

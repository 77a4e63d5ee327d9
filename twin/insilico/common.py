"""Shared plumbing of the in-silico experiments: neuron coordinates, clip lengths, outputs.

Every experiment runs against :class:`twin.response_model.ResponseModel` through
:mod:`twin.insilico.engine`, where one model pass on a batch of clips answers for *every*
neuron (of every scan, for a twin's shared core), so the work of a stimulus battery grows with
the number of stimuli, not with the number of neurons.
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

"""Functional profiles of neurons and the pairwise similarities computed from them.

A *profile* holds, per neuron, what pairwise similarities are made of, so that any pair can
be looked up without storing all n^2 pairs (100k neurons would need 10^10). It is an
``xarray.Dataset`` with dim ``unit`` and coordinates ``recording_id``, ``session``,
``scan_idx``, ``unit_id`` and ``pt_root_id`` (0 = not co-registered), and any of:

    signal_response  [unit, sample]     responses to a shared stimulus battery (any units)
    readout_feature  [unit, channel]    readout feature vector (needs a shared core)
    rf_center        [unit, axis]       RF centre in visual degrees (axis = "x", "y")
    pref_ori         [unit]             preferred orientation, degrees in [0, 180)
    mei              [unit, y, x]       most exciting input
    vei              [unit, k, y, x]    varied exciting inputs
    (plus per-unit scalars such as cc_abs, cc_max, gosi, invariance indices)

:func:`pair_similarity` turns a profile and two index arrays into named similarity columns,
in chunks, so memory is bounded by the chunk size rather than by the number of pairs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import xarray as xr

from twin.errors import InputError
from twin.io import atomic_path

KINDS = ("signal_correlation", "feature_cosine", "rf_distance", "ori_difference",
         "mei_similarity", "vei_similarity")
_NEEDS = {"signal_correlation": "signal_response", "feature_cosine": "readout_feature",
          "rf_distance": "rf_center", "ori_difference": "pref_ori", "mei_similarity": "mei",
          "vei_similarity": "vei"}


def available_kinds(profiles: xr.Dataset) -> list[str]:
    """The similarity kinds this profile holds the variables for."""
    return [k for k in KINDS if _NEEDS[k] in profiles]


def _zscore_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    x = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((x ** 2).mean(axis=1, keepdims=True))
    return x / np.maximum(sd, 1e-12)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pair_similarity(profiles: xr.Dataset, i: np.ndarray, j: np.ndarray,
                    kinds: Iterable[str] | None = None, chunk: int = 65536) -> dict[str, np.ndarray]:
    """Similarity of neuron pairs (``i[k]``, ``j[k]``), indices along ``profiles.unit``.

    Returns {kind: (n_pairs,) float64}:
      signal_correlation  Pearson r (ddof 0) of ``signal_response`` rows
      feature_cosine      cosine of ``readout_feature`` rows
      rf_distance         Euclidean distance of ``rf_center`` (degrees)
      ori_difference      circular difference of ``pref_ori`` in [0, 90] degrees
      mei_similarity      Pearson r of flattened MEIs
      vei_similarity      mean Pearson r over all VEI pairs (k x k) of the two neurons
    """
    i = np.asarray(i, np.int64)
    j = np.asarray(j, np.int64)
    if i.shape != j.shape:
        raise ValueError(f"pair index arrays differ in shape: {i.shape} vs {j.shape}")
    kinds = list(available_kinds(profiles) if kinds is None else kinds)
    out: dict[str, np.ndarray] = {}
    for kind in kinds:
        var = _NEEDS.get(kind)
        if var is None:
            raise InputError(None, "similarity kind", f"one of {KINDS}", kind)
        if var not in profiles:
            raise InputError(None, kind, f"a profile variable '{var}'", "missing")
        values = profiles[var].values
        if kind in ("signal_correlation", "mei_similarity"):
            rows = _zscore_rows(values)
            n = rows.shape[1]
            res = _chunked(lambda a, b: (rows[a] * rows[b]).sum(1) / n, i, j, chunk)
        elif kind == "feature_cosine":
            rows = _unit_rows(values)
            res = _chunked(lambda a, b: (rows[a] * rows[b]).sum(1), i, j, chunk)
        elif kind == "rf_distance":
            c = np.asarray(values, np.float64)
            res = _chunked(lambda a, b: np.linalg.norm(c[a] - c[b], axis=1), i, j, chunk)
        elif kind == "ori_difference":
            o = np.asarray(values, np.float64) % 180.0
            def f(a, b):
                d = np.abs(o[a] - o[b]) % 180.0
                return np.minimum(d, 180.0 - d)
            res = _chunked(f, i, j, chunk)
        else:  # vei_similarity
            v = np.asarray(values, np.float64)
            k = v.shape[1]
            rows = _zscore_rows(v.reshape(v.shape[0] * k, -1)).reshape(v.shape[0], k, -1)
            n = rows.shape[2]
            res = _chunked(lambda a, b: np.einsum("pkn,pln->p", rows[a], rows[b]) / (n * k * k),
                           i, j, max(1, chunk // (k * k)))
        out[kind] = res
    return out


def _chunked(fn, i: np.ndarray, j: np.ndarray, chunk: int) -> np.ndarray:
    out = np.empty(len(i), np.float64)
    for s in range(0, len(i), chunk):
        out[s:s + chunk] = fn(i[s:s + chunk], j[s:s + chunk])
    return out


def signal_correlation_matrix(responses: np.ndarray) -> np.ndarray:
    """All-pairs Pearson r (ddof 0) of ``responses`` (unit, sample) -> (unit, unit)."""
    z = _zscore_rows(responses)
    return z @ z.T / z.shape[1]


def index_by_root_id(profiles: xr.Dataset, root_ids: np.ndarray) -> np.ndarray:
    """Positions along ``unit`` of each root id (-1 where the profile has no such neuron).

    A root id imaged in several fields maps to its first unit in the profile.
    """
    have = np.asarray(profiles["pt_root_id"].values, np.int64)
    order = np.argsort(have, kind="stable")
    sorted_ids = have[order]
    root_ids = np.asarray(root_ids, np.int64)
    pos = np.searchsorted(sorted_ids, root_ids)
    pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
    found = (len(sorted_ids) > 0) & (sorted_ids[pos] == root_ids) & (root_ids != 0)
    return np.where(found, order[pos], -1)


def save_profiles(profiles: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a profile to HDF5 (netCDF4 via h5netcdf) atomically."""
    path = Path(path)
    ds = profiles.copy()
    for name, coord in ds.coords.items():
        if coord.dtype.kind in "OU":
            ds.coords[name] = coord.astype(str).astype(object)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_profiles(path: str | os.PathLike) -> xr.Dataset:
    """Read a profile written by :func:`save_profiles` into memory."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "a functional profile file (HDF5)", "no such file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            out = ds.load()
    except Exception as e:
        raise InputError(path, "file", "a readable profile HDF5 file", f"{type(e).__name__}: {e}") from None
    if "unit" not in out.dims:
        raise InputError(path, "unit", "a dimension 'unit'", "missing")
    return out

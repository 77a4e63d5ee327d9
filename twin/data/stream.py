"""Write a Recording trial by trial, so an import never holds the whole scan in memory.

:func:`recording_writer` lays out the file (coordinates, attributes, empty chunked bulk
variables) in a temporary sibling of ``path``; the caller fills one trial at a time with
``write_trial``; on leaving the block the file is re-opened and validated, then renamed onto
``path``. Any error (bad values, a validation failure, an exception in the caller) removes
the temporary file and leaves ``path`` untouched. The result is byte-compatible with
:func:`twin.data.recording.write_recording` (same variables, dims, chunking, attributes).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import h5netcdf
import numpy as np
import xarray as xr

from twin import __version__
from twin.data.recording import FORMAT_VERSION, VARIABLES, open_recording, recording_id
from twin.errors import InputError
from twin.io import atomic_path


class TrialWriter:
    """Fills the bulk variables of an open, laid-out Recording file one trial at a time."""

    def __init__(self, f: h5netcdf.File, path: Path, n_time: int):
        self._f, self.path, self.n_time = f, path, n_time
        self.written = np.zeros(f.dimensions["trial"].size, bool)

    def write_trial(self, i: int, *, stimulus: np.ndarray, response: np.ndarray, running: np.ndarray,
                    pupil: np.ndarray, eye_position: np.ndarray) -> None:
        """Store trial ``i``: stimulus (n, H, W), response (n, N), running/pupil (n,), eye (n, 2),
        with n <= n_time valid frames (later frames are padded: mean grey, 0)."""
        values = {"stimulus": stimulus, "response": response, "running": running, "pupil": pupil,
                  "eye_position": eye_position}
        n = len(response)
        if not 1 <= n <= self.n_time:
            raise InputError(self.path, "response", f"1..{self.n_time} frames in trial {i}", n)
        for name, v in values.items():
            var = self._f.variables[name]
            v = np.asarray(v)
            want = (n,) + tuple(var.shape[2:])
            if v.shape != want:
                raise InputError(self.path, name, f"trial {i} shaped {want}", v.shape)
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                raise InputError(self.path, name, "finite values", f"{int((~np.isfinite(v)).sum())} NaN/inf "
                                 f"entries in trial {i}")
            fill = (128 if var.dtype == np.uint8 else 127.5) if name == "stimulus" else 0
            full = np.full((self.n_time,) + want[1:], fill, var.dtype)
            full[:n] = v
            var[i] = full
        self.written[i] = True


@contextlib.contextmanager
def recording_writer(path: str | os.PathLike, *, n_time: int, image_shape: tuple[int, int],
                     stimulus_dtype: Any, units: dict[str, np.ndarray], trials: dict[str, np.ndarray],
                     frame_rate: float, animal_id: str, session: int, scan_idx: int,
                     pixel_size_deg: float | None = None, provenance: dict[str, Any] | None = None,
                     source: str | os.PathLike | None = None) -> Iterator[TrialWriter]:
    """Create the Recording ``path`` and yield a :class:`TrialWriter` to fill it trial by trial.

    ``units``/``trials`` are coordinate arrays as for :func:`make_recording` (``n_frames``
    required in ``trials``). Padding frames hold mean grey (stimulus) and 0 (the rest).
    ``source`` names the input in error messages.
    """
    path = Path(path)
    n_trial, n_unit = len(trials["tier"]), len(units["unit_id"])
    units = dict(units)
    units.setdefault("animal_id", np.full(n_unit, str(animal_id), dtype=object))
    units.setdefault("session", np.full(n_unit, int(session), dtype=np.int64))
    units.setdefault("scan_idx", np.full(n_unit, int(scan_idx), dtype=np.int64))
    coords: dict[str, Any] = {"eye": ["x", "y"]}
    for k, v in units.items():
        v = np.asarray(v)
        coords[k] = ("unit", v.astype(str).astype(object) if v.dtype.kind in "OUS" else v)
    for k, v in trials.items():
        v = np.asarray(v)
        coords[k] = ("trial", v.astype(str).astype(object) if v.dtype.kind in "OUS" else v)
    attrs = {"format_version": FORMAT_VERSION, "recording_id": recording_id(animal_id, session, scan_idx),
             "animal_id": str(animal_id), "session": int(session), "scan_idx": int(scan_idx),
             "frame_rate": float(frame_rate), "twin_version": __version__,
             "provenance": json.dumps(provenance or {}, default=str)}
    if pixel_size_deg is not None:
        attrs["pixel_size_deg"] = float(pixel_size_deg)
    skeleton = xr.Dataset(coords=coords, attrs=attrs)
    stim_dtype = np.dtype(np.uint8) if np.dtype(stimulus_dtype) == np.uint8 else np.dtype(np.float32)
    sizes = {"trial": n_trial, "time": int(n_time), "unit": n_unit, "y": int(image_shape[0]),
             "x": int(image_shape[1]), "eye": 2}
    with atomic_path(path) as tmp:
        skeleton.to_netcdf(tmp, engine="h5netcdf")
        with h5netcdf.File(tmp, "a") as f:
            for dim in ("time", "y", "x"):
                if dim not in f.dimensions:
                    f.dimensions[dim] = sizes[dim]
            for name, dims in VARIABLES.items():
                dtype = stim_dtype if name == "stimulus" else np.dtype(np.float32)
                chunks = tuple(1 if d == "trial" else sizes[d] for d in dims)
                f.create_variable(name, dims, dtype, chunks=chunks)
            writer = TrialWriter(f, Path(source) if source else path, int(n_time))
            yield writer
            missing = np.flatnonzero(~writer.written)
            if len(missing):
                raise InputError(writer.path, "trials", "every trial written", f"trials {missing[:5].tolist()} missing")
        open_recording(tmp).close()  # validates layout, coordinates and attributes


__all__ = ["recording_writer", "TrialWriter"]

"""The Recording: one scan's stimuli, responses and behaviour as an xarray.Dataset over HDF5.

Layout (dims in brackets)::

    stimulus      [trial, time, y, x]   uint8 or float32, screen grey levels 0..255 (127.5 = mean grey)
    response      [trial, time, unit]   float32, deconvolved activity (events/frame, or dF/F)
    running       [trial, time]         float32, treadmill speed, cm/s
    pupil         [trial, time]         float32, pupil radius (as the source gives it, e.g. px)
    eye_position  [trial, time, eye]    float32, pupil centre (eye = "x", "y"), as the source gives it

    unit coords:  unit_id (int64), animal_id (str), session (int64), scan_idx (int64), area (str),
                  layer (str), cortical_x, cortical_y, cortical_z (float64, um), pt_root_id (int64,
                  0 = not co-registered to EM)
    trial coords: tier ("train" | "validation" | "test"), stimulus_type (str), clip_id (str),
                  repeat (int64, 0-based showing of clip_id), n_frames (int64: frames of `time`
                  that hold data; later frames are padding)
    attrs:        format_version, recording_id, animal_id, session, scan_idx, frame_rate (Hz of the
                  one model time base every variable shares), pixel_size_deg (visual degrees per
                  stimulus pixel; optional), twin_version, provenance (JSON text)

The file is netCDF4-flavoured HDF5 written through h5py (h5netcdf), chunked one trial per
chunk, so a training loader reads windows of single trials without loading the file, and
:func:`open_recording` reads metadata only. Writes go to a temporary file and a rename.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin import __version__
from twin.errors import InputError
from twin.io import atomic_path

FORMAT_VERSION = "1.0"
TIERS = ("train", "validation", "test")

VARIABLES: dict[str, tuple[str, ...]] = {
    "stimulus": ("trial", "time", "y", "x"),
    "response": ("trial", "time", "unit"),
    "running": ("trial", "time"),
    "pupil": ("trial", "time"),
    "eye_position": ("trial", "time", "eye"),
}
UNIT_COORDS: dict[str, str] = {  # name -> numpy dtype kind(s) accepted
    "unit_id": "iu", "animal_id": "OUS", "session": "iu", "scan_idx": "iu", "area": "OUS",
    "layer": "OUS", "cortical_x": "fiu", "cortical_y": "fiu", "cortical_z": "fiu",
}
OPTIONAL_UNIT_COORDS: dict[str, str] = {"pt_root_id": "iu"}
TRIAL_COORDS: dict[str, str] = {
    "tier": "OUS", "stimulus_type": "OUS", "clip_id": "OUS", "repeat": "iu", "n_frames": "iu",
}
REQUIRED_ATTRS = ("format_version", "recording_id", "animal_id", "session", "scan_idx", "frame_rate")


def recording_id(animal_id: Any, session: Any, scan_idx: Any) -> str:
    """The key that names one scan everywhere (readouts, tables): ``"<animal>-<session>-<scan>"``."""
    return f"{animal_id}-{int(session)}-{int(scan_idx)}"


def validate_recording(ds: xr.Dataset, path: str | os.PathLike | None = None, *,
                       check_values: bool = True) -> None:
    """Check ``ds`` against the Recording layout; raise InputError naming the field at fault.

    With ``check_values`` the bulk arrays are scanned for NaN/inf (done on write; opening a
    file checks only shapes, dtypes, coordinates and attributes, and reads no bulk data).
    """
    for name, dims in VARIABLES.items():
        if name not in ds.variables:
            raise InputError(path, name, f"a variable with dims {dims}", "missing")
        if ds[name].dims != dims:
            raise InputError(path, name, f"dims {dims}", ds[name].dims)
    for name in VARIABLES:
        kinds = "uf" if name == "stimulus" else "f"
        if ds[name].dtype.kind not in kinds:
            raise InputError(path, name, "float32 values" + (" or uint8" if name == "stimulus" else ""),
                             str(ds[name].dtype))
    if ds.sizes["eye"] != 2:
        raise InputError(path, "eye_position", "2 components (x, y) along dim 'eye'", ds.sizes["eye"])
    for dim in ("trial", "time", "unit", "y", "x"):
        if ds.sizes[dim] == 0:
            raise InputError(path, dim, f"at least one entry along '{dim}'", 0)
    _check_coords(ds, path, "unit", UNIT_COORDS, required=True)
    _check_coords(ds, path, "unit", OPTIONAL_UNIT_COORDS, required=False)
    _check_coords(ds, path, "trial", TRIAL_COORDS, required=True)
    ids = np.asarray(ds["unit_id"].values)
    if len(np.unique(ids)) != len(ids):
        raise InputError(path, "unit_id", "unique unit ids", "duplicates")
    tiers = set(np.asarray(ds["tier"].values).astype(str))
    if not tiers <= set(TIERS):
        raise InputError(path, "tier", f"values in {TIERS}", sorted(tiers - set(TIERS)))
    if "train" not in tiers:
        raise InputError(path, "tier", "at least one 'train' trial", "none")
    n_frames = np.asarray(ds["n_frames"].values)
    if (n_frames < 1).any() or (n_frames > ds.sizes["time"]).any():
        raise InputError(path, "n_frames", f"values in 1..{ds.sizes['time']}",
                         f"{int(n_frames.min())}..{int(n_frames.max())}")
    for key in REQUIRED_ATTRS:
        if key not in ds.attrs:
            raise InputError(path, f"attribute {key}", "present", "missing")
    if str(ds.attrs["format_version"]).split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise InputError(path, "attribute format_version", f"{FORMAT_VERSION}",
                         ds.attrs["format_version"])
    rate = float(ds.attrs["frame_rate"])
    if not np.isfinite(rate) or rate <= 0:
        raise InputError(path, "attribute frame_rate", "a positive number of Hz", rate)
    if check_values:
        for name in ("response", "running", "pupil", "eye_position", "stimulus"):
            values = np.asarray(ds[name].values)
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                bad = int((~np.isfinite(values)).sum())
                raise InputError(path, name, "finite values", f"{bad} NaN/inf entries")


def _check_coords(ds: xr.Dataset, path: Any, dim: str, spec: dict[str, str], required: bool) -> None:
    for name, kinds in spec.items():
        if name not in ds.coords:
            if required:
                raise InputError(path, f"coordinate {name}", f"a coordinate along '{dim}'", "missing")
            continue
        coord = ds.coords[name]
        if coord.dims != (dim,):
            raise InputError(path, f"coordinate {name}", f"dims ('{dim}',)", coord.dims)
        if coord.dtype.kind not in kinds:
            want = {"iu": "integers", "fiu": "numbers", "OUS": "strings"}.get(kinds, kinds)
            raise InputError(path, f"coordinate {name}", want, str(coord.dtype))


def write_recording(ds: xr.Dataset, path: str | os.PathLike, *, compress: bool = False) -> Path:
    """Validate ``ds`` and write it to ``path`` (HDF5) atomically, one trial per chunk.

    Returns the path. Nothing is left at ``path`` if validation or writing fails.
    """
    path = Path(path)
    validate_recording(ds, path)
    ds = ds.copy()
    ds.attrs.setdefault("twin_version", __version__)
    ds.attrs["format_version"] = FORMAT_VERSION
    if not isinstance(ds.attrs.get("provenance", ""), str):
        ds.attrs["provenance"] = json.dumps(ds.attrs["provenance"], default=str)
    for name in ("tier", "stimulus_type", "clip_id", "area", "layer", "animal_id"):
        ds.coords[name] = ds.coords[name].astype(str).astype(object)
    encoding: dict[str, dict[str, Any]] = {}
    for name, dims in VARIABLES.items():
        chunks = tuple(1 if d == "trial" else ds.sizes[d] for d in dims)
        enc: dict[str, Any] = {"chunksizes": chunks}
        if compress:
            enc.update(compression="gzip", compression_opts=1, shuffle=True)
        encoding[name] = enc
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding, invalid_netcdf=False)
    return path


def open_recording(path: str | os.PathLike, *, validate: bool = True) -> xr.Dataset:
    """Open a Recording lazily (metadata only; arrays load when indexed).

    Raises InputError for a missing, truncated or non-HDF5 file and for a file whose layout
    is not a Recording. Close it with ``ds.close()`` or use it in a ``with`` block.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "an existing Recording HDF5 file", "no such file")
    try:
        ds = xr.open_dataset(path, engine="h5netcdf", cache=False, phony_dims="access")
    except Exception as e:  # h5py/h5netcdf raise OSError, ValueError... for corrupt files
        raise InputError(path, "file", "a readable HDF5 Recording", f"{type(e).__name__}: {e}") from None
    if validate:
        try:
            validate_recording(ds, path, check_values=False)
        except BaseException:
            ds.close()
            raise
    return ds


def provenance_of(ds: xr.Dataset) -> dict[str, Any]:
    """The provenance record stored in a Recording's attributes (parsed from JSON)."""
    raw = ds.attrs.get("provenance", "{}")
    try:
        return json.loads(raw) if isinstance(raw, str) else dict(raw)
    except json.JSONDecodeError:
        return {"raw": raw}


def make_recording(*, stimulus: np.ndarray, response: np.ndarray, running: np.ndarray,
                   pupil: np.ndarray, eye_position: np.ndarray, units: dict[str, Any],
                   trials: dict[str, Any], frame_rate: float, animal_id: str, session: int,
                   scan_idx: int, pixel_size_deg: float | None = None,
                   provenance: dict[str, Any] | None = None) -> xr.Dataset:
    """Assemble an in-memory Recording from arrays (shapes as in the module docstring).

    ``units`` maps unit coordinate names to arrays of length n_unit (``animal_id``,
    ``session`` and ``scan_idx`` default to the recording's own); ``trials`` maps trial
    coordinate names to arrays of length n_trial (``n_frames`` defaults to the full length).
    """
    n_trial, n_time = response.shape[:2]
    n_unit = response.shape[2]
    units = dict(units)
    units.setdefault("animal_id", np.full(n_unit, str(animal_id), dtype=object))
    units.setdefault("session", np.full(n_unit, int(session), dtype=np.int64))
    units.setdefault("scan_idx", np.full(n_unit, int(scan_idx), dtype=np.int64))
    trials = dict(trials)
    trials.setdefault("n_frames", np.full(n_trial, n_time, dtype=np.int64))
    coords: dict[str, Any] = {"eye": ["x", "y"]}
    for k, v in units.items():
        coords[k] = ("unit", np.asarray(v))
    for k, v in trials.items():
        coords[k] = ("trial", np.asarray(v))
    attrs = {
        "format_version": FORMAT_VERSION,
        "recording_id": recording_id(animal_id, session, scan_idx),
        "animal_id": str(animal_id), "session": int(session), "scan_idx": int(scan_idx),
        "frame_rate": float(frame_rate), "twin_version": __version__,
        "provenance": json.dumps(provenance or {}, default=str),
    }
    if pixel_size_deg is not None:
        attrs["pixel_size_deg"] = float(pixel_size_deg)
    stim = stimulus if stimulus.dtype == np.uint8 else np.asarray(stimulus, np.float32)
    return xr.Dataset(
        {
            "stimulus": (VARIABLES["stimulus"], stim),
            "response": (VARIABLES["response"], np.asarray(response, np.float32)),
            "running": (VARIABLES["running"], np.asarray(running, np.float32)),
            "pupil": (VARIABLES["pupil"], np.asarray(pupil, np.float32)),
            "eye_position": (VARIABLES["eye_position"], np.asarray(eye_position, np.float32)),
        },
        coords=coords,
        attrs=attrs,
    )

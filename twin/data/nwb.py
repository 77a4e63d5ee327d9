"""NWB (pynwb) -> Recording, resampled onto one model time base.

What is read (names as the MICrONS functional release, DANDI 000402, writes them):

- responses: a ``RoiResponseSeries`` (T, N) in ``processing/ophys``, inside ``Fluorescence``,
  ``DfOverF`` or directly (deconvolved activity); ``series=NAME`` picks one, otherwise a
  series whose name mentions deconvolution/activity/spikes wins, then the first one found;
- units: the series' ``rois`` rows of a ``PlaneSegmentation`` (columns ``unit_id`` or the row
  id, ``pt_root_id``, ``pt_x/y/z_position`` or ``x/y/z`` as cortical position, ``area``,
  ``layer``; absent ones become 0 / "unknown");
- behaviour (each optional, zeros when absent; what was missing is noted in provenance):
  treadmill speed (an acquisition ``TimeSeries`` whose name mentions treadmill, velocity,
  running or wheel), pupil radius (``PupilTracking``: mean of its series, e.g.
  ``pupil_minor_radius`` and ``pupil_major_radius``), eye position (``EyeTracking``
  ``SpatialSeries``, first two columns);
- stimulus: the first ``ImageSeries`` under ``stimulus`` with internal data (F, H, W[, 3]),
  colour averaged to grey;
- trials: rows of every ``intervals`` table (``trials`` included); the table name gives the
  stimulus type (MICrONS ``Clip`` -> natural_movie, ``Monet2`` -> directional_noise,
  ``Trippy`` -> trippy, else a ``stimulus_type`` column or the lower-cased name); clip ids
  from ``condition_hash``/``clip_id``/``movie_name`` columns; tiers from a ``tier`` column,
  else clips shown more than once are test (repeats), the rest train with a deterministic
  held-out validation fraction of clips.

Behaviour samples that are NaN/inf (tracker dropouts) are dropped, so interpolation bridges
them; NaN responses inside a trial are an error. Every stream is resampled onto the model time base ``start + k / frame_rate`` of each trial:
traces by linear interpolation of their own timestamps, the stimulus by the most recent frame
shown (mean grey before the first). The default frame rate is the response series' own.
:func:`import_nwb` streams trial by trial (responses and stimulus frames are sliced per trial
from the lazy HDF5 datasets), so memory is bounded by one trial; :func:`read_nwb` builds the
whole Recording in memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin.data.recording import make_recording, validate_recording
from twin.errors import InputError

STIMULUS_TYPES = {"clip": "natural_movie", "monet2": "directional_noise", "monet": "directional_noise",
                  "trippy": "trippy"}
PREFERRED = ("deconv", "activity", "spike", "event")


def _timestamps(ts: Any) -> np.ndarray:
    """Seconds of each sample of a pynwb TimeSeries (explicit timestamps or start + k/rate)."""
    n = ts.data.shape[0]
    if ts.timestamps is not None:
        return np.asarray(ts.timestamps[:], np.float64)
    return float(ts.starting_time or 0.0) + np.arange(n) / float(ts.rate)


def _finite_samples(t: np.ndarray, v: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray] | None, int]:
    """Drop samples (rows) with NaN/inf from a behaviour trace: tracker dropouts are bridged
    by the interpolation onto the model time base. None if nothing finite remains."""
    ok = np.isfinite(v).reshape(len(v), -1).all(axis=1)
    if not ok.any():
        return None, int(len(v))
    return (t[ok], v[ok]), int((~ok).sum())


def _lerp(t_src: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` (len(t_src), ...) at times ``t`` (held at the ends)."""
    if len(t_src) == 1:
        return np.repeat(values[:1], len(t), axis=0)
    k = np.clip(np.searchsorted(t_src, t, side="right") - 1, 0, len(t_src) - 2)
    w = np.clip((t - t_src[k]) / np.maximum(t_src[k + 1] - t_src[k], 1e-12), 0.0, 1.0)
    w = w.reshape((-1,) + (1,) * (values.ndim - 1))
    return values[k] * (1 - w) + values[k + 1] * w


def _all_series(nwb: Any) -> list[Any]:
    from pynwb.ophys import RoiResponseSeries

    out = []
    if "ophys" not in nwb.processing:
        return out
    for iface in nwb.processing["ophys"].data_interfaces.values():
        if isinstance(iface, RoiResponseSeries):
            out.append(iface)
        elif hasattr(iface, "roi_response_series"):
            out.extend(iface.roi_response_series.values())
    return out


def _pick_series(nwb: Any, name: str | None, path: Path) -> Any:
    series = _all_series(nwb)
    if not series:
        raise InputError(path, "processing/ophys", "a RoiResponseSeries (Fluorescence, DfOverF or deconvolved)",
                         "none")
    if name is not None:
        hit = [s for s in series if s.name == name]
        if not hit:
            raise InputError(path, "series", f"one of {[s.name for s in series]}", name)
        return hit[0]
    for s in series:
        if any(p in s.name.lower() for p in PREFERRED):
            return s
    return series[0]


def _column(table: Any, names: tuple[str, ...], rows: np.ndarray) -> np.ndarray | None:
    for n in names:
        if n in table.colnames:
            return np.asarray(table[n][:])[rows]
    return None


def _units(series: Any, n: int, path: Path) -> dict[str, np.ndarray]:
    try:
        table = series.rois.table
        rows = np.asarray(series.rois.data[:], np.int64)
    except AttributeError:
        table, rows = None, np.arange(n)
    if len(rows) != n:
        raise InputError(path, f"{series.name}.rois", f"{n} ROIs (one per response column)", len(rows))
    out: dict[str, np.ndarray] = {}
    uid = None if table is None else _column(table, ("unit_id",), rows)
    if uid is None:
        uid = np.asarray(table.id[:])[rows] if table is not None else np.arange(n)
    out["unit_id"] = np.asarray(uid, np.int64)
    root = None if table is None else _column(table, ("pt_root_id",), rows)
    out["pt_root_id"] = np.zeros(n, np.int64) if root is None else np.asarray(root, np.int64)
    for axis in "xyz":
        v = None if table is None else _column(table, (f"pt_{axis}_position", f"cortical_{axis}", axis), rows)
        out[f"cortical_{axis}"] = np.zeros(n) if v is None else np.asarray(v, np.float64)
    for key, names in (("area", ("area", "brain_area", "visual_area")), ("layer", ("layer",))):
        v = None if table is None else _column(table, names, rows)
        if v is None and key == "area" and table is not None:
            loc = getattr(getattr(table, "imaging_plane", None), "location", None)
            v = np.full(n, str(loc) if loc else "unknown")
        out[key] = np.full(n, "unknown", object) if v is None else np.asarray(v).astype(str).astype(object)
    if len(np.unique(out["unit_id"])) != n:
        raise InputError(path, "PlaneSegmentation unit_id", "unique unit ids", "duplicates")
    return out


def _behaviour(nwb: Any) -> tuple[dict[str, tuple[np.ndarray, np.ndarray] | None], list[str], dict[str, int]]:
    from pynwb import TimeSeries
    from pynwb.behavior import EyeTracking, PupilTracking

    found: dict[str, tuple[np.ndarray, np.ndarray] | None] = {"running": None, "pupil": None, "eye_position": None}
    for name, obj in nwb.acquisition.items():
        if isinstance(obj, PupilTracking) and found["pupil"] is None:
            ss = list(obj.time_series.values())
            vals = [np.asarray(s.data[:], np.float64).reshape(len(s.data), -1)[:, 0] for s in ss]
            t = _timestamps(ss[0])
            found["pupil"] = (t, np.mean([_lerp(_timestamps(s), v, t) for s, v in zip(ss, vals)], axis=0))
        elif isinstance(obj, EyeTracking) and found["eye_position"] is None:
            s = list(obj.spatial_series.values())[0]
            d = np.asarray(s.data[:], np.float64).reshape(len(s.data), -1)
            if d.shape[1] < 2:
                continue
            found["eye_position"] = (_timestamps(s), d[:, :2])
        elif (isinstance(obj, TimeSeries) and found["running"] is None
              and any(k in name.lower() for k in ("treadmill", "velocity", "running", "wheel"))):
            found["running"] = (_timestamps(obj), np.asarray(obj.data[:], np.float64).reshape(len(obj.data), -1)[:, 0])
    dropped = {}
    for k, v in list(found.items()):
        if v is not None:
            found[k], dropped[k] = _finite_samples(*v)
    missing = [k for k, v in found.items() if v is None]
    return found, missing, dropped


def _stimulus(nwb: Any, path: Path) -> tuple[np.ndarray, np.ndarray]:
    from pynwb.image import ImageSeries

    for obj in list(nwb.stimulus.values()) + list(nwb.stimulus_template.values()):
        if isinstance(obj, ImageSeries):
            if obj.external_file is not None and (obj.data is None or len(obj.data) == 0):
                raise InputError(path, f"stimulus/{obj.name}", "an ImageSeries with internal frames "
                                 "(external movie files are not read yet)", "external_file")
            frames = obj.data  # lazy: frames are read per trial
            if len(frames.shape) not in (3, 4) or frames.shape[0] == 0:
                raise InputError(path, f"stimulus/{obj.name}", "frames (F, H, W) or (F, H, W, 3)", frames.shape)
            if not np.issubdtype(np.dtype(frames.dtype), np.number):
                raise InputError(path, f"stimulus/{obj.name}", "numeric grey levels", frames.dtype)
            if len(frames.shape) == 4:  # colour frames are averaged to grey (float32)
                return _timestamps(obj), _GreyFrames(frames)
            return _timestamps(obj), frames
    raise InputError(path, "stimulus", "an ImageSeries of the shown frames", "none")


class _GreyFrames:
    """Lazy view of colour frames (F, H, W, C) as float32 grey (F, H, W)."""

    def __init__(self, data: Any):
        self.data, self.dtype = data, np.dtype(np.float32)
        self.shape = tuple(data.shape[:3])

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.data[key], np.float32).mean(axis=-1)


def _intervals(nwb: Any, path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    tables = dict(nwb.intervals.items()) if nwb.intervals is not None else {}
    if nwb.trials is not None:
        tables.setdefault("trials", nwb.trials)
    for name, table in tables.items():
        df = table.to_dataframe()
        for k, (_, r) in enumerate(df.iterrows()):
            stype = str(r["stimulus_type"]) if "stimulus_type" in df else STIMULUS_TYPES.get(name.lower(), name.lower())
            clip = next((str(r[c]) for c in ("condition_hash", "clip_id", "movie_name") if c in df), f"{name}-{k}")
            rows.append({"start": float(r["start_time"]), "stop": float(r["stop_time"]), "stimulus_type": stype,
                         "clip_id": clip, "tier": str(r["tier"]) if "tier" in df else None})
    if not rows:
        raise InputError(path, "intervals", "trial epochs (e.g. Clip, Monet2, Trippy or trials tables)", "none")
    return sorted(rows, key=lambda r: r["start"])


class _Source:
    """An open NWB file reduced to what a Recording needs; ``trial(i)`` resamples one trial.

    Response and stimulus data stay lazy (h5py datasets): each trial reads only the rows
    around its own time span, so memory is bounded by one trial, not by the session.
    """

    def __init__(self, src: Path, series: str | None, frame_rate: float | None, animal_id: str | None,
                 session: int | None, scan_idx: int | None, validation_fraction: float, seed: int):
        from pynwb import NWBHDF5IO

        self.src = src
        if not src.is_file():
            raise InputError(src, "file", "an existing NWB file", "no such file")
        try:
            self.io = NWBHDF5IO(str(src), "r", load_namespaces=True)
            nwb = self.io.read()
        except Exception as e:
            raise InputError(src, "file", "a readable NWB (HDF5) file", f"{type(e).__name__}: {e}") from None
        try:
            self._setup(nwb, series, frame_rate, animal_id, session, scan_idx, validation_fraction, seed)
        except BaseException:
            self.io.close()
            raise

    def _setup(self, nwb: Any, series: str | None, frame_rate: float | None, animal_id: str | None,
               session: int | None, scan_idx: int | None, validation_fraction: float, seed: int) -> None:
        src = self.src
        rs = _pick_series(nwb, series, src)
        self.series_name = rs.name
        self.t_resp = _timestamps(rs)
        self.resp = rs.data
        shape = self.resp.shape
        if len(shape) not in (1, 2) or shape[0] != len(self.t_resp) or shape[0] == 0:
            raise InputError(src, rs.name, "data (time, rois) with one timestamp per row", shape)
        if np.any(np.diff(self.t_resp) <= 0):
            raise InputError(src, f"{rs.name} timestamps", "strictly increasing times", "not increasing")
        self.n_unit = 1 if len(shape) == 1 else shape[1]
        self.units = _units(rs, self.n_unit, src)
        self.beh, self.missing, dropped = _behaviour(nwb)
        self.t_stim, self.frames = _stimulus(nwb, src)
        epochs = _intervals(nwb, src)
        self.rate = float(frame_rate) if frame_rate else (float(rs.rate) if rs.rate
                                                           else 1.0 / float(np.median(np.diff(self.t_resp))))
        if not np.isfinite(self.rate) or self.rate <= 0:
            raise InputError(src, "frame rate", "a positive number of Hz", self.rate)
        subject = nwb.subject.subject_id if nwb.subject is not None and nwb.subject.subject_id else None
        self.animal = str(animal_id or subject or src.stem)
        digits = "".join(ch for ch in str(nwb.session_id or "") if ch.isdigit())
        self.session = int(session if session is not None else (int(digits) if digits else 0))
        self.scan = int(scan_idx if scan_idx is not None else 0)
        self.starts = [e["start"] for e in epochs]
        self.lengths = [max(1, int(np.floor((e["stop"] - e["start"]) * self.rate + 1e-9))) for e in epochs]
        self.trials = _tiers(epochs, validation_fraction, seed, src)
        self.trials["n_frames"] = np.asarray(self.lengths, np.int64)
        self.provenance = {"source": str(src), "source_format": "nwb", "response_series": rs.name,
                           "missing_behaviour_zero_filled": self.missing,
                           "behaviour_nan_samples_bridged": dropped, "validation": self.trials.pop("_note")}
        self.stim_uint8 = self.frames.dtype == np.uint8
        self.image_shape = tuple(self.frames.shape[1:3])

    def trial(self, i: int) -> dict[str, np.ndarray]:
        """Trial ``i`` on the model time base: stimulus (n, H, W), response (n, N), running and
        pupil (n,), eye_position (n, 2)."""
        n = self.lengths[i]
        t = self.starts[i] + np.arange(n) / self.rate
        k0 = max(int(np.searchsorted(self.t_resp, t[0], side="right")) - 1, 0)
        k1 = min(int(np.searchsorted(self.t_resp, t[-1], side="left")) + 1, len(self.t_resp))
        k1 = max(k1, k0 + 1)
        block = np.asarray(self.resp[k0:k1], np.float64).reshape(k1 - k0, self.n_unit)
        if not np.isfinite(block).all():
            raise InputError(self.src, self.series_name, "finite values",
                             f"{int((~np.isfinite(block)).sum())} NaN/inf within trial {i}")
        out = {"response": _lerp(self.t_resp[k0:k1], block, t).astype(np.float32)}
        for key, v in self.beh.items():
            shape = (n, 2) if key == "eye_position" else (n,)
            out[key] = np.zeros(shape, np.float32) if v is None else _lerp(v[0], v[1], t).astype(np.float32)
        k = np.searchsorted(self.t_stim, t, side="right") - 1
        stim = np.full((n,) + self.image_shape, 128 if self.stim_uint8 else 127.5,
                       np.uint8 if self.stim_uint8 else np.float32)
        shown = k >= 0
        if shown.any():
            lo, hi = int(k[shown].min()), int(k[shown].max()) + 1
            frames = np.asarray(self.frames[lo:hi])
            stim[shown] = frames[k[shown] - lo]
        out["stimulus"] = stim
        return out

    def close(self) -> None:
        self.io.close()


def _source(src: str | os.PathLike, options: dict[str, Any]) -> _Source:
    known = {"series": None, "frame_rate": None, "animal_id": None, "session": None, "scan_idx": None,
             "validation_fraction": 0.1, "seed": 0}
    unknown = sorted(set(options) - set(known) - {"pixel_size_deg"})
    if unknown:
        raise TypeError(f"unknown options {unknown}")
    args = {k: options.get(k, d) for k, d in known.items()}
    return _Source(Path(src), **args)


def read_nwb(src: str | os.PathLike, **options: Any) -> xr.Dataset:
    """Read an NWB file into an in-memory Recording on one time base.

    Options: ``series`` (response series name), ``frame_rate`` (Hz; default the series' own),
    ``animal_id``, ``session``, ``scan_idx`` (default the subject id, the digits of the
    session id and 0), ``pixel_size_deg``, ``validation_fraction`` (0.1), ``seed`` (0).
    Raises InputError for a missing/unreadable file, no response series, no stimulus, no
    intervals, non-finite responses. For large files prefer :func:`import_nwb` (streams).
    """
    s = _source(src, options)
    try:
        n, T = len(s.lengths), max(s.lengths)
        out = {"stimulus": np.zeros((n, T) + s.image_shape, np.uint8 if s.stim_uint8 else np.float32),
               "response": np.zeros((n, T, s.n_unit), np.float32), "running": np.zeros((n, T), np.float32),
               "pupil": np.zeros((n, T), np.float32), "eye_position": np.zeros((n, T, 2), np.float32)}
        out["stimulus"][:] = 128 if s.stim_uint8 else 127.5
        for i, length in enumerate(s.lengths):
            for key, v in s.trial(i).items():
                out[key][i, :length] = v
    finally:
        s.close()
    ds = make_recording(**out, units=s.units, trials=s.trials, frame_rate=s.rate, animal_id=s.animal,
                        session=s.session, scan_idx=s.scan, pixel_size_deg=options.get("pixel_size_deg"),
                        provenance=s.provenance)
    validate_recording(ds, Path(src))
    return ds


def _tiers(epochs: list[dict[str, Any]], fraction: float, seed: int, path: Path) -> dict[str, Any]:
    clip = np.array([e["clip_id"] for e in epochs], dtype=object)
    stype = np.array([e["stimulus_type"] for e in epochs], dtype=object)
    repeat = np.zeros(len(epochs), np.int64)
    seen: dict[str, int] = {}
    for i, c in enumerate(clip):
        repeat[i] = seen.get(c, 0)
        seen[c] = repeat[i] + 1
    if all(e["tier"] is not None for e in epochs):
        tier = np.array([e["tier"] for e in epochs], dtype=object)
        note = "from the file's tier column"
    else:
        tier = np.array(["test" if seen[c] > 1 else "train" for c in clip], dtype=object)
        train_clips = sorted(set(clip[tier == "train"]))
        n_val = min(int(round(fraction * len(train_clips))), max(len(train_clips) - 1, 0))
        if fraction > 0 and len(train_clips) >= 2:
            n_val = max(n_val, 1)
        val = set(np.array(train_clips, dtype=object)[np.random.default_rng(seed).permutation(len(train_clips))[:n_val]])
        tier[np.isin(clip, list(val))] = "validation"
        note = (f"repeated clips -> test; held out {n_val} of {len(train_clips)} single-showing clips as validation "
                f"(fraction {fraction}, seed {seed})")
    if not (tier == "train").any():
        raise InputError(path, "intervals", "at least one train trial (a clip shown once)", "none")
    return {"tier": tier, "stimulus_type": stype, "clip_id": clip, "repeat": repeat, "_note": note}


def import_nwb(src: str | os.PathLike, out: str | os.PathLike, *, progress: bool = False,
               **options: Any) -> Path:
    """Convert the NWB file ``src`` into the Recording ``out``, one trial at a time.

    ``options`` as for :func:`read_nwb`. Any error leaves no file at ``out``. Returns ``out``.
    """
    from tqdm.auto import tqdm

    from twin.data.stream import recording_writer
    from twin.provenance import provenance

    s = _source(src, options)
    try:
        prov = {**s.provenance, **provenance({"importer": "nwb", **options, "frame_rate": s.rate}, [src])}
        with recording_writer(out, n_time=max(s.lengths), image_shape=s.image_shape,
                              stimulus_dtype=np.uint8 if s.stim_uint8 else np.float32, units=s.units,
                              trials=s.trials, frame_rate=s.rate, animal_id=s.animal, session=s.session,
                              scan_idx=s.scan, pixel_size_deg=options.get("pixel_size_deg"), provenance=prov,
                              source=src) as w:
            for i in tqdm(range(len(s.lengths)), desc=f"import {Path(src).name}", unit="trial",
                          disable=not progress):
                w.write_trial(i, **s.trial(i))
    finally:
        s.close()
    return Path(out)


__all__ = ["read_nwb", "import_nwb"]

"""Sensorium 2022 / 2023 folders <-> Recordings.

Reading (``read_sensorium_folder``, ``import_sensorium``) takes a folder exactly as the
benchmark ships it (see ``data_cards/sensorium2023.md``)::

    <mouse>/data/videos/<i>.npy        (H, W, T)  2023: stimulus frames (grey levels)
    <mouse>/data/images/<i>.npy        (1, H, W)  2022: one static image per trial
    <mouse>/data/responses/<i>.npy     (N, T) 2023 | (N,) 2022
    <mouse>/data/behavior/<i>.npy      (2, T) 2023: pupil, running | (3,) 2022: pupil, d pupil, running
    <mouse>/data/pupil_center/<i>.npy  (2, T) 2023 | (2,) 2022: eye x, y (optional: zeros if absent)
    <mouse>/meta/neurons/{unit_ids,area,layer,animal_ids,sessions,scan_idx,cell_motor_coordinates}.npy
    <mouse>/meta/trials/tiers.npy (+ optional trial_idx, clip ids, stimulus types)

Trial ``<i>`` is entry ``i`` of every ``meta/trials`` array. Tiers map onto the Recording's:
``train`` -> train, ``validation`` -> validation, ``oracle``, ``test``, ``live_test_*`` and
``final_test_*`` -> test. When no validation trials exist, a deterministic fraction of the
training *clips* (all showings of a clip together; chosen by ``seed``) becomes validation.
Repeats: trials sharing a clip id (from ``meta/trials`` when present, else the SHA-1 of the
frames) are numbered 0..k-1 in trial order. Trials of unequal length are padded to the
longest (stimulus with mean grey, others with 0) and ``n_frames`` records the true length.
NaN responses are an error; NaN behaviour samples (tracker dropouts) are linearly
interpolated within the trial and counted in the provenance (``behaviour_nan_filled``).

Writing (``write_sensorium_folder``) lays a Recording out in the Sensorium 2023 layout, the
format users hold, plus ``meta/trials/{stimulus_type,clip_id}.npy`` and ``meta/twin.json``
(frame rate, pixel size, ids), which the reader uses when present.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin.data.recording import make_recording, validate_recording
from twin.data.sensorium_export import write_sensorium_folder
from twin.errors import InputError

SENSORIUM_2023_FRAME_RATE = 30.0  # Hz; the 2023 videos and responses are sampled at 30 Hz
NEURON_FILES = ("unit_ids", "area", "layer", "animal_ids", "sessions", "scan_idx",
                "cell_motor_coordinates")
CLIP_ID_FILES = ("clip_id", "clip_ids", "video_id", "video_ids", "frame_image_id", "condition_hash")
STIMULUS_TYPE_FILES = ("stimulus_type", "stimulus_types")
TEST_TIER = re.compile(r"^(oracle|test|live_test.*|final_test.*)$")


def _load(path: Path, field: str, *, meta: bool = False, mmap_mode: str | None = None) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, field, "an existing .npy file", "no such file")
    try:
        return np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except ValueError as e:
        if meta and "pickle" in str(e):  # string meta arrays are sometimes saved as objects
            return np.load(path, allow_pickle=True)
        raise InputError(path, field, "a readable .npy array", str(e)) from None
    except Exception as e:
        raise InputError(path, field, "a readable .npy array", f"{type(e).__name__}: {e}") from None


def _trial_files(folder: Path, field: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(folder, field, "a folder of <trial>.npy files", "no such folder")
    files = [p for p in folder.glob("*.npy") if p.stem.isdigit()]
    if not files:
        raise InputError(folder, field, "at least one <trial>.npy file", "none")
    return sorted(files, key=lambda p: int(p.stem))


def detect_version(src: str | os.PathLike) -> int:
    """2023 for a folder with ``data/videos``, 2022 for ``data/images``; InputError otherwise."""
    src = Path(src)
    if not src.is_dir():
        raise InputError(src, "folder", "a Sensorium dataset folder", "no such folder")
    if (src / "data" / "videos").is_dir():
        return 2023
    if (src / "data" / "images").is_dir():
        return 2022
    raise InputError(src, "data/", "data/videos (Sensorium 2023) or data/images (Sensorium 2022)", "neither")


def _name_ids(src: Path) -> tuple[str | None, int | None, int | None]:
    """(animal, session, scan) from names like ``dynamic29156-11-10-Video-...``."""
    m = re.search(r"(\d{4,})-(\d+)-(\d+)", src.name)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else (None, None, None)


def _one_value(values: np.ndarray | None, path: Path, field: str, given: Any, fallback: Any) -> Any:
    if given is not None:
        return given
    if values is None:
        if fallback is None:
            raise InputError(path, field, f"meta/neurons/{field}.npy or the --{field.rstrip('s').replace('_', '-')} "
                             "option", "neither")
        return fallback
    uniq = np.unique(np.asarray(values).astype(str))
    if len(uniq) != 1:
        raise InputError(path, field, "one value (a Recording holds one scan)", list(uniq[:5]))
    return uniq[0]


@dataclass
class _Plan:
    """What pass 1 learns from a folder (shapes, metadata, tiers) before any bulk data is read."""

    src: Path
    version: int
    stim_files: list[Path]
    lengths: list[int]
    image_shape: tuple[int, int]
    uint8: bool
    units: dict[str, np.ndarray]
    animal: str
    session: int
    scan: int
    trials: dict[str, np.ndarray]
    frame_rate: float
    pixel_size_deg: float | None
    provenance: dict[str, Any]


def _plan(src: Path, frame_rate: float | None, validation_fraction: float, seed: int, animal_id: str | None,
          session: int | None, scan_idx: int | None, pixel_size_deg: float | None,
          default_stimulus_type: str | None) -> _Plan:
    version = detect_version(src)
    side = _sidecar(src)
    data = src / "data"
    stim_dir = data / ("videos" if version == 2023 else "images")
    stim_files = _trial_files(stim_dir, stim_dir.name)
    stems = [p.stem for p in stim_files]
    resp_files = _trial_files(data / "responses", "responses")
    if [p.stem for p in resp_files] != stems:
        raise InputError(data / "responses", "responses", f"one file per {stim_dir.name[:-1]} (trials {_span(stems)})",
                         f"trials {_span([p.stem for p in resp_files])}")
    tiers_raw = _load(src / "meta" / "trials" / "tiers.npy", "tiers", meta=True).astype(str)
    if tiers_raw.ndim != 1 or len(tiers_raw) == 0:
        raise InputError(src / "meta/trials/tiers.npy", "tiers", "a non-empty 1-d array", tiers_raw.shape)
    idx = np.array([int(s) for s in stems])
    if idx.max() >= len(tiers_raw):
        raise InputError(src / "meta/trials/tiers.npy", "tiers", f"an entry for each trial up to {idx.max()}",
                         f"{len(tiers_raw)} entries")
    trial_meta = _trial_meta(src, idx)

    lengths, n_unit, shape, uint8, hashes, gaps = [], None, None, True, [], 0
    # pass 1 over memory-mapped files: shapes and dtypes of every trial (plus frame hashes when the
    # folder names no clips, and a count of missing behaviour samples) before anything is written
    for f in stim_files:
        arrays = _trial_files_of(data, version, f, mmap=True)
        T, N, hw = _check_shapes(version, f, data, *arrays)
        if n_unit is None:
            n_unit, shape = N, hw
        elif N != n_unit:
            raise InputError(data / "responses" / f"{f.stem}.npy", "responses",
                             f"{n_unit} neurons (as trial {stems[0]})", N)
        elif hw != shape:
            raise InputError(f, stim_dir.name, f"frames of {shape} pixels (as trial {stems[0]})", hw)
        uint8 &= arrays[0].dtype == np.uint8
        lengths.append(T)
        gaps += int((~np.isfinite(arrays[2])).sum()) + (0 if arrays[3] is None else int((~np.isfinite(arrays[3])).sum()))
        if "clip_id" not in trial_meta:
            hashes.append(hashlib.sha1(np.ascontiguousarray(arrays[0]).tobytes()).hexdigest()[:16])
    assert n_unit is not None and shape is not None
    if hashes:
        trial_meta["clip_id"] = np.array(hashes, dtype=object)

    units = _units(src, n_unit)
    ids = _name_ids(src)
    animals, sessions, scans = units.pop("animal_id", None), units.pop("session", None), units.pop("scan_idx", None)
    meta_path = src / "meta" / "neurons"
    animal = str(_one_value(animals, meta_path, "animal_ids", animal_id if animal_id is not None
                            else side.get("animal_id"), ids[0] or src.name))
    sess = int(_one_value(sessions, meta_path, "sessions", session if session is not None
                          else side.get("session"), ids[1] if ids[1] is not None else 0))
    scan = int(_one_value(scans, meta_path, "scan_idx", scan_idx if scan_idx is not None
                          else side.get("scan_idx"), ids[2] if ids[2] is not None else 0))
    trials = _trials(src, tiers_raw[idx], trial_meta, lengths, version, default_stimulus_type,
                     validation_fraction, seed)
    rate = frame_rate if frame_rate is not None else side.get(
        "frame_rate", SENSORIUM_2023_FRAME_RATE if version == 2023 else 1.0)
    if not (isinstance(rate, (int, float)) and np.isfinite(rate) and rate > 0):
        raise InputError(src, "frame rate", "a positive number of Hz", rate)
    px = pixel_size_deg if pixel_size_deg is not None else side.get("pixel_size_deg")
    prov = {"source": str(src), "source_format": f"sensorium{version}",
            "tiers_source": sorted(set(tiers_raw[idx])), "validation": trials.pop("_validation_note"),
            "behaviour_nan_filled": gaps}
    return _Plan(src, version, stim_files, lengths, shape, uint8, units, animal, sess, scan, trials,
                 float(rate), px, prov)


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """A 1-d trace with its NaN/inf samples linearly interpolated over time (held at the ends);
    an all-missing trace becomes zeros. Behaviour trackers drop samples (blinks, slips)."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    if ok.all():
        return x
    if not ok.any():
        return np.zeros_like(x)
    t = np.arange(len(x))
    return np.interp(t, t[ok], x[ok])


def _trial_files_of(data: Path, version: int, f: Path, mmap: bool) -> tuple[np.ndarray, ...]:
    i = f.stem
    mode = "r" if mmap else None
    s = _load(f, f.parent.name, mmap_mode=mode)
    r = _load(data / "responses" / f"{i}.npy", "responses", mmap_mode=mode)
    b = _load(data / "behavior" / f"{i}.npy", "behavior", mmap_mode=mode)
    pc_path = data / "pupil_center" / f"{i}.npy"
    pc = _load(pc_path, "pupil_center", mmap_mode=mode) if pc_path.is_file() else None
    return s, r, b, pc


def _trial_arrays(plan: _Plan, k: int) -> dict[str, np.ndarray]:
    """Trial ``k``'s values in the Recording layout: stimulus (n, H, W), response (n, N),
    running/pupil (n,), eye_position (n, 2); InputError for non-finite values."""
    f = plan.stim_files[k]
    data = plan.src / "data"
    s, r, b, pc = _trial_files_of(data, plan.version, f, mmap=False)
    if plan.version == 2023:
        stim, resp = np.moveaxis(s, 2, 0), r.T
        pupil, run = b[0], b[1]
        eye = None if pc is None else pc.T
    else:
        stim, resp = s, r[None]
        pupil, run = b[0:1], b[2:3]
        eye = None if pc is None else pc[None]
    if not np.isfinite(resp).all():
        raise InputError(data / "responses" / f"{f.stem}.npy", "responses", "finite values",
                         f"{int((~np.isfinite(resp)).sum())} NaN/inf entries")
    pupil, run = fill_gaps(pupil), fill_gaps(run)
    eye = None if eye is None else np.stack([fill_gaps(eye[:, 0]), fill_gaps(eye[:, 1])], axis=1)
    return {"stimulus": stim if stim.dtype == np.uint8 else stim.astype(np.float32),
            "response": resp.astype(np.float32), "running": run.astype(np.float32),
            "pupil": pupil.astype(np.float32),
            "eye_position": np.zeros((len(resp), 2), np.float32) if eye is None else eye.astype(np.float32)}


def read_sensorium_folder(src: str | os.PathLike, *, frame_rate: float | None = None,
                          validation_fraction: float = 0.1, seed: int = 0,
                          animal_id: str | None = None, session: int | None = None,
                          scan_idx: int | None = None, pixel_size_deg: float | None = None,
                          default_stimulus_type: str | None = None) -> xr.Dataset:
    """Read a Sensorium 2022 or 2023 folder into an in-memory Recording (validated).

    ``frame_rate`` (Hz) defaults to ``meta/twin.json``, else 30 Hz for 2023 and 1 "frame"
    per image for 2022. Ids default to ``meta/neurons`` arrays, then to the folder name
    (``<animal>-<session>-<scan>-...``). Raises InputError for any missing file, wrong shape
    or dtype, non-finite value, mismatched meta lengths, unknown or empty tiers. For large
    folders prefer :func:`import_sensorium`, which streams trial by trial to a file.
    """
    plan = _plan(Path(src), frame_rate, validation_fraction, seed, animal_id, session, scan_idx,
                 pixel_size_deg, default_stimulus_type)
    n, T, (h, w) = len(plan.lengths), max(plan.lengths), plan.image_shape
    stimulus = np.full((n, T, h, w), 128 if plan.uint8 else 127.5, np.uint8 if plan.uint8 else np.float32)
    out = {"stimulus": stimulus, "response": np.zeros((n, T, len(plan.units["unit_id"])), np.float32),
           "running": np.zeros((n, T), np.float32), "pupil": np.zeros((n, T), np.float32),
           "eye_position": np.zeros((n, T, 2), np.float32)}
    for k, length in enumerate(plan.lengths):
        for name, arr in _trial_arrays(plan, k).items():
            out[name][k, :length] = arr
    ds = make_recording(**out, units=plan.units, trials=plan.trials, frame_rate=plan.frame_rate,
                        animal_id=plan.animal, session=plan.session, scan_idx=plan.scan,
                        pixel_size_deg=plan.pixel_size_deg, provenance=plan.provenance)
    validate_recording(ds, plan.src)
    return ds


def _span(stems: list[str]) -> str:
    return f"{stems[0]}..{stems[-1]} ({len(stems)})" if stems else "none"


def _sidecar(src: Path) -> dict[str, Any]:
    p = src / "meta" / "twin.json"
    if not p.is_file():
        return {}
    try:
        return dict(json.loads(p.read_text()))
    except (ValueError, TypeError) as e:
        raise InputError(p, "twin.json", "a JSON object", str(e)) from None


def _check_shapes(version: int, f: Path, data: Path, s, r, b, pc) -> tuple[int, int, tuple[int, int]]:
    """(frames, neurons, (H, W)) of one trial; InputError naming the file at fault."""
    i = f.stem
    if version == 2023:
        if s.ndim != 3 or s.dtype.kind not in "uif":
            raise InputError(f, "videos", "a numeric array (H, W, T)", f"{s.shape} {s.dtype}")
        T, hw = s.shape[2], s.shape[:2]
        if r.ndim != 2 or r.shape[1] != T or r.dtype.kind not in "uif":
            raise InputError(data / "responses" / f"{i}.npy", "responses", f"a numeric array (n_neurons, {T})",
                             f"{r.shape} {r.dtype}")
        if b.shape != (2, T) or b.dtype.kind not in "uif":
            raise InputError(data / "behavior" / f"{i}.npy", "behavior",
                             f"a numeric array (2, {T}): pupil, running", f"{b.shape} {b.dtype}")
        if pc is not None and (pc.shape != (2, T) or pc.dtype.kind not in "uif"):
            raise InputError(data / "pupil_center" / f"{i}.npy", "pupil_center", f"an array (2, {T})", pc.shape)
        return T, r.shape[0], tuple(hw)
    if s.ndim != 3 or s.shape[0] != 1 or s.dtype.kind not in "uif":
        raise InputError(f, "images", "a numeric array (1, H, W)", f"{s.shape} {s.dtype}")
    if r.ndim != 1 or r.dtype.kind not in "uif":
        raise InputError(data / "responses" / f"{i}.npy", "responses", "a numeric array (n_neurons,)",
                         f"{r.shape} {r.dtype}")
    if b.shape != (3,) or b.dtype.kind not in "uif":
        raise InputError(data / "behavior" / f"{i}.npy", "behavior", "an array (3,): pupil, d pupil, running",
                         b.shape)
    if pc is not None and (pc.shape != (2,) or pc.dtype.kind not in "uif"):
        raise InputError(data / "pupil_center" / f"{i}.npy", "pupil_center", "an array (2,)", pc.shape)
    return 1, r.shape[0], tuple(s.shape[1:])


def _units(src: Path, n_unit: int) -> dict[str, np.ndarray]:
    folder = src / "meta" / "neurons"
    if not (folder / "unit_ids.npy").is_file():
        raise InputError(folder / "unit_ids.npy", "unit_ids", "an existing .npy file", "no such file")
    out: dict[str, np.ndarray] = {}
    names = {"unit_ids": "unit_id", "area": "area", "layer": "layer", "animal_ids": "animal_id",
             "sessions": "session", "scan_idx": "scan_idx"}
    for fname, coord in names.items():
        p = folder / f"{fname}.npy"
        if not p.is_file():
            continue
        v = _load(p, fname, meta=True)
        if v.ndim != 1 or len(v) != n_unit:
            raise InputError(p, fname, f"one entry per neuron ({n_unit}, as the responses)", v.shape)
        out[coord] = v
    if out["unit_id"].dtype.kind not in "iu":
        try:
            out["unit_id"] = out["unit_id"].astype(np.int64)
        except (TypeError, ValueError):
            raise InputError(folder / "unit_ids.npy", "unit_ids", "integers", str(out["unit_id"].dtype)) from None
    if len(np.unique(out["unit_id"])) != n_unit:
        raise InputError(folder / "unit_ids.npy", "unit_ids", "unique unit ids", "duplicates")
    for c in ("area", "layer"):
        out[c] = out[c].astype(str).astype(object) if c in out else np.full(n_unit, "unknown", object)
    p = folder / "cell_motor_coordinates.npy"
    if p.is_file():
        xyz = _load(p, "cell_motor_coordinates", meta=True)
        if xyz.shape != (n_unit, 3) or xyz.dtype.kind not in "uif":
            raise InputError(p, "cell_motor_coordinates", f"an array ({n_unit}, 3) of um", xyz.shape)
    else:
        xyz = np.zeros((n_unit, 3))
    for k, axis in enumerate("xyz"):
        out[f"cortical_{axis}"] = xyz[:, k].astype(np.float64)
    p = folder / "pt_root_id.npy"
    if p.is_file():
        root = _load(p, "pt_root_id")
        if root.shape != (n_unit,):
            raise InputError(p, "pt_root_id", f"one entry per neuron ({n_unit})", root.shape)
        out["pt_root_id"] = root.astype(np.int64)
    return out


def _trial_meta(src: Path, idx: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    folder = src / "meta" / "trials"
    for key, names in (("clip_id", CLIP_ID_FILES), ("stimulus_type", STIMULUS_TYPE_FILES), ("trial_idx", ("trial_idx",))):
        for n in names:
            p = folder / f"{n}.npy"
            if p.is_file():
                v = _load(p, n, meta=True)
                if v.ndim < 1 or len(v) <= idx.max():
                    raise InputError(p, n, f"an entry per trial ({idx.max() + 1})", v.shape)
                v = v[idx]
                out[key] = np.array([_scalar_str(x) for x in v], dtype=object) if key != "trial_idx" else v
                break
    return out


def _scalar_str(x: Any) -> str:
    a = np.asarray(x)
    return str(a.item()) if a.ndim == 0 else "-".join(map(str, a.ravel()))


def _trials(src: Path, tiers_raw: np.ndarray, meta: dict[str, np.ndarray], lengths: list[int], version: int,
            default_type: str | None, validation_fraction: float, seed: int) -> dict[str, Any]:
    path = src / "meta" / "trials" / "tiers.npy"
    tiers = np.empty(len(tiers_raw), object)
    for k, t in enumerate(tiers_raw):
        t = str(t).strip()
        if t in ("train", "validation"):
            tiers[k] = t
        elif TEST_TIER.match(t):
            tiers[k] = "test"
        else:
            raise InputError(path, "tiers", "train, validation, oracle, test, live_test_* or final_test_*", repr(t))
    clip = meta["clip_id"]
    stype = meta.get("stimulus_type")
    if stype is None:
        stype = np.full(len(tiers), default_type or ("natural_movie" if version == 2023 else "natural_image"), object)
    note = "from the source's validation tier"
    if not (tiers == "validation").any():
        train_clips = sorted(set(clip[tiers == "train"]))
        n_val = int(round(validation_fraction * len(train_clips))) if len(train_clips) >= 2 else 0
        n_val = min(max(n_val, 1 if validation_fraction > 0 and len(train_clips) >= 2 else 0), len(train_clips) - 1)
        rng = np.random.default_rng(seed)
        val = set(np.array(train_clips, dtype=object)[rng.permutation(len(train_clips))[:n_val]])
        tiers[(tiers == "train") & np.isin(clip, list(val))] = "validation"
        note = (f"held out {n_val} of {len(train_clips)} training clips (all their showings), "
                f"fraction {validation_fraction}, seed {seed}")
    if not (tiers == "train").any():
        raise InputError(path, "tiers", "at least one train trial", f"tiers {sorted(set(tiers_raw))}")
    order = np.argsort(meta["trial_idx"], kind="stable") if "trial_idx" in meta else np.arange(len(tiers))
    repeat = np.zeros(len(tiers), np.int64)
    seen: dict[str, int] = {}
    for k in order:
        repeat[k] = seen.get(clip[k], 0)
        seen[clip[k]] = repeat[k] + 1
    return {"tier": tiers, "stimulus_type": np.asarray(stype, object), "clip_id": np.asarray(clip, object),
            "repeat": repeat, "n_frames": np.asarray(lengths, np.int64), "_validation_note": note}


def import_sensorium(src: str | os.PathLike, out: str | os.PathLike, *, progress: bool = False,
                     **options: Any) -> Path:
    """Convert the Sensorium folder ``src`` into the Recording file ``out``, trial by trial.

    ``options`` are those of :func:`read_sensorium_folder`. Memory holds one trial at a time.
    Shapes, metadata and tiers are checked before anything is written; any error leaves no
    file at ``out``. Returns ``out``.
    """
    from tqdm.auto import tqdm

    from twin.data.stream import recording_writer
    from twin.provenance import provenance

    src = Path(src)
    plan = _plan(src, options.pop("frame_rate", None), options.pop("validation_fraction", 0.1),
                 options.pop("seed", 0), options.pop("animal_id", None), options.pop("session", None),
                 options.pop("scan_idx", None), options.pop("pixel_size_deg", None),
                 options.pop("default_stimulus_type", None))
    if options:
        raise TypeError(f"unknown options {sorted(options)}")
    prov = {**plan.provenance, **provenance({"importer": "sensorium", "frame_rate": plan.frame_rate}, [src])}
    with recording_writer(out, n_time=max(plan.lengths), image_shape=plan.image_shape,
                          stimulus_dtype=np.uint8 if plan.uint8 else np.float32, units=plan.units,
                          trials=plan.trials, frame_rate=plan.frame_rate, animal_id=plan.animal,
                          session=plan.session, scan_idx=plan.scan, pixel_size_deg=plan.pixel_size_deg,
                          provenance=prov, source=src) as w:
        for k in tqdm(range(len(plan.lengths)), desc=f"import {src.name}", unit="trial", disable=not progress):
            w.write_trial(k, **_trial_arrays(plan, k))
    return Path(out)


__all__ = ["read_sensorium_folder", "import_sensorium", "write_sensorium_folder", "detect_version", "fill_gaps",
           "SENSORIUM_2023_FRAME_RATE"]

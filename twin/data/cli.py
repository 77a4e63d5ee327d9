"""``twin import sensorium|nwb SRC OUT.h5`` and ``twin info FILE.h5 [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``import`` and ``info`` subcommands."""
    p = subparsers.add_parser("import", help="convert a Sensorium folder or an NWB file into a Recording (.h5)")
    fmt = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    s = fmt.add_parser("sensorium", help="a Sensorium 2022 (images) or 2023 (videos) dataset folder")
    s.add_argument("src", help="the <mouse> folder holding data/ and meta/")
    s.add_argument("out", help="the Recording file to write (.h5)")
    _ids(s)
    s.set_defaults(func=_import_sensorium)
    n = fmt.add_parser("nwb", help="an NWB file with ophys responses (e.g. MICrONS, DANDI 000402)")
    n.add_argument("src", help="the .nwb file")
    n.add_argument("out", help="the Recording file to write (.h5)")
    n.add_argument("--series", default=None, help="name of the response series to use (default: first found)")
    _ids(n)
    n.set_defaults(func=_import_nwb)

    i = subparsers.add_parser("info", help="summarise a Recording file")
    i.add_argument("file", help="a Recording .h5 file")
    i.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    i.set_defaults(func=_info)


def _ids(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frame-rate", type=float, default=None, help="model time base in Hz (default: the source's)")
    p.add_argument("--animal-id", default=None, help="animal id when the source lacks it")
    p.add_argument("--session", type=int, default=None, help="session number when the source lacks it")
    p.add_argument("--scan-idx", type=int, default=None, help="scan index when the source lacks it")
    p.add_argument("--pixel-size-deg", type=float, default=None, help="visual degrees per stimulus pixel")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="fraction of training clips held out as validation when the source has none (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation hold-out (default 0)")


def _id_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"frame_rate": args.frame_rate, "animal_id": args.animal_id, "session": args.session,
            "scan_idx": args.scan_idx, "pixel_size_deg": args.pixel_size_deg}


def _import_sensorium(args: argparse.Namespace) -> int:
    from twin.data.sensorium import import_sensorium

    out = import_sensorium(args.src, args.out, validation_fraction=args.validation_fraction, seed=args.seed,
                           progress=sys.stderr.isatty(), **_id_options(args))
    print(f"wrote {out}")
    return 0


def _import_nwb(args: argparse.Namespace) -> int:
    from twin.data.nwb import import_nwb

    out = import_nwb(args.src, args.out, series=args.series, validation_fraction=args.validation_fraction,
                     seed=args.seed, progress=sys.stderr.isatty(), **_id_options(args))
    print(f"wrote {out}")
    return 0


def summary(path: str) -> dict[str, Any]:
    """The JSON summary of a Recording file (metadata only; no bulk data is read)."""
    import numpy as np

    from twin.data.recording import open_recording

    with open_recording(path) as ds:
        def counts(name: str) -> dict[str, int]:
            return dict(sorted(Counter(np.asarray(ds[name].values).astype(str).tolist()).items()))

        return {
            "file": str(path),
            "format_version": str(ds.attrs["format_version"]),
            "recording_id": str(ds.attrs["recording_id"]),
            "animal_id": str(ds.attrs["animal_id"]),
            "n_units": int(ds.sizes["unit"]), "n_trials": int(ds.sizes["trial"]),
            "n_time": int(ds.sizes["time"]), "image_shape": [int(ds.sizes["y"]), int(ds.sizes["x"])],
            "frame_rate": float(ds.attrs["frame_rate"]),
            "pixel_size_deg": float(ds.attrs["pixel_size_deg"]) if "pixel_size_deg" in ds.attrs else None,
            "stimulus_dtype": str(ds["stimulus"].dtype),
            "tiers": counts("tier"), "stimulus_types": counts("stimulus_type"),
            "sessions": sorted({int(v) for v in np.asarray(ds["session"].values)}),
            "scans": sorted({int(v) for v in np.asarray(ds["scan_idx"].values)}),
            "areas": counts("area"),
            "n_coregistered": int((np.asarray(ds["pt_root_id"].values) != 0).sum()) if "pt_root_id" in ds.coords else 0,
            "total_frames": int(np.asarray(ds["n_frames"].values).sum()),
        }


def _info(args: argparse.Namespace) -> int:
    s = summary(args.file)
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    dur = s["total_frames"] / s["frame_rate"]
    print(f"{s['file']}: Recording {s['recording_id']} (format {s['format_version']})")
    print(f"  units   {s['n_units']} in areas " + ", ".join(f"{k} {v}" for k, v in s["areas"].items())
          + f"; {s['n_coregistered']} co-registered to EM")
    print(f"  trials  {s['n_trials']}: " + ", ".join(f"{k} {v}" for k, v in s["tiers"].items()))
    print("  stimuli " + ", ".join(f"{k} {v}" for k, v in s["stimulus_types"].items())
          + f"; {s['image_shape'][0]}x{s['image_shape'][1]} px ({s['stimulus_dtype']})"
          + (f", {s['pixel_size_deg']:g} deg/px" if s["pixel_size_deg"] else ""))
    print(f"  time    {s['n_time']} frames per trial at {s['frame_rate']:g} Hz; {dur:.1f} s of data in all")
    print(f"  sessions {s['sessions']}, scans {s['scans']}")
    return 0

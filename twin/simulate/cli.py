"""``twin simulate``: write a synthetic mouse (recordings, connectome, ground truth)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate a synthetic mouse with planted ground truth",
        description="Simulate a synthetic mouse: Recording files per scan, CAVE-style connectome tables, "
                    "and the planted ground truth (units, noise-free test responses, profiles, params). "
                    "Start from a preset, or a TOML config (keys it omits come from its `preset` key).")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (written atomically)")
    p.add_argument("--preset", choices=["tiny", "default", "large"], default=None,
                   help="tiny: seconds, for tests; default: the demo dataset; large: thousands of neurons")
    p.add_argument("--config", metavar="FILE.toml", default=None, help="simulator config (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set population.neurons_per_scan=300 (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides the config's)")
    p.add_argument("--sensorium", action="store_true",
                   help="also write each scan in the Sensorium 2023 folder layout under OUT_DIR/sensorium/")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from twin.errors import InputError
    from twin.simulate.config import load_sim_config, preset

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.sensorium:
        overrides.append("sensorium=true")
    if args.config:
        cfg = load_sim_config(args.config, overrides, base=args.preset)
    else:
        cfg = preset(args.preset or "default", overrides)
    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise InputError(out, "OUT_DIR", "a new or empty folder (or --force to replace it)", "a non-empty folder")
    from twin.simulate.mouse import simulate

    simulate(cfg, out, progress=not args.quiet)
    summary = json.loads((out / "summary.json").read_text())
    print(f"wrote {out}: {summary['n_neurons']} neurons in {len(summary['scans'])} scans, "
          f"{summary['n_trials_per_scan']} trials per scan, in {summary['seconds']} s")
    return 0

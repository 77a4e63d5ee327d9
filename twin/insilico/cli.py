"""``twin insilico CONFIG (--model RUN_DIR | --truth SIM_DIR) --out DIR``: run a battery."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "insilico", help="run in-silico experiments (tuning, RFs, MEIs, invariance, profiles) on a model",
        description="Run the in-silico battery CONFIG (experiments/insilico/*.toml) on a trained twin "
                    "(--model RUN_DIR) or on the simulator's planted neurons (--truth SIM_DIR, the ground "
                    "truth). Each experiment is written atomically to DIR; re-running skips finished ones.")
    p.add_argument("config", help="battery TOML (experiments/insilico/tiny.toml, demo.toml)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="RUN_DIR", help="a `twin train` run directory (single or ensemble)")
    src.add_argument("--truth", metavar="SIM_DIR", help="a `twin simulate` folder: use its planted neurons")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--metrics", metavar="METRICS_H5",
                   help="`twin evaluate` metrics.h5: adds cc_abs, cc_max, cc_norm to profiles.h5")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted, e.g. mei.n_steps=50); repeatable")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from twin.insilico.battery import run_battery
    from twin.insilico.config import load_insilico_config

    cfg = load_insilico_config(args.config, args.set)
    if args.model:
        from twin.model import load_model

        model, source = load_model(args.model), args.model
    else:
        from twin.simulate import load_truth_model

        model, source = load_truth_model(args.truth), args.truth
    out = run_battery(cfg, model, args.out, progress=not args.quiet, inputs=[args.config], metrics=args.metrics)
    print(f"twin insilico: wrote {out} (model {source})")
    return 0

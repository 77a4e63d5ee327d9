"""``twin train CONFIG --out RUN_DIR [--from RUN_DIR --freeze core] [--seeds 0,1,2] [--set k=v ...] [--force]``."""

from __future__ import annotations

import argparse

from twin.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a twin (or a seed ensemble, or transfer a trained core to new scans)",
        description="Train a digital twin on Recordings. An unfinished RUN_DIR is resumed from its last "
                    "checkpoint; a finished one is refused unless --force.")
    p.add_argument("config", help="training config (TOML), e.g. experiments/train/demo.toml")
    p.add_argument("--out", required=True, help="run directory to write (or resume)")
    p.add_argument("--from", dest="from_run", default=None,
                   help="trained run directory to transfer from (from an ensemble: one member per member)")
    p.add_argument("--freeze", default="", help="comma-separated parts to freeze with --from (core)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds: train an ensemble, one member each")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted, value in TOML syntax); repeatable")
    p.add_argument("--force", action="store_true", help="retrain over a finished run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from twin.train.loop import train

    overrides = list(args.overrides)
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise InputError(None, "--seeds", "comma-separated integers", args.seeds) from None
        overrides.append(f"seeds=[{', '.join(map(str, seeds))}]")
    freeze = tuple(f.strip() for f in args.freeze.split(",") if f.strip())
    out = train(args.config, args.out, overrides=overrides, from_run=args.from_run, freeze=freeze,
                force=args.force, progress=not args.quiet)
    print(f"twin train: wrote {out}")
    return 0

"""``twin sweep SWEEP.toml``: grid or random search over dotted config keys of any stage config.

Public API: :func:`load_sweep`, :func:`expand_trials` (twin.sweep.config), :func:`run_sweep`,
:func:`leaderboard` (twin.sweep.run), and :func:`register` for the CLI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from twin.sweep.config import SweepConfig, expand_trials, load_sweep

__all__ = ["SweepConfig", "load_sweep", "expand_trials", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``twin sweep SWEEP.toml [--out DIR] [--executor local|ray] [--workers N] ...``."""
    p = subparsers.add_parser(
        "sweep", help="grid or random search over config keys, locally or on Ray",
        description="Run one trial per parameter set of a sweep file (each trial: `twin <command> CONFIG "
                    "--out DIR/trials/<id> --set key=value ...` in its own process). A failing trial is "
                    "recorded and the rest go on; running again skips finished trials and retries failed "
                    "ones. Writes DIR/leaderboard.csv and DIR/leaderboard.nc (xarray), best first.")
    p.add_argument("sweep", metavar="SWEEP.toml", help="sweep file, e.g. experiments/sweeps/tiny.toml")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: sweeps/<sweep name>)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: concurrent local processes (default); ray: Ray tasks (RAY_ADDRESS or a "
                        "local Ray; needs `pip install twin[ray]` and a shared filesystem)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="trials running at once (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the sweep file itself, e.g. --set n_trials=4 (repeatable)")
    p.add_argument("--no-retry", action="store_true", help="do not retry trials that failed before")
    p.add_argument("--force", action="store_true",
                   help="re-run every trial, and write into an --out holding another sweep (replacing it)")
    p.add_argument("--dry-run", action="store_true", help="list the trials and their commands, run nothing")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from twin.sweep.run import run_sweep, trial_argv
    from twin.sweep.config import trial_id

    cfg, base = load_sweep(args.sweep, args.overrides)
    out = Path(args.out) if args.out else Path("sweeps") / cfg.name
    trials = expand_trials(cfg)
    if args.dry_run:
        for t in trials:
            tid = trial_id(t)
            print(tid, " ".join(trial_argv(cfg, base, t, out / "trials" / tid)))
        return 0
    board = run_sweep(cfg, base, out, trials, executor=args.executor, workers=args.workers,
                      retry_failed=not args.no_retry, force=args.force)
    n_fail = int((board.status != "ok").sum())
    print(f"leaderboard: {out / 'leaderboard.csv'} and {out / 'leaderboard.nc'} "
          f"({len(board) - n_fail} ok, {n_fail} failed)")
    return 0

"""``twin run PIPELINE.toml``: data -> train -> evaluate -> in-silico -> analyze -> report,
each stage cached by the hash of its config and its inputs, resumable, with progress.

Public API: :func:`run_pipeline` (path or config -> per-stage report), :func:`load_pipeline`,
and the engine in :mod:`twin.pipeline.runner` (:class:`Stage`, :func:`run_stages`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from twin.pipeline.config import PipelineConfig, load_pipeline

__all__ = ["run_pipeline", "load_pipeline", "PipelineConfig", "register"]


def run_pipeline(path: str | os.PathLike, out: str | os.PathLike, *, overrides: list[str] = (),
                 force: bool = False, rerun: list[str] = (), until: str | None = None,
                 dry_run: bool = False, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Run the pipeline in ``path`` (TOML) into ``out``; see :func:`twin.pipeline.runner.run_stages`.

    Returns ``{stage: {"action": "cached"|"ran"|"resumed"|"would run", "key": ..., ...}}``.
    """
    from twin.pipeline.config import as_dict
    from twin.pipeline.runner import run_stages
    from twin.pipeline.stages import build_stages

    cfg, base = load_pipeline(path, overrides)
    stages = build_stages(cfg, base)
    config = {"pipeline_file": str(Path(path).resolve()), **as_dict(cfg),
              "resolved": {s.name: s.section for s in stages}}
    return run_stages(stages, out, name=cfg.name, seed=cfg.seed, config=config, force=force, rerun=rerun,
                      until=until, dry_run=dry_run, progress=progress)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``twin run PIPELINE.toml [--out DIR] [--force] [--rerun STAGE] [--until STAGE] ...``."""
    p = subparsers.add_parser(
        "run", help="run a whole pipeline (data, train, evaluate, in-silico, analyze, report), cached",
        description="Run the stages of a pipeline file: simulate or import the data, train the twin, "
                    "evaluate it, run the in-silico battery, test the connectivity hypotheses and write "
                    "the report. Each stage goes to OUT/<stage>/ and is cached by a hash of its config "
                    "and of its inputs: running again skips finished stages, a changed setting re-runs "
                    "only that stage and what depends on it, and an interrupted run resumes (training "
                    "continues from its last checkpoint).")
    p.add_argument("pipeline", metavar="PIPELINE.toml", help="pipeline file, e.g. experiments/pipelines/demo.toml")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: runs/<pipeline name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pipeline key, e.g. --set train.set=['train.steps=50'] (repeatable)")
    p.add_argument("--force", action="store_true",
                   help="re-run every stage, and write into an OUT that holds another pipeline's outputs "
                        "(replacing them)")
    p.add_argument("--rerun", action="append", default=[], metavar="STAGE",
                   help="re-run this stage and everything after it even if cached (repeatable)")
    p.add_argument("--until", default=None, metavar="STAGE", help="stop after this stage")
    p.add_argument("--dry-run", action="store_true", help="print what would run or be skipped, run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars inside stages")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    cfg, _ = load_pipeline(args.pipeline, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    result = run_pipeline(args.pipeline, out, overrides=args.overrides, force=args.force, rerun=args.rerun,
                          until=args.until, dry_run=args.dry_run, progress=not args.quiet)
    if "report" in result and result["report"]["action"] in ("ran", "cached", "resumed"):
        print(f"report: {out / 'report' / 'report.html'} (open in a browser); numbers: "
              f"{out / 'report' / 'report.json'}")
    else:
        print(f"outputs in {out}")
    return 0

"""``twin report``: build the HTML + JSON report from a pipeline output folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``twin report RUN_OUT [--out DIR] [--data DIR] [--train DIR] ...``."""
    p = subparsers.add_parser(
        "report", help="write the HTML + JSON report of a pipeline run",
        description="Build one self-contained HTML page (figures embedded) and report.json (every "
                    "number on the page) from a `twin run` output folder: data summary, twin quality, "
                    "recovered vs planted tuning, like-to-like density and slopes vs published values, "
                    "invariance, verdicts, provenance. Sections whose stage output is missing say so.")
    p.add_argument("run_out", metavar="RUN_OUT", nargs="?", default=None,
                   help="a `twin run` output folder holding simulate|import/, train/, evaluate/, "
                        "insilico/, analyze/ (any may be missing)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where report.html and report.json go (default: RUN_OUT/report)")
    for stage, what in (("data", "a `twin simulate` or imported data folder"), ("train", "a `twin train` run"),
                        ("evaluate", "a `twin evaluate` output"), ("insilico", "a `twin insilico` output"),
                        ("analyze", "a `twin analyze` output"), ("sweep", "a `twin sweep` output")):
        p.add_argument(f"--{stage}", default=None, metavar="DIR", help=f"{what} (overrides RUN_OUT's)")
    p.add_argument("--title", default="twin report", help="page title")
    p.add_argument("--force", action="store_true", help="replace an existing report in the output folder")
    p.add_argument("--bootstrap", type=int, default=200, metavar="N",
                   help="bootstrap resamples for the density bands (default 200)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from twin.errors import InputError
    from twin.report.build import build_report
    from twin.report.sources import from_pipeline_dir

    if args.run_out is None and args.out is None:
        raise InputError(None, "RUN_OUT / --out", "a pipeline folder, or --out with per-stage folders", "neither")
    if args.run_out is not None and not Path(args.run_out).is_dir():
        raise InputError(args.run_out, "RUN_OUT", "an existing `twin run` output folder", "no such folder")
    for k in ("data", "train", "evaluate", "insilico", "analyze", "sweep"):
        v = getattr(args, k)
        if v is not None and not Path(v).is_dir():
            raise InputError(v, f"--{k}", "an existing folder", "no such folder")
    src = from_pipeline_dir(args.run_out or "/nonexistent", data=args.data, train=args.train,
                            evaluate=args.evaluate, insilico=args.insilico, analyze=args.analyze, sweep=args.sweep)
    out = Path(args.out) if args.out else Path(args.run_out) / "report"
    if (out / "report.html").exists() and not args.force:
        raise InputError(out / "report.html", "--out", "a folder without a report (or --force to replace it)",
                         "an existing report")
    paths = build_report(src, out, title=args.title, n_boot=args.bootstrap)
    print(f"wrote {paths['html']} (open it in a browser) and {paths['json']}")
    return 0

"""``twin analyze CONFIG --out DIR [--set key=value ...] [--force]``: connectivity tests."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze", help="test like-to-like and invariance connectivity hypotheses on a connectome",
        description="Build the edge table (connectome x functional profiles x quality metrics), fit the "
                    "synaptic-scale (Poisson) and axonal-scale (Tweedie) slopes per projection, per-neuron "
                    "paired tests, binned trends, synapse size and invariance tests (Benjamini-Hochberg within "
                    "families); writes DIR/edges.parquet, DIR/binned.parquet and DIR/results.json.")
    p.add_argument("config", help="analysis TOML (experiments/analyze/demo.toml, tiny.toml)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be empty unless --force)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. connectome=sim/connectome or n_boot=200; repeatable")
    p.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.add_argument("--edges-only", action="store_true",
                   help="only write DIR/edges.parquet, built in blocks of presynaptic neurons and streamed "
                        "(memory bounded by a block, not by pre x post); analyse it later with --set edges=...")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from twin.analysis.config import load_analysis_config
    from twin.errors import InputError

    cfg = load_analysis_config(args.config, args.set)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out", "a folder", "a file")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise InputError(out, "--out", "an empty or new folder (or --force to overwrite)", "a non-empty folder")
    from twin.analysis.run import analyze, write_edges

    if args.edges_only:
        import pyarrow.parquet as pq

        path = write_edges(cfg, out / "edges.parquet", progress=not args.quiet)
        print(f"twin analyze: wrote {path} ({pq.read_metadata(path).num_rows} pairs)")
        return 0
    res = analyze(cfg, out, progress=not args.quiet)
    print(summary_table(res["tests"]))
    n_inc = sum(r["included"] for r in res["tests"])
    print(f"twin analyze: wrote {out} ({len(res['tests'])} tests, {n_inc} included)")
    return 0


def _f(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def summary_table(tests: list[dict[str, Any]]) -> str:
    """Short text table: the per-projection synaptic-scale slopes and the invariance tests."""
    rows = [r for r in tests if r.get("level", "projection") == "projection"
            and r["family"] in ("synaptic_scale", "synaptic_scale_glmm", "invariance")]
    head = f"{'test':58s} {'estimate':>9s} {'95% CI':>19s} {'p_adj':>9s} {'n_pre':>6s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ci = f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]" if r["included"] else "excluded"
        lines.append(f"{r['name'][:58]:58s} {_f(r['estimate']):>9s} {ci:>19s} {_f(r['p_adj'], 2):>9s} "
                     f"{_f(r['n_pre'], 6):>6s}")
    return "\n".join(lines)

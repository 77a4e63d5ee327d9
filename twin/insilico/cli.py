"""``twin insilico CONFIG (--model RUN_DIR | --truth SIM_DIR) --out DIR [--score SIM_DIR]``: run a
battery (and score it against the simulator's ground truth)."""

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
    p.add_argument("--score", metavar="SIM_DIR",
                   help="score the battery against the simulator's ground truth in SIM_DIR and print the "
                        "quality-bar numbers (also written to DIR/score.json); with --model the same battery "
                        "is first run on the planted neurons into DIR/truth (skipped when already there)")
    p.add_argument("--truth-response", choices=["observed", "rate"], default="observed",
                   help="what the planted neurons answer with --truth and --score: 'observed' (default), the "
                        "expected observed activity, what a twin trained on the recordings predicts (the "
                        "like-for-like yardstick for offset-sensitive indices such as gOSI); 'rate', the planted "
                        "rates. With --score and 'observed', the tuning experiment is also run on the rates "
                        "(DIR/truth_rate) and scored as *_rate")
    p.add_argument("--min-cc-norm", type=float, default=0.3,
                   help="with --score and --metrics: only neurons the twin predicts at least this well")
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

        model, source = load_truth_model(args.truth, args.truth_response), args.truth
    out = run_battery(cfg, model, args.out, progress=not args.quiet, inputs=[args.config], metrics=args.metrics)
    print(f"twin insilico: wrote {out} (model {source})")
    if args.score:
        import json

        from twin.insilico.score import format_score, score_battery
        from twin.io import write_text_atomic

        truth_dir, rate_dir = out, None
        if args.model:   # the same battery on the planted neurons: the yardstick for emergent numbers
            from twin.insilico.battery import run_truth_batteries

            truth_dir, rate_dir = run_truth_batteries(cfg, args.score, out, args.truth_response,
                                                      progress=not args.quiet, inputs=[args.config])
        s = score_battery(out, args.score, truth_dir, args.metrics, min_cc_norm=args.min_cc_norm,
                          rate_battery_dir=rate_dir)
        write_text_atomic(out / "score.json", json.dumps(s, indent=2))
        print(format_score(s))
    return 0

"""How a run's fit to training trials and to validation trials grew over its checkpoints, by how
well the planted neurons themselves are predictable (a simulated mouse only).

    .venv/bin/twin train experiments/train/demo.toml --out RUN --set train.keep_checkpoints=30
    .venv/bin/twin evaluate RUN --out EVAL --truth demo_out/simulate
    .venv/bin/python experiments/train/fit_gap.py RUN EVAL/truth_metrics.h5 [TRAIN_TRIALS]

For every checkpoint kept in RUN, each neuron's mean Pearson correlation of the prediction with
single trials (after the burn-in) on the first TRAIN_TRIALS training trials (default 24) and on
all validation trials, averaged within quartiles of the planted neurons' correlation to the
average on held-out natural movies. A quartile whose training correlation rises while its
validation correlation stays flat is fitting noise (experiments/train/demo.toml, 2026-12-05).
"""

from __future__ import annotations

import sys
from pathlib import Path


def _restore_params(checkpoint: Path, like: dict) -> dict:
    """``like`` (a pure state dict of the run's model) with the checkpoint's trained parameters."""
    import jax
    import orbax.checkpoint as ocp

    raw = ocp.StandardCheckpointer().restore(checkpoint.absolute())["params"]
    out = jax.tree_util.tree_map(lambda x: x, like)

    def put(dst: dict, src: dict) -> None:
        for k, v in src.items():
            key = k if k in dst else int(k)   # Orbax stores list indices as strings
            if isinstance(v, dict):
                put(dst[key], v)
            else:
                dst[key] = v

    put(out, raw)
    return out


def checkpoint_fits(run: Path, n_train: int = 24):
    """One row per (kept checkpoint, neuron): step, recording_id, unit_id and the mean per-neuron
    single-trial correlation on the first ``n_train`` training trials and on all validation trials
    (the validation figure is what training logged as ``val_corr`` at that step, per neuron)."""
    from dataclasses import fields, replace

    import jax
    import pandas as pd
    from flax import nnx

    from twin.model.load import load_twin_module
    from twin.train.data import load_scan, resolve_recordings
    from twin.train.evaluation import corr_per_neuron
    from twin.train.loop import predict_trials
    from twin.train.run_dir import read_json

    cfg = read_json(run / "run.json")
    burn_in = int(cfg["train"]["burn_in"])
    model, _ = load_twin_module(run)
    graphdef, state = nnx.split(model)
    like = nnx.to_pure_dict(state)
    ckpts = sorted((run / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    tiers = {}
    for p in resolve_recordings(cfg["data"]["recordings"], cfg["data"]["include"]):
        meta, t = load_scan(p)
        train = t["train"]
        first = {f.name: getattr(train, f.name)[:n_train] for f in fields(train) if f.name != "recording_id"}
        tiers[meta.recording_id] = {"train": replace(train, **first), "validation": t["validation"]}
    predict = {rid: jax.jit(lambda st, x, b, rid=rid: nnx.merge(graphdef, st)(x, rid, b)) for rid in tiers}
    units = pd.read_parquet(run / "units.parquet")
    rows = []
    for ck in ckpts:
        st = nnx.split(model)[1]
        nnx.replace_by_pure_dict(st, _restore_params(ck, like))
        for rid, by_tier in tiers.items():
            got = {tier: corr_per_neuron(predict_trials(lambda x, b, rid=rid: predict[rid](st, x, b), d, 8),
                                         d.response, d.n_frames, burn_in)
                   for tier, d in by_tier.items()}
            uid = units.loc[units.recording_id.astype(str) == rid, "unit_id"].to_numpy()
            rows.append(pd.DataFrame({"step": int(ck.name.split("_")[1]), "recording_id": rid, "unit_id": uid,
                                      "train": got["train"], "validation": got["validation"]}))
    return pd.concat(rows) if rows else pd.DataFrame(columns=["step", "recording_id", "unit_id", "train", "validation"])


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    import pandas as pd

    from twin.evaluate import open_metrics

    run, truth_path = Path(argv[0]), Path(argv[1])
    fits = checkpoint_fits(run, int(argv[2]) if len(argv) > 2 else 24)
    if fits.empty:
        print(f"{run}: no checkpoints kept (train with --set train.keep_checkpoints=30)")
        return 1
    ds = open_metrics(truth_path).sel(stimulus_type="natural_movie")
    truth = pd.DataFrame({"recording_id": ds.recording_id.values.astype(str), "unit_id": ds.unit_id.values,
                          "planted": ds.correlation_to_average.values})
    df = fits.merge(truth, on=["recording_id", "unit_id"])
    df["quartile"] = pd.qcut(df.planted, 4, labels=False) + 1
    table = df.groupby(["quartile", "step"])[["train", "validation"]].mean().unstack(0).round(3)
    print(f"mean single-trial correlation by quartile of the planted neurons' correlation to average "
          f"(medians {df.groupby('quartile').planted.median().round(2).tolist()})")
    print(table.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

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


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    import jax
    import jax.numpy as jnp
    import numpy as np
    import pandas as pd
    from flax import nnx

    from twin.evaluate import open_metrics
    from twin.model.load import load_twin_module
    from twin.train.data import load_scan, resolve_recordings
    from twin.train.evaluation import corr_per_neuron
    from twin.train.run_dir import read_json

    run, truth_path = Path(argv[0]), Path(argv[1])
    n_train = int(argv[2]) if len(argv) > 2 else 24
    cfg = read_json(run / "run.json")
    burn_in = int(cfg["train"]["burn_in"])
    model, _ = load_twin_module(run)
    graphdef, state = nnx.split(model)
    like = nnx.to_pure_dict(state)
    ckpts = sorted((run / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    if not ckpts:
        print(f"{run}: no checkpoints kept (train with --set train.keep_checkpoints=30)")
        return 1
    tiers = {}
    for p in resolve_recordings(cfg["data"]["recordings"], cfg["data"]["include"]):
        meta, t = load_scan(p)
        tiers[meta.recording_id] = t
    predict = {rid: jax.jit(lambda st, x, b, rid=rid: nnx.merge(graphdef, st)(x, rid, b)) for rid in tiers}
    units = pd.read_parquet(run / "units.parquet")
    rows = []
    for ck in ckpts:
        st = nnx.split(model)[1]
        nnx.replace_by_pure_dict(st, _restore_params(ck, like))
        for rid, t in tiers.items():
            got = {}
            for tier, n in (("train", n_train), ("validation", None)):
                d = t[tier]
                n = len(d.stimulus) if n is None else min(n, len(d.stimulus))
                pred = np.concatenate([np.asarray(predict[rid](st, jnp.asarray(d.stimulus[i:i + 8], jnp.float32),
                                                               d.behaviour(slice(i, min(i + 8, n)))))
                                       for i in range(0, n, 8)])
                got[tier] = corr_per_neuron(pred[:n], d.response[:n], d.n_frames[:n], burn_in)
            uid = units.loc[units.recording_id.astype(str) == rid, "unit_id"].to_numpy()
            rows.append(pd.DataFrame({"step": int(ck.name.split("_")[1]), "recording_id": rid, "unit_id": uid,
                                      "train": got["train"], "validation": got["validation"]}))
    ds = open_metrics(truth_path).sel(stimulus_type="natural_movie")
    truth = pd.DataFrame({"recording_id": ds.recording_id.values.astype(str), "unit_id": ds.unit_id.values,
                          "planted": ds.correlation_to_average.values})
    df = pd.concat(rows).merge(truth, on=["recording_id", "unit_id"])
    df["quartile"] = pd.qcut(df.planted, 4, labels=False) + 1
    table = df.groupby(["quartile", "step"])[["train", "validation"]].mean().unstack(0).round(3)
    print(f"mean single-trial correlation by quartile of the planted neurons' correlation to average "
          f"(medians {df.groupby('quartile').planted.median().round(2).tolist()})")
    print(table.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

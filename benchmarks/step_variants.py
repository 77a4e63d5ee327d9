"""The demo twin's training step (loss and gradients, both scans) under config overrides.

Builds the twin of a training config (default ``experiments/train/demo.toml``) on its own data,
once per variant, and times ``Trainer._loss_grad`` on one fixed batch: the median of ``--steps``
calls after two warm-up calls. Each variant is a ``;``-separated list of ``--set`` overrides; the
empty string is the config as it is. Prints each variant's median and its ratio to the first.

    .venv/bin/python benchmarks/step_variants.py "" "model.core.gru_kernel=1" \\
        "model.readout.components=1" "model.core.gru_kernel=1;model.readout.components=1"

To time a step as an ensemble member runs it (one core, one thread), pin the process:
``taskset -c 0`` with ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1"`` (and tcmalloc preloaded, as the ``twin`` command does). The
config's data must exist (``make demo``'s simulation for demo.toml; paths relative to the working
directory, as ``twin train`` reads them). The readout positions start where the model puts them
without the energy start (the step's time does not depend on them). What a variant costs in
accuracy needs a training run; this measures only time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed_common import median_seconds  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="*", default=[""], help="';'-separated KEY=VALUE overrides per variant")
    ap.add_argument("--config", default=str(ROOT / "experiments" / "train" / "demo.toml"))
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()

    import jax

    from twin.config import load_config
    from twin.model.twin_model import TwinModel
    from twin.train.config import TrainConfig
    from twin.train.data import load_training_scans, resolve_recordings, scan_spec, stimulus_stats
    from twin.train.loop import Trainer, loss_weights_and_floors

    base = load_config(Path(a.config), TrainConfig)
    metas, train, _ = load_training_scans(resolve_recordings(base.data.recordings, base.data.include),
                                          base.data.recordings[0])
    rids = list(metas)
    mean, std = stimulus_stats(list(train.values()))
    first = None
    for variant in a.variants:
        cfg = load_config(Path(a.config), TrainConfig, [s for s in variant.split(";") if s])
        specs = [scan_spec(metas[r], train[r], cfg.model.readout.grid_predictor) for r in rids]
        model = TwinModel(cfg.model, specs, stimulus_mean=mean, stimulus_std=std, seed=cfg.seed)
        weights, floors = loss_weights_and_floors(cfg, specs)      # as twin train builds its Trainer
        trainer = Trainer(cfg, model, rids, weights=weights, floors=floors)
        batch, key = trainer.shard_batch(trainer.draw(train, 0)), trainer.step_key(0)
        sec = median_seconds(lambda: jax.block_until_ready(trainer._loss_grad(trainer.params, batch, key)),
                             a.steps, warmup=2)
        first = first or sec
        print(f"{variant or '(config as is)'}: {sec:.3f} s per step ({sec / first:.2f}x the first)", flush=True)


if __name__ == "__main__":
    main()

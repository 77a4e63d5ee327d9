"""The readout refit's design pass: reading every channel of the Gaussian-pooled readout, gathers vs
one matmul.

:meth:`twin.model.readout.ScanReadout.design` gives, per neuron and frame, each readout component's
channels pooled over its Gaussian's points (the columns the refit's ridge regressions fit). With
``pooling`` it can gather the 4 K corners of every point for every channel (``POOL_PATH =
"sample"``) or scatter each component's point weights onto the map's pixels and read all channels by
one matmul (:func:`twin.model.readout.pooled_by_matmul`, what ``"auto"`` picks at the demo's size).
This times both, jitted, on demo.toml's model (random weights, 200 neurons, shifter moving the grid)
for a chunk of the refit's 4 trials, next to the core's features alone, and checks they agree. Run:

    .venv/bin/python benchmarks/refit_design.py [--trials 4] [--frames 50] [--steps 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed_common import median_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--neurons", type=int, default=200)
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    import twin.model.readout as ro
    from twin.config import load_config
    from twin.model.twin_model import ScanSpec, TwinModel
    from twin.train.config import TrainConfig

    cfg = load_config(ROOT / "experiments" / "train" / "demo.toml", TrainConfig).model
    model = TwinModel(cfg, [ScanSpec("b-1-1", a.neurons)], seed=0)
    r = model.readouts["b-1-1"]
    last = r.shifter.layers[-1]
    last.kernel[...] = jnp.full_like(last.kernel[...], 0.05)          # a grid that moves with the eye
    rng = np.random.default_rng(0)
    stim = jnp.asarray(rng.uniform(0, 255, (a.trials, a.frames, 36, 64)), jnp.float32)
    beh = {"running": jnp.asarray(rng.uniform(0, 20, (a.trials, a.frames)), jnp.float32),
           "pupil": jnp.asarray(rng.uniform(10, 30, (a.trials, a.frames)), jnp.float32),
           "eye_position": jnp.asarray(rng.normal(0, 3, (a.trials, a.frames, 2)), jnp.float32)}
    graphdef, state = nnx.split(model)

    def build(path):
        ro.POOL_PATH = path           # read at trace time: one jitted function per path

        @jax.jit
        def design(st, s, b):
            m = nnx.merge(graphdef, st)
            return m.readouts["b-1-1"].design(m.features(s), b)[0]

        jax.block_until_ready(design(state, stim, beh))
        return design

    @jax.jit
    def features(st, s):
        return nnx.merge(graphdef, st).features(s)

    t_feat = median_seconds(lambda: jax.block_until_ready(features(state, stim)), a.steps)
    out, times = {}, {}
    for path in ("sample", "auto"):
        f = build(path)
        times[path] = median_seconds(lambda f=f: jax.block_until_ready(f(state, stim, beh)), a.steps)
        out[path] = np.asarray(f(state, stim, beh))
    ro.POOL_PATH = "auto"
    shape = out["auto"].shape
    diff = float(np.abs(out["auto"] - out["sample"]).max() / max(np.abs(out["sample"]).max(), 1e-12))
    print(f"design of {a.trials} trials x {a.frames} frames, {a.neurons} neurons, {shape[-2]} components x "
          f"{shape[-1]} channels, pooling {cfg.readout.pooling} x {cfg.readout.pooling} points")
    print(f"  core features alone        {t_feat * 1e3:8.1f} ms")
    print(f"  design, gathers (sample)   {times['sample'] * 1e3:8.1f} ms  (readout part "
          f"{(times['sample'] - t_feat) * 1e3:.1f} ms)")
    print(f"  design, matmul (auto)      {times['auto'] * 1e3:8.1f} ms  (readout part "
          f"{(times['auto'] - t_feat) * 1e3:.1f} ms)")
    print(f"  whole design {times['sample'] / times['auto']:.2f}x faster, readout part "
          f"{(times['sample'] - t_feat) / max(times['auto'] - t_feat, 1e-9):.1f}x; max relative difference {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time the twin's jitted training step on this machine (CPU) at a given size.

    .venv/bin/python experiments/train/step_time.py --size demo
    .venv/bin/python experiments/train/step_time.py --size sensorium   # PERFORMANCE.md's peer size

``sensorium``: batch 32 static images (1 frame) of 36x64, 8,000 neurons in one scan, 4-layer
64-channel core (kernels 9 then 7), ConvGRU 64 channels. ``demo``: experiments/train/demo.toml's
sizes (2 scans x 4 clips x 20 frames, 36x64, 200 neurons each). Prints the median step time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SIZES = {
    "sensorium": dict(scans=1, batch=32, frames=1, hw=(36, 64), units=8000,
                      core=dict(channels=64, layers=4, kernel=(9, 7), temporal_kernel=1, gru_channels=64,
                                gru_kernel=3)),
    "demo": dict(scans=2, batch=4, frames=20, hw=(36, 64), units=200,
                 core=dict(channels=8, layers=2, kernel=(7, 5), temporal_kernel=5, gru_channels=8, gru_kernel=3,
                           downsample=2)),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=sorted(SIZES), default="demo")
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    from twin.model.config import CoreConfig, ModelConfig
    from twin.model.twin_model import ScanSpec, TwinModel
    from twin.train.config import OptimConfig, TrainConfig
    from twin.train.loop import Trainer

    s = SIZES[args.size]
    cfg = TrainConfig(model=ModelConfig(core=CoreConfig(**s["core"])),
                      train=OptimConfig(batch_size=s["batch"], burn_in=0))
    rids = [f"a-1-{i}" for i in range(s["scans"])]
    model = TwinModel(cfg.model, [ScanSpec(r, s["units"]) for r in rids])
    tr = Trainer(cfg, model, rids)
    rng = np.random.default_rng(0)
    b, t, (h, w), n = s["batch"], s["frames"], s["hw"], s["units"]
    batches = {r: {"stimulus": rng.uniform(0, 255, (b, t, h, w)).astype(np.float32),
                   "response": rng.poisson(1.0, (b, t, n)).astype(np.float32), "mask": np.ones((b, t), np.float32),
                   "running": rng.random((b, t)).astype(np.float32), "pupil": rng.random((b, t)).astype(np.float32),
                   "eye_position": rng.normal(size=(b, t, 2)).astype(np.float32)} for r in rids}
    t0 = time.perf_counter()
    tr.step(batches, 0, 1e-3)
    print(f"compile + first step: {time.perf_counter() - t0:.2f} s")
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        tr.step(batches, i + 1, 1e-3)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    frames = b * t * len(rids)
    print(f"{args.size}: median {med:.3f} s/step over {args.steps} steps ({frames / med:.1f} frames/s)")


if __name__ == "__main__":
    main()

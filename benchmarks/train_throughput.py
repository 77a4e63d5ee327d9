"""Training throughput of the twin vs a PyTorch peer of the same network, on this machine.

One run prints, per size: the twin's training step time and frames/s (frames = clips x
frames per clip through one optimiser step), the achieved FLOP/s of the step (analytic count of
the network's convolutions and readout, x3 for forward + backward; XLA's own count is printed
beside it), this machine's dense fp32 matmul FLOP/s measured in the same run (the efficiency
ratio), the PyTorch peer's frames/s on the same data (2 threads) and twin / peer speed.

    .venv/bin/python benchmarks/train_throughput.py [--size demo|sensorium|both] [--quick]
        [--config experiments/train/demo.toml] [--json OUT.json] [--twin-conv auto|xla|fft]

Sizes: ``demo`` takes its model and batch sizes from a training config (default
experiments/train/demo.toml, else tiny.toml); ``sensorium`` is PERFORMANCE.md's size (batch
32, 36x64, 4-layer 64-channel core, 8000 neurons) with ``--frames`` frames per clip.
Runs with tcmalloc preloaded where the system has it, as the ``twin`` command does
(twin.allocator; ``TWIN_ALLOCATOR=system`` for glibc's malloc) and prints which.
Not run by the tests; needs torch (``pip install torch==2.13.0``; neuralpredictors 0.3.0
optional) for the peer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from speed_common import jax_matmul_flops, median_seconds  # noqa: E402
from torch_peer import PeerSpec, forward_flops, make_batch, train_step_flops  # noqa: E402

RID = "bench-0-0"


def spec_from_config(path: Path, n_neurons: int, height: int, width: int) -> PeerSpec:
    """A benchmark size from a training TOML's model and batch settings."""
    from twin.config import load_config
    from twin.model.config import layer_kernels
    from twin.train.config import TrainConfig

    cfg = load_config(path, TrainConfig)
    core, o = cfg.model.core, cfg.train
    return PeerSpec(batch=o.batch_size, frames=o.clip_frames, height=height, width=width,
                    n_neurons=n_neurons, channels=(core.channels,) * core.layers,
                    spatial_kernels=tuple(layer_kernels(core)),
                    temporal_kernels=(core.temporal_kernel,) * core.layers,
                    rnn_channels=core.gru_channels, rnn_kernel=core.gru_kernel,
                    rnn_reset_after=core.gru_reset_after, rnn_hidden_kernel=core.gru_hidden_kernel,
                    skip_features=core.skip_features,
                    shifter_hidden=cfg.model.shifter.hidden, shifter_layers=cfg.model.shifter.layers,
                    modulator_hidden=cfg.model.modulator.hidden, burn_in=o.burn_in, lr=o.lr,
                    downsample=core.downsample, input_downsample=core.input_downsample,
                    normalization=core.normalization == "divisive", norm_pool_px=core.norm_pool_px)


def twin_config(spec: PeerSpec, conv_impl: str = "auto"):
    """The twin's TrainConfig for a benchmark size (all kernels of one size after the first);
    ``conv_impl`` is its model.core.conv_impl (--twin-conv: the same maths as the peer's)."""
    from twin.model.config import CoreConfig, ModelConfig, ModulatorConfig, ShifterConfig
    from twin.train.config import OptimConfig, TrainConfig

    if len(set(spec.channels)) != 1 or len(set(spec.temporal_kernels)) != 1:
        raise ValueError("the twin's core has one channel count and one temporal kernel for all layers")
    core = CoreConfig(channels=spec.channels[0], layers=len(spec.channels), kernel=tuple(spec.spatial_kernels),
                      temporal_kernel=spec.temporal_kernels[0], gru_channels=spec.rnn_channels,
                      gru_kernel=spec.rnn_kernel, gru_reset_after=spec.rnn_reset_after,
                      gru_hidden_kernel=spec.rnn_hidden_kernel, skip_features=spec.skip_features, downsample=spec.downsample,
                      input_downsample=spec.input_downsample,
                      normalization="divisive" if spec.normalization else "none", norm_pool_px=spec.norm_pool_px,
                      conv_impl=conv_impl)
    model = ModelConfig(core=core, shifter=ShifterConfig(hidden=spec.shifter_hidden, layers=spec.shifter_layers),
                        modulator=ModulatorConfig(hidden=spec.modulator_hidden))
    train = OptimConfig(batch_size=spec.batch, clip_frames=spec.frames, burn_in=spec.burn_in, lr=spec.lr)
    return TrainConfig(seed=0, model=model, train=train)


def numpy_batch(spec: PeerSpec) -> dict[str, Any]:
    """The benchmark's data as the twin's batch dict (the peer gets the same numbers)."""
    import numpy as np

    t = make_batch(spec)
    return {
        "stimulus": (t["frames"].numpy() * 64.0 + 127.5).astype(np.float32),  # twin normalises inside
        "response": t["response"].numpy(),
        "mask": np.ones((spec.batch, spec.frames), np.float32),
        "running": t["behaviour"][..., 0].numpy(), "pupil": t["behaviour"][..., 1].numpy(),
        "eye_position": t["eye"].numpy(),
    }


def time_twin(spec: PeerSpec, steps: int, conv_impl: str = "auto") -> dict[str, float]:
    """Median seconds per optimiser step of the twin's own jitted training step (twin.train)."""
    import jax

    from twin.model.twin_model import ScanSpec, TwinModel
    from twin.train.loop import Trainer

    cfg = twin_config(spec, conv_impl)
    model = TwinModel(cfg.model, [ScanSpec(RID, spec.n_neurons)], seed=0)
    trainer = Trainer(cfg, model, [RID])
    batches = {RID: numpy_batch(spec)}
    t0 = time.perf_counter()
    trainer.step(batches, 0, spec.lr)  # compiles
    compile_s = time.perf_counter() - t0
    counter = iter(range(1, 10 ** 6))
    step_s = median_seconds(lambda: trainer.step(batches, next(counter), spec.lr), steps, warmup=1)
    xla_flops = float("nan")
    try:
        lowered = trainer._step.lower(trainer.params, trainer.opt_state, trainer.shard_batch(batches),
                                      trainer.step_key(0), jax.numpy.float32(spec.lr))
        cost = lowered.compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        xla_flops = float(cost.get("flops", float("nan")))
    except Exception as e:  # cost analysis is best effort (backend dependent)
        print(f"  (XLA cost analysis unavailable: {type(e).__name__}: {e})")
    return {"step_s": step_s, "frames_per_s": spec.batch * spec.frames / step_s,
            "compile_s": compile_s, "xla_flops_per_step": xla_flops}


def run_size(name: str, spec: PeerSpec, steps: int, peak: float, peer: bool, threads: int,
             conv_impl: str = "auto") -> dict:
    flops = train_step_flops(spec)
    print(f"\n== {name}: batch {spec.batch} x {spec.frames} frames of {spec.height}x{spec.width}, "
          f"core {len(spec.channels)}x{spec.channels[0]} ch (kernels {list(spec.spatial_kernels)}, "
          f"temporal {spec.temporal_kernels[0]}), GRU {spec.rnn_channels}"
          f"{f', frames pooled {spec.input_downsample}x' if spec.input_downsample > 1 else ''}"
          f"{f' on a /{spec.downsample} map' if spec.downsample > 1 else ''}, {spec.n_neurons} neurons")
    print(f"   analytic work: {flops / 1e9:.1f} GFLOP per step "
          f"({flops / (spec.batch * spec.frames) / 1e9:.2f} GFLOP per frame)", flush=True)
    row: dict[str, Any] = {"size": name, "spec": dataclasses.asdict(spec), "gflop_per_step": flops / 1e9}
    twin = time_twin(spec, steps, conv_impl)
    row["twin"] = twin
    achieved = flops / twin["step_s"]
    row["twin_gflops"] = achieved / 1e9
    row["efficiency_vs_matmul"] = achieved / peak
    print(f"   twin : {twin['step_s']:.3f} s/step  {twin['frames_per_s']:.1f} frames/s  "
          f"{achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.1%} of matmul peak "
          f"(XLA counts {twin['xla_flops_per_step'] / 1e9:.1f} GFLOP/step; compile {twin['compile_s']:.1f} s)",
          flush=True)
    if peer:
        from torch_peer import HAVE_NEURALPREDICTORS, time_training

        import torch

        tb = make_batch(spec)
        res = time_training(spec, steps=steps, warmup=1, threads=threads, batch=tb)
        row["peer"] = res
        row["twin_over_peer"] = res["step_s"] / twin["step_s"]
        print(f"   peer : {res['step_s']:.3f} s/step  {res['frames_per_s']:.1f} frames/s  "
              f"{flops / res['step_s'] / 1e9:.1f} GFLOP/s (PyTorch {torch.__version__}, {threads} threads, "
              f"{'neuralpredictors FullGaussian2d + MLP shifter' if HAVE_NEURALPREDICTORS else 'own readout'})")
        print(f"   twin / peer speed: {row['twin_over_peer']:.2f}x", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=("demo", "sensorium", "both"), default="both")
    p.add_argument("--quick", action="store_true", help="fewer timed steps (and 1024^3 matmul)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (median)")
    p.add_argument("--config", type=Path, default=None, help="training TOML for the demo size")
    p.add_argument("--demo-neurons", type=int, default=200, help="neurons at the demo size (default sim: 200 per scan)")
    p.add_argument("--frames", type=int, default=4, help="frames per clip at the sensorium size")
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads for the peer")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--twin-conv", choices=("auto", "xla", "fft"), default="auto",
                   help="the twin's model.core.conv_impl (spatial convolutions: auto, XLA or the FFT)")
    p.add_argument("--what-if", action="store_true",
                   help="time the twin with the layer implementations of twin_whatif.py patched in")
    args = p.parse_args(argv)
    if argv is None:
        # the allocator the `twin` command uses (twin.allocator): tcmalloc where the system has it,
        # for the twin and the peer alike (one process); TWIN_ALLOCATOR=system for glibc's malloc
        from twin.allocator import reexec_with_tcmalloc

        reexec_with_tcmalloc([sys.executable, *sys.argv])
    from twin.allocator import in_use

    print(f"host memory allocator: {in_use()}; twin's spatial convolutions: {args.twin_conv}")
    if args.what_if:
        import twin_whatif

        print(f"what-if layers patched in (max difference to the twin's: {twin_whatif.check_equivalence():.2e})")
        twin_whatif.apply()
    steps = args.steps or (2 if args.quick else 5)

    import jax

    print(f"jax {jax.__version__} on {jax.devices()}; ", end="")
    peak = jax_matmul_flops(1024 if args.quick else 2048, steps=3 if args.quick else 5)
    print(f"dense fp32 matmul peak measured now: {peak / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    if args.size in ("demo", "both"):
        cfg = args.config
        if cfg is None:
            cfg = next(c for c in (HERE.parent / "experiments/train/demo.toml",
                                   HERE.parent / "experiments/train/tiny.toml") if c.is_file())
        spec = spec_from_config(cfg, args.demo_neurons, 36, 64)
        rows.append(run_size(f"demo ({cfg.name})", spec, steps, peak, not args.no_peer, args.threads,
                             args.twin_conv))
    if args.size in ("sensorium", "both"):
        spec = dataclasses.replace(PeerSpec(), frames=args.frames)
        rows.append(run_size("sensorium", spec, max(1, steps - 2) if args.quick else steps, peak,
                             not args.no_peer, args.threads, args.twin_conv))
    if args.json:
        args.json.write_text(json.dumps({"matmul_gflops": peak / 1e9, "allocator": in_use(), "sizes": rows,
                                         "flops_by_layer": {r["size"]: forward_flops(PeerSpec(**{
                                             k: tuple(v) if isinstance(v, list) else v
                                             for k, v in r["spec"].items()})) for r in rows}},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-layer forward+backward cost of the twin's architecture, JAX (XLA CPU) vs PyTorch.

Times each layer family of the network in :mod:`torch_peer` on its own, at a benchmark size,
in both frameworks and in the JAX implementation options that matter on CPU (XLA convolution
vs convolution written as matrix products), so the model author can pick layer
implementations by measurement. Run:

    .venv/bin/python benchmarks/layer_profile.py [--size demo|sensorium] [--frames T]

Prints milliseconds per forward+backward and achieved GFLOP/s per layer. Not run by tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed_common import median_seconds  # noqa: E402
from torch_peer import PeerSpec, forward_flops  # noqa: E402

SIZES = {
    # demo.toml's core on its frames pooled 2x (18 x 32), one scan's batch of 4 clips (the skip
    # features change only the readout's input, which this profile samples from the GRU's channels;
    # the divisive normalisation after the first layer is not profiled: 0.36 of 9.8 GFLOP forward)
    "demo": PeerSpec(batch=4, frames=30, height=18, width=32, n_neurons=200, channels=(32, 32),
                     spatial_kernels=(7, 5), temporal_kernels=(5, 5), rnn_channels=32, rnn_reset_after=True,
                     rnn_hidden_kernel=1),
    "sensorium": PeerSpec(),
}


def _gru_flops(spec: PeerSpec) -> float:
    """Forward FLOPs of the ConvGRU (input and hidden convolutions), as the peer counts them."""
    f = forward_flops(spec)
    return f["rnn.input"] + f["rnn.hidden"]


def _jax_cases(spec: PeerSpec) -> list[tuple[str, float, Callable, tuple]]:
    """The twin's own layer implementations (twin.model) and the alternatives worth knowing."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from twin.model.core import (ConvGRU, causal_temporal_conv, conv2d, conv2d_fft, conv2d_im2col, use_fft,
                                 uses_winograd)
    from twin.model.readout import bilinear_sample

    b, t, h, w = spec.batch, spec.frames, spec.height, spec.width
    key = iter(jax.random.split(jax.random.key(0), 64))
    cases = []
    c_in = 1
    for i, (c, k, kt) in enumerate(zip(spec.channels, spec.spatial_kernels, spec.temporal_kernels)):
        x = jax.random.normal(next(key), (b * t, h, w, c_in))
        wk = jax.random.normal(next(key), (k, k, c_in, c)) * 0.05
        fl = 2.0 * b * t * h * w * c_in * c * k * k
        fft = use_fft("auto", 1, c_in, k)       # what conv_impl = "auto" takes on this backend
        cases.append((f"core{i}.spatial {k}x{k} {c_in}->{c} twin ({'FFT' if fft else 'XLA conv'})", fl,
                      conv2d_fft if fft else conv2d, (x, wk)))
        cases.append((f"core{i}.spatial {k}x{k} {c_in}->{c} alt: {'XLA conv' if fft else 'FFT'}", fl,
                      conv2d if fft else conv2d_fft, (x, wk)))
        x5 = jax.random.normal(next(key), (b, t, h, w, c))
        wt = jax.random.normal(next(key), (kt, c, c)) * 0.05

        def temporal_conv3d(x, wt):
            xp = jnp.pad(x, ((0, 0), (wt.shape[0] - 1, 0), (0, 0), (0, 0), (0, 0)))
            return jax.lax.conv_general_dilated(xp, jnp.flip(wt, 0)[:, None, None], (1, 1, 1), "VALID",
                                                dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))

        fl = 2.0 * b * t * h * w * c * c * kt
        cases.append((f"core{i}.temporal k{kt} twin ({'1-D conv' if t > 2 * kt else 'matmuls'})", fl, causal_temporal_conv, (x5, wt)))
        cases.append((f"core{i}.temporal k{kt} alt: xla conv3d", fl, temporal_conv3d, (x5, wt)))
        c_in = c
    c = spec.rnn_channels
    kr = spec.rnn_kernel
    x5 = jax.random.normal(next(key), (b, t, h, w, c_in))
    gru = ConvGRU(c_in, c, kr, rng=np.random.default_rng(0), reset_after=spec.rnn_reset_after,
                  k_hidden=spec.rnn_hidden)
    graphdef, state = nnx.split(gru)

    def gru_twin(x, state):
        return nnx.merge(graphdef, state)(x)

    def gru_unrolled(x, state):
        # the same cell, time loop unrolled in Python (no lax.scan around the convolutions)
        m = nnx.merge(graphdef, state)
        bb, tt, hh, ww, cc = x.shape
        ch = m.ch
        gx = conv2d(x.reshape(bb * tt, hh, ww, cc), m.w_x[...]).reshape(bb, tt, hh, ww, 3 * ch) + m.bias[...]
        hid = jnp.zeros((bb, hh, ww, ch), x.dtype)
        outs = []
        for j in range(tt):
            g = gx[:, j]
            gh = conv2d(hid, m.w_h[...])
            z = jax.nn.sigmoid(g[..., :ch] + gh[..., :ch])
            r = jax.nn.sigmoid(g[..., ch:2 * ch] + gh[..., ch:])
            n = jnp.tanh(g[..., 2 * ch:] + conv2d(r * hid, m.w_hn[...]))
            hid = (1.0 - z) * hid + z * n
            outs.append(hid)
        return jnp.stack(outs, 1)

    fl = _gru_flops(spec)
    def gru_scan_with(conv):
        # the twin's scan with ``conv`` for every GRU convolution instead of core.gru_conv's choice
        def run(x, state):
            import twin.model.core as core

            saved = core.gru_conv
            core.gru_conv = conv
            try:
                return nnx.merge(graphdef, state)(x)
            finally:
                core.gru_conv = saved
        return run

    winograd = uses_winograd(gru.w_x[...])
    cases.append((f"rnn ConvGRU {kr}x{kr} twin (scan, {'Winograd' if winograd else 'im2col'})", fl, gru_twin,
                  (x5, state)))
    if winograd:
        cases.append((f"rnn ConvGRU {kr}x{kr} alt: scan, im2col", fl, gru_scan_with(conv2d_im2col), (x5, state)))
    if spec.channels[-1] <= 16:  # at 64 channels this one takes minutes (what not to do on CPU)
        cases.append((f"rnn ConvGRU {kr}x{kr} alt: scan, xla conv", fl, gru_scan_with(conv2d), (x5, state)))
    cases.append((f"rnn ConvGRU {kr}x{kr} alt: unrolled loop", fl, gru_unrolled, (x5, state)))
    n = spec.n_neurons
    feat = jax.random.normal(next(key), (b * t, h, w, c))
    grid = jax.random.uniform(next(key), (b * t, n, 2), minval=-1, maxval=1)
    fw = jax.random.normal(next(key), (n, c)) * 0.1

    def readout_twin(x, grid, fw):
        return jnp.einsum("mnc,nc->mn", bilinear_sample(x, grid), fw)

    def readout_one_gather(x, grid, fw):
        m_, hh, ww, cc = x.shape
        px = (jnp.clip(grid[..., 0], -1, 1) + 1) * 0.5 * (ww - 1)
        py = (jnp.clip(grid[..., 1], -1, 1) + 1) * 0.5 * (hh - 1)
        x0 = jnp.clip(jnp.floor(px), 0, ww - 2)
        y0 = jnp.clip(jnp.floor(py), 0, hh - 2)
        fx, fy = px - x0, py - y0
        base = y0.astype(jnp.int32) * ww + x0.astype(jnp.int32) + (jnp.arange(m_) * hh * ww)[:, None]
        idx = jnp.stack([base, base + 1, base + ww, base + ww + 1], -1)          # (M, N, 4)
        wts = jnp.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)
        v = x.reshape(m_ * hh * ww, cc).at[idx].get(mode="promise_in_bounds")   # (M, N, 4, C)
        return jnp.einsum("mnkc,mnk,nc->mn", v, wts, fw)

    fl = 2.0 * b * t * n * c * 5
    cases.append((f"readout {n} neurons twin (bilinear_sample)", fl, readout_twin, (feat, grid, fw)))
    cases.append((f"readout {n} neurons alt: 1 gather+einsum", fl, readout_one_gather, (feat, grid, fw)))
    return cases


def _torch_cases(spec: PeerSpec) -> list[tuple[str, float, Callable, tuple]]:
    import torch
    import torch.nn.functional as F

    from torch_peer import ConvGRU

    b, t, h, w = spec.batch, spec.frames, spec.height, spec.width
    cases = []
    c_in = 1
    for i, (c, k, kt) in enumerate(zip(spec.channels, spec.spatial_kernels, spec.temporal_kernels)):
        x = torch.randn(b, c_in, t, h, w, requires_grad=True)
        wk = (torch.randn(c, c_in, 1, k, k) * 0.05).requires_grad_()
        cases.append((f"core{i}.spatial {k}x{k} {c_in}->{c} conv3d", 2.0 * b * t * h * w * c_in * c * k * k,
                      lambda x, wk, k=k: F.conv3d(x, wk, padding=(0, k // 2, k // 2)), (x, wk)))
        x5 = torch.randn(b, c, t, h, w, requires_grad=True)
        wt = (torch.randn(c, c, kt, 1, 1) * 0.05).requires_grad_()
        cases.append((f"core{i}.temporal k{kt} conv3d", 2.0 * b * t * h * w * c * c * kt,
                      lambda x, wt, kt=kt: F.conv3d(F.pad(x, (0, 0, 0, 0, kt - 1, 0)), wt), (x5, wt)))
        c_in = c
    c = spec.rnn_channels
    gru = ConvGRU(c_in, c, spec.rnn_kernel, reset_after=spec.rnn_reset_after, k_hidden=spec.rnn_hidden)
    x5 = torch.randn(b, c_in, t, h, w, requires_grad=True)
    cases.append((f"rnn ConvGRU {spec.rnn_kernel}x{spec.rnn_kernel}", _gru_flops(spec), gru, (x5,)))
    n = spec.n_neurons
    feat = torch.randn(b * t, c, h, w, requires_grad=True)
    grid = (torch.rand(b * t, n, 1, 2) * 2 - 1).requires_grad_()
    fw = (torch.randn(1, c, n) * 0.1).requires_grad_()
    cases.append((f"readout grid_sample {n} neurons", 2.0 * b * t * n * c * 5,
                  lambda x, g, f: (F.grid_sample(x, g, align_corners=True).squeeze(-1) * f).sum(1),
                  (feat, grid, fw)))
    return cases


def profile(spec: PeerSpec, steps: int = 3, threads: int = 2) -> list[dict]:
    """Forward+backward ms and GFLOP/s (3x forward FLOPs) of each layer, both frameworks."""
    import jax
    import torch

    torch.set_num_threads(threads)
    rows = []
    for name, fl, fn, args in _jax_cases(spec):
        grad = jax.jit(jax.grad(lambda *a, fn=fn: (fn(*a) ** 2).mean(), argnums=tuple(range(len(args)))))
        sec = median_seconds(lambda: jax.block_until_ready(grad(*args)), steps)
        rows.append({"framework": "jax", "layer": name, "ms": sec * 1e3, "gflops": 3 * fl / sec / 1e9})
        print(f"jax   {name:45s} {sec * 1e3:9.1f} ms {3 * fl / sec / 1e9:7.1f} GFLOP/s", flush=True)
    for name, fl, fn, args in _torch_cases(spec):
        def run(fn=fn, args=args):
            for a in args:
                a.grad = None
            (fn(*args) ** 2).mean().backward()
        sec = median_seconds(run, steps)
        rows.append({"framework": "torch", "layer": name, "ms": sec * 1e3, "gflops": 3 * fl / sec / 1e9})
        print(f"torch {name:45s} {sec * 1e3:9.1f} ms {3 * fl / sec / 1e9:7.1f} GFLOP/s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="sensorium")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the size's)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args(argv)
    spec = SIZES[args.size]
    if args.frames:
        spec = dataclasses.replace(spec, frames=args.frames)
    if args.batch:
        spec = dataclasses.replace(spec, batch=args.batch)
    print(f"layer profile at {spec}")
    profile(spec, steps=args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())

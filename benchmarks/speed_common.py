"""Timing helpers shared by the benchmarks: medians of repeated runs and this machine's peak."""

from __future__ import annotations

import time
from typing import Callable


def median_seconds(fn: Callable[[], object], steps: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``steps`` calls after ``warmup`` calls.

    ``fn`` must block until its work is done (e.g. ``jax.block_until_ready``).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(steps, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def jax_matmul_flops(n: int = 2048, steps: int = 5) -> float:
    """Dense fp32 n x n x n matmul FLOP/s under jax.jit on this machine (2 n^3 per product)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    sec = median_seconds(lambda: f(a, b).block_until_ready(), steps)
    return 2.0 * n ** 3 / sec


def torch_matmul_flops(n: int = 2048, steps: int = 5, threads: int = 2) -> float:
    """The same in PyTorch with ``threads`` threads (the peer's view of the machine)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    sec = median_seconds(lambda: a @ b, steps)
    return 2.0 * n ** 3 / sec

"""What-if layer implementations for the twin, measured by ``train_throughput.py --what-if``.

Each replaces one twin layer by an implementation computing the same function (checked by
``check_equivalence``) that XLA's CPU backend runs faster (see layer_profile.py):

- ``unrolled_gru``: ConvGRU with the time loop unrolled in Python (XLA convolutions) instead
  of ``lax.scan`` over im2col matmuls. (On XLA CPU the backward pass of an XLA convolution
  inside a scan/while body runs at ~1 GFLOP/s, which is why the twin's scan uses im2col.)
- ``one_gather_sample``: bilinear sampling with one gather of the four corner rows (and one
  scatter-add in the backward pass) instead of four.

``apply()`` patches them into twin.model for the current process only (benchmarks only).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def unrolled_gru_call(self, x: jax.Array) -> jax.Array:
    """twin.model.core.ConvGRU.__call__ with the time loop unrolled (same maths)."""
    from twin.model.core import conv2d

    b, t, h, w, c = x.shape
    ch = self.ch
    gx = conv2d(x.reshape(b * t, h, w, c), self.w_x[...]).reshape(b, t, h, w, 3 * ch) + self.bias[...]
    w_h, w_hn = self.w_h[...], self.w_hn[...]
    hid = jnp.zeros((b, h, w, ch), x.dtype)
    outs = []
    for i in range(t):
        g = gx[:, i]
        gh = conv2d(hid, w_h)
        z = jax.nn.sigmoid(g[..., :ch] + gh[..., :ch])
        r = jax.nn.sigmoid(g[..., ch:2 * ch] + gh[..., ch:])
        n = jnp.tanh(g[..., 2 * ch:] + conv2d(r * hid, w_hn))
        hid = (1.0 - z) * hid + z * n
        outs.append(hid)
    return jnp.stack(outs, axis=1)


def one_gather_sample(features: jax.Array, grid: jax.Array) -> jax.Array:
    """twin.model.readout.bilinear_sample with a single gather: (M, H, W, C), (M, N, 2) -> (M, N, C)."""
    m, h, w, c = features.shape
    px = (jnp.clip(grid[..., 0], -1, 1) + 1) * 0.5 * (w - 1)
    py = (jnp.clip(grid[..., 1], -1, 1) + 1) * 0.5 * (h - 1)
    x0 = jnp.clip(jnp.floor(px), 0, max(w - 2, 0))
    y0 = jnp.clip(jnp.floor(py), 0, max(h - 2, 0))
    fx, fy = px - x0, py - y0
    base = y0.astype(jnp.int32) * w + x0.astype(jnp.int32) + (jnp.arange(m) * h * w)[:, None]
    idx = jnp.stack([base, base + 1, base + w, base + w + 1], -1)               # (M, N, 4)
    wts = jnp.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)
    v = features.reshape(m * h * w, c).at[idx].get(mode="promise_in_bounds")   # (M, N, 4, C)
    return jnp.einsum("mnkc,mnk->mnc", v, wts)


def check_equivalence() -> float:
    """Max abs difference between the twin's layers and the what-ifs on random inputs."""
    import numpy as np

    from twin.model.core import ConvGRU
    from twin.model.readout import bilinear_sample

    k = jax.random.split(jax.random.key(0), 3)
    gru = ConvGRU(3, 4, 3, rng=np.random.default_rng(0))
    x = jax.random.normal(k[0], (2, 5, 6, 7, 3))
    d1 = jnp.abs(gru(x) - unrolled_gru_call(gru, x)).max()
    feats = jax.random.normal(k[1], (3, 6, 7, 4))
    grid = jax.random.uniform(k[2], (3, 9, 2), minval=-1.2, maxval=1.2)
    d2 = jnp.abs(bilinear_sample(feats, grid) - one_gather_sample(feats, grid)).max()
    return float(max(d1, d2))


def apply() -> None:
    """Patch the what-ifs into twin.model (this process only)."""
    import twin.model.core as core
    import twin.model.readout as readout

    core.ConvGRU.__call__ = unrolled_gru_call
    readout.bilinear_sample = one_gather_sample

"""Core layers: causality in time, conv implementations agree, smoothness penalty, one-frame clips."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from twin.model.config import CoreConfig
from twin.model.core import Core, avg_pool, causal_temporal_conv, conv2d, conv2d_im2col


def test_causal_temporal_conv_matches_a_direct_sum_over_past_frames():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 3, 4, 2)).astype(np.float32)
    k = rng.normal(size=(3, 2, 5)).astype(np.float32)
    want = np.zeros((2, 6, 3, 4, 5), np.float32)
    for t in range(6):
        for j in range(3):
            if t - j >= 0:
                want[:, t] += x[:, t - j] @ k[j]
    np.testing.assert_allclose(causal_temporal_conv(jnp.asarray(x), jnp.asarray(k)), want, rtol=1e-5, atol=1e-5)


def test_im2col_convolution_equals_xla_convolution():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 7, 9, 3)), jnp.float32)
    for k in (1, 3, 5):
        w = jnp.asarray(rng.normal(size=(k, k, 3, 4)), jnp.float32)
        np.testing.assert_allclose(conv2d_im2col(x, w), conv2d(x, w), rtol=1e-4, atol=1e-4)


def test_core_output_at_time_t_ignores_later_frames():
    core = Core(CoreConfig(channels=3, layers=2, kernel=(3,), temporal_kernel=3, gru_channels=2), rng=np.random.default_rng(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 8, 6, 7)), jnp.float32)
    run = nnx.jit(lambda c, v: c(v))
    y = run(core, x)
    assert y.shape == (1, 8, 6, 7, 2)
    y2 = run(core, x.at[:, 5:].set(3.0))
    np.testing.assert_allclose(y2[:, :5], y[:, :5], rtol=1e-6, atol=1e-6)
    assert float(jnp.abs(y2[:, 5:] - y[:, 5:]).max()) > 1e-4


def test_static_image_is_a_one_frame_clip_and_downsampling_pools_space():
    core = Core(CoreConfig(channels=2, layers=1, kernel=(3,), temporal_kernel=2, gru_channels=2, downsample=2),
                rng=np.random.default_rng(0))
    assert nnx.jit(lambda c, v: c(v))(core, jnp.ones((3, 1, 8, 10))).shape == (3, 1, 4, 5, 2)
    x = jnp.arange(16.0).reshape(1, 1, 4, 4, 1)
    np.testing.assert_allclose(avg_pool(x, 2)[0, 0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_laplace_penalty_prefers_smooth_first_layer_filters():
    core = Core(CoreConfig(channels=2, layers=1, kernel=(7,), temporal_kernel=1, gru_channels=2), rng=np.random.default_rng(0))
    noisy = float(core.laplace_penalty())
    yy, xx = np.mgrid[-3:4, -3:4]
    smooth = np.exp(-(xx ** 2 + yy ** 2) / 8.0).astype(np.float32)
    core.convs[0].spatial[...] = jnp.asarray(np.stack([smooth, -smooth], -1)[:, :, None, :])
    assert float(core.laplace_penalty()) < 0.2 * noisy

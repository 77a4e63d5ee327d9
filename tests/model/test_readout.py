"""Readout, shifter and modulator: bilinear sampling, sampling vs evaluation mode, positive rates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from flax import nnx

from twin.model.config import CoreConfig, ModelConfig, ReadoutConfig
from twin.model.readout import bilinear_sample
from twin.model.twin_model import ScanSpec, TwinModel

CFG = ModelConfig(core=CoreConfig(channels=2, layers=1, kernel=(3,), temporal_kernel=2, gru_channels=3))


def test_bilinear_sample_hits_pixel_centres_and_interpolates_between_them():
    f = jnp.arange(12.0).reshape(1, 3, 4, 1)          # value = 4*row + col
    grid = jnp.asarray([[[-1.0, -1.0], [1.0, 1.0], [-1 + 2 / 3, 0.0], [-1 + 1 / 3, -0.5]]])
    out = np.asarray(bilinear_sample(f, grid))[0, :, 0]
    np.testing.assert_allclose(out, [0.0, 11.0, 4 * 1 + 1, 4 * 0.5 + 0.5], atol=1e-5)


@nnx.jit
def run(m, x, beh=None, key=None):
    return m(x, "a-1-1", beh, key)


def _model(**readout):
    return TwinModel(ModelConfig(core=CFG.core, readout=ReadoutConfig(**readout)),
                     [ScanSpec("a-1-1", 6, mean_response=(0.5,) * 6, cortical_xyz=((1.0, 2.0, 3.0),) * 6)], seed=0)


def test_rates_are_positive_and_evaluation_mode_is_deterministic():
    m = _model()
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (2, 5, 8, 9)), jnp.float32)
    a, b = run(m, x), run(m, x)
    assert a.shape == (2, 5, 6) and bool((a >= 0).all())
    np.testing.assert_array_equal(a, b)
    s1, s2 = run(m, x, None, jax.random.key(1)), run(m, x, None, jax.random.key(2))
    assert float(jnp.abs(s1 - s2).max()) > 0


def test_initial_modulator_gain_is_one_so_behaviour_only_acts_through_the_shifter():
    m = _model()
    m.readouts["a-1-1"].shifter = None
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (1, 3, 8, 9)), jnp.float32)
    beh = {"running": jnp.full((1, 3), 30.0), "pupil": jnp.full((1, 3), 5.0), "eye_position": jnp.ones((1, 3, 2))}
    np.testing.assert_allclose(run(m, x, beh), run(m, x), rtol=1e-6)


def test_shifter_starts_at_no_shift_and_moves_the_readout_once_trained():
    m = _model()
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (1, 3, 8, 9)), jnp.float32)
    beh0 = {"running": jnp.zeros((1, 3)), "pupil": jnp.zeros((1, 3)), "eye_position": jnp.zeros((1, 3, 2))}
    beh1 = dict(beh0, eye_position=jnp.full((1, 3, 2), 3.0))
    # zero-initialised last layer: a fresh shifter is the identity whatever the eye position
    np.testing.assert_array_equal(run(m, x, beh0), run(m, x, beh1))
    # with a non-zero last layer (as after training) the eye position moves the readout grid
    last = m.readouts["a-1-1"].shifter.layers[-1]
    last.kernel[...] = jnp.full_like(last.kernel[...], 0.5)
    assert float(jnp.abs(run(m, x, beh0) - run(m, x, beh1)).max()) > 1e-6


def test_grid_predictor_gives_positions_inside_the_grid():
    m = _model(grid_predictor=True)
    pos = np.asarray(m.readouts["a-1-1"].positions())
    assert pos.shape == (6, 2) and np.all(np.abs(pos) < 1)


def test_initial_bias_starts_rates_at_the_mean_response():
    m = _model(init_sigma=0.1)
    r = m.readouts["a-1-1"]
    r.features[...] = jnp.zeros_like(r.features[...])
    rate = run(m, jnp.full((1, 2, 8, 9), 100.0))
    np.testing.assert_allclose(rate, 0.5, rtol=1e-4)


def _pooled_readout(pooling: int, sigma: float):
    from twin.model.readout import ScanReadout

    cfg = ModelConfig(core=CFG.core, readout=ReadoutConfig(pooling=pooling, init_sigma=sigma))
    r = ScanReadout(3, 1, cfg, rng=np.random.default_rng(0))
    r.shifter, r.modulator = None, None
    r.mu[...] = jnp.asarray([[0.0, 0.0], [0.3, -0.2], [-0.4, 0.1]])
    r.features[...] = jnp.ones((3, 1))
    r.bias[...] = jnp.zeros(3)
    return r


def test_gaussian_pooling_is_the_expectation_over_the_position_gaussian():
    h, w = 41, 81
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    sigma = 0.15
    # a linear map: the pooled value is the value at the mean, whatever the spread
    lin = jnp.asarray((2 * xs - 3 * ys)[None, None, :, :, None], jnp.float32)
    out, _ = _pooled_readout(3, sigma)(lin)
    mu = np.array([[0.0, 0.0], [0.3, -0.2], [-0.4, 0.1]])
    np.testing.assert_allclose(np.asarray(out)[0, 0], 2 * mu[:, 0] - 3 * mu[:, 1], atol=1e-5)
    # a quadratic map: E[x^2] = mu^2 + sigma^2 (exact for Gauss-Hermite up to bilinear interpolation)
    quad = jnp.asarray((xs ** 2)[None, None, :, :, None], jnp.float32)
    out, _ = _pooled_readout(3, sigma)(quad)
    np.testing.assert_allclose(np.asarray(out)[0, 0], mu[:, 0] ** 2 + sigma ** 2, atol=2e-4)
    # the point readout (evaluation mode) gives the value at the mean instead
    point, _ = _pooled_readout(0, sigma)(quad)
    np.testing.assert_allclose(np.asarray(point)[0, 0], mu[:, 0] ** 2, atol=2e-4)


def test_gaussian_pooling_is_deterministic_in_training_and_rejects_one_point():
    m = _model(pooling=3)
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (1, 3, 8, 9)), jnp.float32)
    np.testing.assert_array_equal(run(m, x, None, jax.random.key(1)), run(m, x, None, jax.random.key(2)))
    np.testing.assert_array_equal(run(m, x, None, jax.random.key(1)), run(m, x))
    import pytest

    with pytest.raises(ValueError, match="pooling"):
        _model(pooling=1)


def test_gaussian_pooling_projects_first_or_samples_channels_with_the_same_result(monkeypatch):
    import twin.model.readout as ro

    m = _model(pooling=3, init_sigma=0.3)
    last = m.readouts["a-1-1"].shifter.layers[-1]
    last.kernel[...] = jnp.full_like(last.kernel[...], 0.3)     # a moving grid, as after training
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (2, 4, 8, 9)), jnp.float32)
    beh = {"running": jnp.zeros((2, 4)), "pupil": jnp.zeros((2, 4)),
           "eye_position": jnp.asarray(np.random.default_rng(1).normal(0, 2, (2, 4, 2)), jnp.float32)}

    def loss(model):
        return jnp.sum(model(x, "a-1-1", beh) ** 2)

    monkeypatch.setattr(ro, "POOL_PATH", "project")
    a, ga = nnx.value_and_grad(loss)(m)
    monkeypatch.setattr(ro, "POOL_PATH", "sample")
    b, gb = nnx.value_and_grad(loss)(m)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    for u, v in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(u, v, rtol=1e-3, atol=1e-5)


def test_pooled_by_matmul_is_the_weighted_sum_of_bilinear_samples():
    from twin.model.readout import bilinear_sample, pooled_by_matmul

    rng = np.random.default_rng(0)
    f = jnp.asarray(rng.normal(size=(3, 7, 11, 5)), jnp.float32)
    grid = jnp.asarray(rng.uniform(-1.3, 1.3, (3, 4 * 6, 2)), jnp.float32)   # some points off the map (clamped)
    wk = jnp.asarray(rng.uniform(0.1, 1.0, 6), jnp.float32)
    want = jnp.einsum("mqkc,k->mqc", bilinear_sample(f, grid).reshape(3, 4, 6, 5), wk)
    np.testing.assert_allclose(pooled_by_matmul(f, grid, wk), want, rtol=1e-5, atol=1e-6)


def test_gaussian_pooling_takes_the_path_with_the_smaller_intermediate():
    from twin.model.readout import pool_by_projection

    assert pool_by_projection(18, 32, 16, 96)          # the demo twin: 576 <= 6,144 floats per neuron-frame
    assert pool_by_projection(36, 64, 16, 64)          # sensorium-sized map, 64 channels
    assert not pool_by_projection(128, 128, 4, 8)      # a big map read by few, narrow points: sample


def _ramp_readout(rc: ReadoutConfig):
    """A 3-neuron, 2-channel readout (no shifter or modulator, zero bias, features [1, 0]) at
    positions (0, 0), (0.3, -0.2), (-0.4, 0.1), and a 41 x 81 map whose channel 0 is a linear ramp
    in x and channel 1 one in y (grid units)."""
    from twin.model.readout import ScanReadout

    r = ScanReadout(3, 2, ModelConfig(core=CFG.core, readout=rc), rng=np.random.default_rng(0))
    r.shifter, r.modulator = None, None
    r.mu[...] = jnp.asarray([[0.0, 0.0], [0.3, -0.2], [-0.4, 0.1]])
    r.features[...] = jnp.asarray([[1.0, 0.0]] * 3)
    r.bias[...] = jnp.zeros(3)
    ys, xs = np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-1, 1, 81), indexing="ij")
    return r, jnp.asarray(np.stack([xs, ys], -1)[None, None], jnp.float32)


def test_extra_components_start_silent_and_add_a_second_subfield():
    from twin.model.readout import ScanReadout

    for pooling in (0, 3):
        r, fmap = _ramp_readout(ReadoutConfig(pooling=pooling, init_sigma=0.1, components=2))
        out, _ = r(fmap)
        # zero extra features: the one-component readout, positions unchanged
        np.testing.assert_allclose(np.asarray(out)[0, 0], [0.0, 0.3, -0.4], atol=1e-5)
        assert r.extra.mu.shape == (3, 1, 2) and np.all(np.abs(np.asarray(r.extra.mu[...])) <= 1)
        # a second subfield reading channel 1 at its own position adds its value there
        r.extra.mu[...] = jnp.asarray([[[0.5, 0.5]], [[0.0, -0.5]], [[-0.2, 0.2]]])
        r.extra.features[...] = jnp.asarray([[[0.0, 2.0]]] * 3)
        out, _ = r(fmap)
        np.testing.assert_allclose(np.asarray(out)[0, 0], [0.0 + 1.0, 0.3 - 1.0, -0.4 + 0.4], atol=1e-5)
        # training mode (sampled positions) with no spread reads the same points
        r.chol[...] = jnp.zeros_like(r.chol[...])
        r.extra.chol[...] = jnp.zeros_like(r.extra.chol[...])
        sampled, _ = r(fmap, key=jax.random.key(0))
        np.testing.assert_allclose(np.asarray(sampled)[0, 0], [1.0, -0.7, 0.0], atol=1e-5)
        # its features count in the L1 penalty
        np.testing.assert_allclose(r.l1_penalty(), 3.0, rtol=1e-6)
    import pytest

    with pytest.raises(ValueError, match="components"):
        ScanReadout(3, 2, ModelConfig(core=CFG.core, readout=ReadoutConfig(components=0)),
                    rng=np.random.default_rng(0))


def test_weight_patch_reads_the_map_around_the_position_and_moves_with_it():
    from twin.model.readout import ScanReadout

    r, fmap = _ramp_readout(ReadoutConfig(mask=5, mask_init_sigma=1.0, components=2))
    w = fmap.shape[3]
    # the starting weights are a symmetric Gaussian summing to 1: on a ramp, the value at the position
    np.testing.assert_allclose(np.asarray(r.mask_weights[...]).sum(-1), 1.0, rtol=1e-6)
    out, _ = r(fmap)
    np.testing.assert_allclose(np.asarray(out)[0, 0], [0.0, 0.3, -0.4], atol=1e-5)
    # one weight two pixels right of the centre (signed): -1 x the ramp there
    wts = np.zeros((3, 25))
    wts[:, 2 * 5 + 4] = -1.0
    r.mask_weights[...] = jnp.asarray(wts, jnp.float32)
    px = 2.0 / (w - 1)
    out, _ = r(fmap)
    np.testing.assert_allclose(np.asarray(out)[0, 0], -(np.array([0.0, 0.3, -0.4]) + 2 * px), atol=1e-5)
    # the extra (Gaussian) component still adds its own subfield
    r.extra.mu[...] = jnp.asarray([[[0.5, 0.5]], [[0.0, -0.5]], [[-0.2, 0.2]]])
    r.extra.features[...] = jnp.asarray([[[0.0, 2.0]]] * 3)
    out2, _ = r(fmap)
    np.testing.assert_allclose(np.asarray(out2 - out)[0, 0], [1.0, -1.0, 0.4], atol=1e-5)
    # a shift of the grid (eye movement) moves the patch with it, as it moves a Gaussian readout
    wts[:] = 0.0
    wts[:, 12] = 1.0
    r.mask_weights[...] = jnp.asarray(wts, jnp.float32)
    shift = jnp.full((1, 1, 2), 0.1)
    np.testing.assert_allclose(np.asarray(r._masked(fmap, r.positions(), r.features[...], shift))[0, 0],
                               np.array([0.0, 0.3, -0.4]) + 0.1, atol=1e-5)
    # points off the map read zero; the position keeps a gradient through the patch
    r.mu[...] = jnp.asarray([[1.0, 0.0], [0.3, -0.2], [-0.4, 0.1]])
    wts[0, 12], wts[0, 14] = 0.0, 1.0
    r.mask_weights[...] = jnp.asarray(wts, jnp.float32)
    np.testing.assert_allclose(np.asarray(r._masked(fmap, r.positions(), r.features[...], None))[0, 0, 0], 0.0)
    r.mu[...] = jnp.asarray([[0.013, 0.0], [0.3, -0.2], [-0.4, 0.1]])

    def f(mod):
        return jnp.sum(mod._masked(fmap, mod.positions(), mod.features[...], None))

    g = nnx.grad(f)(r)
    np.testing.assert_allclose(np.asarray(g["mu"][...])[:, 0], 1.0, rtol=1e-4)
    np.testing.assert_allclose(r.mask_penalty(), 1.0, rtol=1e-6)
    import pytest

    for bad in (2, 1, -3):
        with pytest.raises(ValueError, match="mask"):
            ScanReadout(3, 2, ModelConfig(core=CFG.core, readout=ReadoutConfig(mask=bad)), rng=np.random.default_rng(0))


def test_readout_units_reads_only_the_wanted_neurons_as_the_full_readout():
    """TwinModel.readout_units (the per-neuron inputs' readout, twin.insilico.engine) equals the
    whole scan's readout gathered at each clip's neurons, whatever readout options are on: every
    per-neuron parameter (extra components, surround, weight patch, cortical coordinates, the
    modulator's output column) must be gathered with the neuron."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.uniform(0, 255, (3, 4, 8, 9)), jnp.float32)
    idx = jnp.asarray([[0, 5], [3, 3], [4, 1]])
    options = [dict(), dict(components=2, pooling=2), dict(components=2, pooling=2, surround=2.0),
               dict(mask=3), dict(grid_predictor=True, pooling=2)]
    for opts in options:
        m = _model(**opts)
        g, st = nnx.split(m)
        # perturb every parameter, so zero-initialised parts (modulator, shifter, extra features,
        # surround) take part and a parameter left ungathered shows
        st = jax.tree.map(lambda a: a + 0.2 * jnp.asarray(rng.standard_normal(a.shape), a.dtype)
                          if a.dtype == jnp.float32 and a.ndim else a, st)
        m = nnx.merge(g, st)
        f = m.features(x)
        ref = jnp.take_along_axis(m.readout(f, "a-1-1"), idx[:, None, :], axis=2)
        got = jax.jit(lambda f, i, m=m: m.readout_units(f, "a-1-1", i))(f, idx)
        assert got.shape == (3, 4, 2)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, err_msg=str(opts))
        assert float(jnp.abs(got[0, :, 0] - got[0, :, 1]).max()) > 1e-3     # neurons 0 and 5 differ

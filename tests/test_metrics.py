"""twin.metrics: hand-computed cases and mathematical properties of SCIENCE.md section 3."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from twin import metrics as m

SETTINGS = settings(max_examples=40, deadline=None)


def _col(values):
    """A 1-unit (clip, repeat, time=1, unit=1) array from nested lists [clip][repeat]."""
    return np.asarray(values, float)[:, :, None, None]


# ---------------------------------------------------------------- hand-computed cases
def test_corr_matches_hand_computed_value():
    # dx = (-1, 0, 1), dy = (-4/3, -1/3, 5/3): cov 1, var_x 2/3, var_y 14/9
    assert m.corr(np.array([1.0, 2, 3]), np.array([1.0, 2, 4])) == pytest.approx(np.sqrt(27 / 28))


def test_corr_of_constant_input_is_zero_not_nan():
    assert m.corr(np.ones(5), np.arange(5.0)) == 0.0
    assert m.corr(np.ones((5, 2)), np.ones((5, 2))).tolist() == [0.0, 0.0]


def test_corr_ignores_pairs_with_nan():
    x = np.array([1.0, 2, np.nan, 3])
    y = np.array([1.0, 2, 100, 4])
    assert m.corr(x, y) == pytest.approx(np.sqrt(27 / 28))


def test_noise_total_fev_and_feve_match_hand_computed_values():
    y = _col([[0, 2], [10, 12]])           # two clips, two repeats, one frame
    pred = np.array([1.0, 11])[:, None, None]  # (clip, time, unit)
    total = 104 / 3                          # values 0,2,10,12 around 6, ddof 1
    assert m.noise_variance(y) == pytest.approx(2.0)  # var([0,2]) = var([10,12]) = 2
    assert m.total_variance(y) == pytest.approx(total)
    assert m.fev(y) == pytest.approx((total - 2) / total)
    # MSE = 1 on every trial
    assert m.feve(y, pred) == pytest.approx(1 - (1 - 2) / (total - 2))


def test_feve_is_nan_below_the_fev_threshold_and_reported_without_it():
    y = _col([[0, 4], [1, 5]])   # noise dominates: total 14/3, noise 8, FEV < 0
    pred = np.array([2.0, 3])[:, None, None]
    assert np.isnan(m.feve(y, pred)[0])
    assert np.isnan(m.feve(y, pred, fev_threshold=None)[0])  # no explainable variance at all
    y = _col([[0, 1], [10, 12]])
    assert np.isfinite(m.feve(y, pred, fev_threshold=None)[0])


def test_oracle_is_correlation_with_leave_one_out_mean():
    y = _col([[1, 2, 3], [4, 5, 9]])
    loo = [2.5, 2, 1.5, 7, 6.5, 4.5]
    expected = np.corrcoef([1, 2, 3, 4, 5, 9], loo)[0, 1]
    assert m.oracle_correlation(y)[0] == pytest.approx(expected)


def test_correlation_to_average_uses_repeat_means():
    y = _col([[1, 3], [2, 2], [5, 9]])       # means 2, 2, 7
    pred = np.array([[0, 1], [1, 0], [4, 5]], float)[:, :, None, None]  # means .5, .5, 4.5
    expected = np.corrcoef([2, 2, 7], [0.5, 0.5, 4.5])[0, 1]
    assert m.correlation_to_average(y, pred)[0] == pytest.approx(expected)
    assert m.cc_abs(y, pred)[0] == pytest.approx(expected)


def test_single_trial_correlation_pools_all_trials_and_frames():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 4, 5, 2))
    p = rng.normal(size=(3, 4, 5, 2))
    for u in range(2):
        expected = np.corrcoef(y[..., u].ravel(), p[..., u].ravel())[0, 1]
        assert m.single_trial_correlation(y, p)[u] == pytest.approx(expected)


def test_cc_max_matches_schoppe_formula_written_out():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(4, 5, 6, 3)) + rng.normal(size=(4, 1, 6, 3))
    n = y.shape[1]
    for u in range(3):
        r = np.moveaxis(y[..., u], 1, 0).reshape(n, -1)      # (repeat, stimulus sample)
        sp = (np.var(r.sum(0)) - np.var(r, axis=1).sum()) / (n * (n - 1))
        expected = np.sqrt(max(sp, 0) / np.var(r.mean(0)))
        assert m.cc_max(y)[u] == pytest.approx(min(expected, 1.0))


def test_ragged_signal_power_equals_schoppe_when_repeats_share_their_mean():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(3, 4, 10, 2)) + 2 * rng.normal(size=(3, 1, 10, 2))
    y -= y.mean(axis=(0, 2), keepdims=True)  # remove whole-repeat offsets (Schoppe's extra term)
    padded = np.concatenate([y, np.full((3, 1, 10, 2), np.nan)], axis=1)
    padded[0, 4] = y[0, 0]  # one clip repeated once more: not balanced any longer
    padded[0, 0] = np.nan
    assert np.allclose(m.signal_power(y)[0], m.signal_power(padded)[0])


def test_quality_filter_thresholds_are_strict():
    out = m.passes_quality(np.array([0.21, 0.2, 0.5, 0.5]), np.array([0.5, 0.5, 0.4, 0.41]))
    assert out.tolist() == [True, False, False, True]


def test_predictions_of_wrong_shape_are_rejected():
    with pytest.raises(ValueError, match="do not match"):
        m.all_metrics(np.zeros((2, 3, 4, 5)), np.zeros((2, 4, 6)))


def test_jax_corr_matches_numpy_and_is_differentiable():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
    assert np.allclose(m.corr(jnp.asarray(x), jnp.asarray(y)), m.corr(x, y), atol=1e-5)
    g = jax.grad(lambda a: m.corr(a, jnp.asarray(y)).sum())(jnp.asarray(x, jnp.float32))
    assert np.isfinite(np.asarray(g)).all()


# ---------------------------------------------------------------- properties
finite = st.floats(-100, 100, allow_nan=False, width=64)
series = arrays(np.float64, st.integers(3, 30), elements=finite)


@SETTINGS
@given(series, st.data(), st.floats(0.1, 10), st.floats(-50, 50), st.floats(0.1, 10),
       st.floats(-50, 50))
def test_corr_is_invariant_to_positive_scale_and_shift(x, data, a, b, c, d):
    y = data.draw(arrays(np.float64, x.shape, elements=finite))
    r = m.corr(x, y)
    assert -1 <= r <= 1
    if np.std(x) > 1e-3 and np.std(y) > 1e-3:
        assert m.corr(a * x + b, c * y + d) == pytest.approx(r, abs=1e-6)
        assert m.corr(-a * x + b, c * y + d) == pytest.approx(-r, abs=1e-6)


@SETTINGS
@given(st.integers(0, 2**31), st.floats(0.1, 10), st.floats(-5, 5))
def test_trial_correlations_are_invariant_to_affine_rescaling_of_predictions(seed, a, b):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(3, 4, 5, 2))
    p = rng.normal(size=(3, 4, 5, 2))
    for f in (m.single_trial_correlation, m.correlation_to_average):
        assert np.allclose(f(y, a * p + b), f(y, p), atol=1e-9)


@SETTINGS
@given(st.integers(0, 2**31), st.floats(0.1, 10), st.floats(-5, 5))
def test_ceilings_are_invariant_to_affine_rescaling_of_responses(seed, a, b):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(3, 4, 5, 2)) + rng.normal(size=(3, 1, 5, 2))
    for f in (m.cc_max, m.oracle_correlation, m.fev):
        assert np.allclose(f(a * y + b), f(y), atol=1e-9, equal_nan=True)


@SETTINGS
@given(st.integers(0, 2**31), st.integers(2, 6))
def test_noiseless_repeats_reach_the_ceiling_of_one(seed, n_repeat):
    rng = np.random.default_rng(seed)
    signal = rng.gamma(2.0, 1.0, size=(3, 1, 8, 4))
    y = np.repeat(signal, n_repeat, axis=1)
    out = m.all_metrics(y, signal[:, 0])
    for name in ("oracle", "cc_max", "feve", "fev", "cc_abs", "cc_norm", "single_trial_correlation"):
        assert np.allclose(out[name], 1.0), name
    assert out["noise_variance"] == pytest.approx(0.0)
    assert out["passes_quality"].all()


def test_cc_norm_of_the_noise_free_signal_is_one_on_average():
    rng = np.random.default_rng(4)
    n_unit = 400
    signal = rng.gamma(2.0, 1.0, size=(6, 1, 40, n_unit))
    y = signal + rng.normal(0.0, 1.5, size=(6, 10, 40, n_unit))
    out = m.all_metrics(y, signal[:, 0])
    assert np.nanmean(out["cc_norm"]) == pytest.approx(1.0, abs=0.02)
    assert np.nanmedian(out["feve"]) == pytest.approx(1.0, abs=0.05)
    assert (out["cc_abs"] < 1).all()  # the noisy average itself is never matched exactly
    # ragged repeats (NaN padding) estimate the same ceiling
    y[:3, 7:] = np.nan
    ragged = m.all_metrics(y, signal[:, 0])
    assert np.nanmean(ragged["cc_norm"]) == pytest.approx(1.0, abs=0.03)


def test_constant_units_give_zero_correlations_and_nan_variance_ratios():
    rng = np.random.default_rng(5)
    y = rng.poisson(2.0, size=(3, 4, 6, 2)).astype(float)
    y[..., 1] = 3.0  # unit 1 never changes
    p = rng.gamma(2.0, 1.0, size=(3, 4, 6, 2))
    out = m.all_metrics(y, p)
    assert out["single_trial_correlation"][1] == 0.0
    assert out["correlation_to_average"][1] == 0.0
    assert out["oracle"][1] == 0.0
    assert out["cc_max"][1] == 0.0
    assert np.isnan(out["fev"][1]) and np.isnan(out["feve"][1]) and np.isnan(out["cc_norm"][1])
    assert not out["passes_quality"][1]
    # a constant prediction scores 0, not NaN
    assert m.single_trial_correlation(y, np.ones_like(p))[0] == 0.0


def test_repeat_ceilings_are_nan_without_repeats_but_correlations_are_not():
    rng = np.random.default_rng(7)
    y = rng.normal(size=(4, 1, 6, 3))  # every clip shown once
    out = m.all_metrics(y, rng.normal(size=(4, 6, 3)))
    for name in ("oracle", "cc_max", "cc_norm", "noise_variance", "fev", "feve"):
        assert np.isnan(out[name]).all(), name
    assert np.isfinite(out["single_trial_correlation"]).all()
    assert not out["passes_quality"].any()


def test_all_metrics_returns_every_named_metric_per_unit():
    rng = np.random.default_rng(6)
    out = m.all_metrics(rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 4, 5)))
    assert tuple(out) == m.METRIC_NAMES
    assert all(v.shape == (5,) for v in out.values())


def test_prediction_sd_is_the_range_of_the_repeat_averaged_prediction():
    # one unit, 2 clips x 2 repeats x 2 frames; repeat means (1, 3) and (5, 7): sd of 1,3,5,7 (ddof 0)
    y = np.zeros((2, 2, 2, 1))
    p = np.array([[[0.0, 2], [2, 4]], [[4, 6], [6, 8]]])[..., None]
    assert m.prediction_sd(y, p)[0] == pytest.approx(np.sqrt(5.0))
    # frames without a response do not count: drop clip 1's second frame -> sd of 1, 3, 5
    y[1, :, 1] = np.nan
    assert m.prediction_sd(y, p)[0] == pytest.approx(np.std([1.0, 3, 5]))
    # a constant prediction has no range
    assert m.prediction_sd(y, np.full_like(p, 0.3))[0] == pytest.approx(0.0)
    # no response at all: no range either (NaN, not 0)
    assert np.isnan(m.prediction_sd(np.full_like(y, np.nan), p)[0])


@SETTINGS
@given(st.floats(0.1, 10.0), st.floats(-5.0, 5.0))
def test_prediction_sd_scales_with_the_prediction_and_ignores_offsets(a, b):
    rng = np.random.default_rng(3)
    y, p = rng.normal(size=(3, 4, 5, 2)), rng.normal(size=(3, 5, 2))
    np.testing.assert_allclose(m.prediction_sd(y, a * p + b), a * m.prediction_sd(y, p), rtol=1e-9)

"""The observation model: unbiased in timing, noisy, non-negative."""

from __future__ import annotations

import numpy as np

from twin.simulate.config import ObservationConfig
from twin.simulate.observation import observe


def _rate(n_trials=1, n_t=200, n_u=5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_t) / 10.0
    base = 0.3 + 0.3 * np.sin(2 * np.pi * 0.4 * t[:, None] + rng.uniform(0, 6, n_u))
    return np.broadcast_to(base, (n_trials, n_t, n_u)).copy()


def test_trial_average_of_many_observations_recovers_the_rate_and_its_timing():
    lam = _rate(n_trials=200)
    obs = observe(lam, np.full(5, 1.0), 10.0, ObservationConfig(), np.random.default_rng(1))
    avg = obs.mean(0)
    for u in range(5):
        r = np.corrcoef(avg[10:, u], lam[0, 10:, u])[0, 1]
        assert r > 0.9  # thresholded events: a compressive but monotone function of the rate
        lag = np.argmax(np.correlate(avg[10:, u] - avg[10:, u].mean(), lam[0, 10:, u] - lam[0, 10:, u].mean(), "full"))
        assert abs(lag - (len(avg) - 11)) <= 1  # no systematic delay beyond one frame


def test_single_trials_are_noisy_and_non_negative_and_noise_grows_with_noise_sd():
    lam = _rate(n_trials=20)
    cfg = ObservationConfig()
    lo = observe(lam, np.full(5, 0.3), 10.0, cfg, np.random.default_rng(2))
    hi = observe(lam, np.full(5, 2.0), 10.0, cfg, np.random.default_rng(2))
    assert lo.min() >= 0 and hi.min() >= 0 and lo.dtype == np.float32

    def r(x):
        return np.mean([np.corrcoef(x[i, 10:, u], lam[i, 10:, u])[0, 1] for i in range(20) for u in range(5)])

    assert 0.03 < r(hi) < r(lo) < 0.95


def test_observation_is_deterministic_given_the_generator():
    lam = _rate(n_trials=2)
    a = observe(lam, np.ones(5), 10.0, ObservationConfig(), np.random.default_rng(5))
    b = observe(lam, np.ones(5), 10.0, ObservationConfig(), np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_expected_observation_matches_the_monte_carlo_mean_of_observations():
    from twin.simulate.observation import expected_observation

    lam = _rate(n_trials=400)
    cfg = ObservationConfig()
    noise = np.array([0.3, 0.6, 1.0, 1.5, 2.0])
    mc = observe(lam, noise, 10.0, cfg, np.random.default_rng(3)).mean(0)
    ex = expected_observation(lam[:1], noise, 10.0, cfg)[0]
    assert np.abs(mc[10:].mean(0) / ex[10:].mean(0) - 1).max() < 0.1
    assert min(np.corrcoef(mc[10:, u], ex[10:, u])[0, 1] for u in range(5)) > 0.85
    from scipy.stats import spearmanr

    assert min(spearmanr(ex[10:, u], lam[0, 10:, u]).statistic for u in range(5)) > 0.95  # monotone in rate


def test_expected_observation_in_jax_matches_numpy_and_is_differentiable():
    import jax
    import jax.numpy as jnp

    from twin.simulate.observation import expected_observation, expected_observation_jax

    cfg = ObservationConfig()
    lam = _rate(n_trials=2, n_t=37) * np.array([0.2, 1.0, 3.0, 0.5, 1.5])    # rates from 0 to ~2 events/frame
    noise = np.array([0.3, 0.6, 1.0, 1.5, 2.0])
    ref = expected_observation(lam, noise, 10.0, cfg)
    f = jax.jit(lambda x, sd: expected_observation_jax(x, sd, 10.0, cfg))
    got = np.asarray(f(jnp.asarray(lam, jnp.float32), jnp.asarray(noise, jnp.float32)))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
    # the thresholded mean rises with the rate and sits above zero where the rate is zero (noise events)
    total = jax.grad(lambda x: expected_observation_jax(x, noise, 10.0, cfg).sum())
    grad = np.asarray(total(jnp.asarray(lam, jnp.float32)))
    assert np.isfinite(grad).all() and (grad[:, :-3] > 0).all()
    zero = np.asarray(f(jnp.zeros((1, 20, 5), jnp.float32), jnp.asarray(noise, jnp.float32)))
    assert (zero > 0).all() and zero[0, 10, 4] > zero[0, 10, 0]                    # a floor that grows with noise

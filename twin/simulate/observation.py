"""The observation model: expected events -> spikes -> calcium -> noise -> deconvolved activity.

``observe`` turns noise-free expected events per frame (at the stimulus frame rate) into what a
two-photon pipeline delivers: Poisson spikes in ``oversample`` bins per frame, modulated by a
shared unobserved slow gain; calcium with an exponential kernel (``tau_calcium_s``); samples at
the scan rate (a per-trial phase) with Gaussian noise (per-neuron ``noise_sd``, in units of one
spike's calcium jump); first-order (AR(1)) deconvolution, keeping only values above ``event_threshold_sd`` times the
deconvolved noise s.d. (sparse, non-negative events, as event-detecting pipelines give); and
linear resampling of
each scan interval's events onto the frame centres, scaled to events per frame. Its expectation
follows the input closely (thresholding loses some small events and keeps some noise), so the
input is the oracle; :func:`expected_observation` gives the exact-in-distribution mean.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from twin.simulate.config import ObservationConfig


def _interp_matrix(src_t: np.ndarray, dst_t: np.ndarray) -> np.ndarray:
    """(len(dst), len(src)) linear-interpolation weights (constant beyond the ends)."""
    m = np.zeros((len(dst_t), len(src_t)))
    j = np.clip(np.searchsorted(src_t, dst_t) - 1, 0, len(src_t) - 2)
    w = np.clip((dst_t - src_t[j]) / (src_t[j + 1] - src_t[j]), 0, 1)
    m[np.arange(len(dst_t)), j] = 1 - w
    m[np.arange(len(dst_t)), j + 1] += w
    return m


def observe(expected: np.ndarray, noise_sd: np.ndarray, frame_rate: float, cfg: ObservationConfig,
            rng: np.random.Generator, chunk: int = 16) -> np.ndarray:
    """Noisy deconvolved activity for expected events per frame.

    Args:
      expected: (trial, time, unit) non-negative expected events per frame.
      noise_sd: (unit,) fluorescence noise per neuron (spike-jump units).
      frame_rate: Hz of ``expected``'s time axis.
      chunk: trials processed at a time (memory bound).
    Returns:
      (trial, time, unit) float32 non-negative activity, events per frame.
    """
    loading = np.exp(0.3 * rng.standard_normal(expected.shape[2]))
    out = np.empty(expected.shape, np.float32)
    for s in range(0, len(expected), chunk):  # bounded memory: spikes are oversampled float64
        out[s:s + chunk] = _observe_chunk(expected[s:s + chunk], noise_sd, loading, frame_rate, cfg, rng)
    return out


def _observe_chunk(expected: np.ndarray, noise_sd: np.ndarray, loading: np.ndarray, frame_rate: float,
                   cfg: ObservationConfig, rng: np.random.Generator) -> np.ndarray:
    n_tr, n_t, n_u = expected.shape
    up = cfg.oversample
    fine_dt = 1.0 / (frame_rate * up)
    dur = n_t / frame_rate
    # shared latent gain, mean one
    a_lat = np.exp(-fine_dt / cfg.latent_tau_s)
    e = rng.standard_normal((n_tr, n_t * up)) * np.sqrt(1 - a_lat ** 2)
    e[:, 0] = rng.standard_normal(n_tr)
    lat = lfilter([1.0], [1.0, -a_lat], e, axis=1) * cfg.latent_gain_sd
    lam = np.repeat(expected, up, axis=1) / up * np.exp(lat[:, :, None] * loading - (cfg.latent_gain_sd * loading) ** 2 / 2)
    spikes = rng.poisson(np.maximum(lam, 0)).astype(np.float64)
    a = np.exp(-fine_dt / cfg.tau_calcium_s)
    c0 = expected.mean(1, keepdims=True)[:, 0] / up / (1 - a)  # steady state before the trial
    calcium = lfilter([1.0], [1.0, -a], spikes, axis=1, zi=(a * c0)[:, None, :])[0]
    out = np.empty(expected.shape, np.float32)
    scan_dt = 1.0 / cfg.scan_rate_hz
    a_scan = np.exp(-scan_dt / cfg.tau_calcium_s)
    threshold = cfg.event_threshold_sd * np.asarray(noise_sd) * np.sqrt(1 + a_scan ** 2)
    frame_centres = (np.arange(n_t) + 0.5) / frame_rate
    for i in range(n_tr):
        t_scan = rng.uniform(0, scan_dt) + np.arange(-1, int(np.ceil(dur / scan_dt)) + 1) * scan_dt
        idx = np.clip(np.floor(t_scan / fine_dt).astype(int), 0, n_t * up - 1)
        f = calcium[i, idx] + rng.standard_normal((len(idx), n_u)) * noise_sd
        s = f[1:] - a_scan * f[:-1]                                  # per scan interval
        events = np.where(s > threshold, s, 0.0)                    # sparse, like event detection
        centres = t_scan[1:] - scan_dt / 2
        m = _interp_matrix(centres, frame_centres)
        out[i] = (m @ events) * (cfg.scan_rate_hz / frame_rate)
    return out


def observation_operator(n_frames: int, frame_rate: float, cfg: ObservationConfig,
                         n_phases: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The linear maps of :func:`expected_observation` for clips of ``n_frames`` frames, float64.

    Returns ``a`` (phases, K, n_frames): each scan interval's calcium-weighted sum of the expected
    events per frame (the deconvolved value's mean), ``a2`` (phases, K, n_frames): the same with
    squared weights (its Poisson variance), and ``m`` (phases, n_frames, K): the linear resampling
    of the intervals onto the frame centres, times scan rate / frame rate. K scan intervals per
    phase cover the clip.
    """
    up = cfg.oversample
    fine_dt = 1.0 / (frame_rate * up)
    t_fine = (np.arange(n_frames * up) + 1) * fine_dt                        # end of each fine bin
    scan_dt = 1.0 / cfg.scan_rate_hz
    frame_centres = (np.arange(n_frames) + 0.5) / frame_rate
    to_frames = np.repeat(np.eye(n_frames), up, axis=0) / up                   # (fine, frame)
    a, a2, m = [], [], []
    for phase in (np.arange(n_phases) + 0.5) / n_phases * scan_dt:
        t_scan = phase + np.arange(0, int(np.ceil(n_frames / frame_rate / scan_dt)) + 1) * scan_dt
        # weights of fine bins in (t_{k-1}, t_k], decayed to t_k
        lag = t_scan[1:, None] - t_fine[None, :]
        inside = (lag >= 0) & (lag < scan_dt)
        w = np.where(inside, np.exp(-np.clip(lag, 0, None) / cfg.tau_calcium_s), 0.0)   # (K, fine)
        a.append(w @ to_frames)
        a2.append(w ** 2 @ to_frames)
        m.append(_interp_matrix(t_scan[1:] - scan_dt / 2, frame_centres) * (cfg.scan_rate_hz / frame_rate))
    return np.stack(a), np.stack(a2), np.stack(m)


def _thresholded_mean(a, a2, m, lam, noise_sd, cfg: ObservationConfig, xp, norm):
    """The body shared by :func:`expected_observation` (NumPy, float64) and
    :func:`expected_observation_jax`: for each scan phase's maps (``a``, ``a2``, ``m`` of
    :func:`observation_operator`) the thresholded mean ``mu Phi(z) + s phi(z)`` of the
    deconvolved values, resampled to frames, averaged over phases. ``xp`` is the array module,
    ``norm`` its normal distribution; lam (B, T, N), noise_sd (N,)."""
    a_scan = np.exp(-1.0 / cfg.scan_rate_hz / cfg.tau_calcium_s)
    noise_var = xp.asarray(noise_sd) ** 2 * (1 + a_scan ** 2)
    threshold = cfg.event_threshold_sd * xp.sqrt(noise_var)
    out = 0.0
    for ap, a2p, mp in zip(a, a2, m):        # a few phases: one (B, K, N) at a time
        mu = xp.einsum("kt,btu->bku", ap, lam)
        sd = xp.sqrt(xp.einsum("kt,btu->bku", a2p, lam) + noise_var)
        z = (mu - threshold) / sd
        rect = mu * norm.cdf(z) + sd * norm.pdf(z)  # E[X 1(X > threshold)], X ~ N(mu, sd^2)
        out = out + xp.einsum("jk,bku->bju", mp, rect)
    return out / len(a)


def expected_observation(expected: np.ndarray, noise_sd: np.ndarray, frame_rate: float,
                         cfg: ObservationConfig, n_phases: int = 4) -> np.ndarray:
    """The mean of :func:`observe` over spikes and noise (Gaussian approximation), no sampling.

    Each scan interval's deconvolved value is approximated as Gaussian with mean = the expected
    spikes (weighted by calcium decay within the interval) and variance = their Poisson
    variance + the amplified fluorescence noise; its thresholded mean
    ``mu Phi((mu-c)/s) + s phi((mu-c)/s)`` is resampled like the data and averaged over ``n_phases``
    scan phases. This is what a perfect model of the *observed* (rectified, hence biased)
    activity predicts (thresholding biases it), the right reference for scale-sensitive scores such
    as FEVE and for offset-sensitive indices such as gOSI (see :func:`expected_observation_jax`).

    Args/returns as :func:`observe` (shape (trial, time, unit), events per frame).
    """
    from scipy.stats import norm

    maps = observation_operator(expected.shape[1], frame_rate, cfg, n_phases)
    out = _thresholded_mean(*maps, np.asarray(expected, np.float64), np.asarray(noise_sd, np.float64), cfg, np, norm)
    return out.astype(np.float32)


def expected_observation_jax(expected, noise_sd, frame_rate: float, cfg: ObservationConfig, n_phases: int = 4):
    """:func:`expected_observation` in JAX, float32: jit-able and differentiable in ``expected``
    (B, T, N), so in-silico experiments, MEIs included, can run on the planted neurons' expected
    *observed* activity (:class:`twin.simulate.truth.TruthModel` with ``response="observed"``).
    ``noise_sd`` (N,) may be traced; the clip length is static."""
    import jax.numpy as jnp
    from jax.scipy.stats import norm

    maps = [jnp.asarray(v, jnp.float32) for v in observation_operator(expected.shape[1], frame_rate, cfg, n_phases)]
    return _thresholded_mean(*maps, expected, jnp.asarray(noise_sd, jnp.float32), cfg, jnp, norm)

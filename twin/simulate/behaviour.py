"""Behaviour traces per trial: running bouts, pupil radius, saccadic eye position."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from twin.simulate.config import BehaviourConfig


def _ou(rng: np.random.Generator, shape: tuple[int, ...], tau_frames: float) -> np.ndarray:
    """Unit-variance Ornstein-Uhlenbeck noise along the last axis, started at stationarity."""
    a = np.exp(-1.0 / max(tau_frames, 1e-6))
    e = rng.standard_normal(shape) * np.sqrt(1 - a ** 2)
    e[..., 0] = rng.standard_normal(shape[:-1])
    return lfilter([1.0], [1.0, -a], e, axis=-1)


def behaviour_traces(n_trials: int, n_frames: int, frame_rate: float, cfg: BehaviourConfig,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Running speed, pupil radius and eye position for each trial.

    Running: a two-state (still / running) Markov process with mean bout ``mean_bout_s`` and
    stationary running fraction ``run_fraction``; speed while running ~ ``run_speed_cm_s`` with
    slow fluctuations, smoothed on/offsets. Pupil: ``pupil_mean_px`` + dilation following
    running (low-passed, ~2 s) + slow arousal noise. Eye: saccades (Poisson,
    ``saccade_rate_hz``; jumps ~ N(0, ``saccade_sd_deg``), mostly horizontal) with slow
    re-centring drift.

    Returns {"running": (trial, time) cm/s, "pupil": (trial, time) px,
    "eye_position": (trial, time, 2) degrees (x right, y up)}, all float32.
    """
    dt = 1.0 / frame_rate
    shape = (n_trials, n_frames)
    p_stop = dt / cfg.mean_bout_s
    p_start = p_stop * cfg.run_fraction / max(1 - cfg.run_fraction, 1e-6)
    state = np.zeros(shape, bool)
    cur = rng.uniform(size=n_trials) < cfg.run_fraction
    u = rng.uniform(size=shape)
    for t in range(n_frames):
        cur = np.where(cur, u[:, t] >= p_stop, u[:, t] < p_start)
        state[:, t] = cur
    level = cfg.run_speed_cm_s * np.exp(0.3 * _ou(rng, shape, 3.0 * frame_rate))
    smooth = lfilter([1 - np.exp(-dt / 0.7)], [1, -np.exp(-dt / 0.7)], state * level, axis=1,
                     zi=(state[:, :1] * level[:, :1]) * np.exp(-dt / 0.7))[0]
    running = np.maximum(smooth + 0.3 * np.abs(rng.standard_normal(shape)), 0)
    run_lp = lfilter([1 - np.exp(-dt / 2.0)], [1, -np.exp(-dt / 2.0)], np.tanh(running / 10.0), axis=1,
                     zi=np.tanh(running[:, :1] / 10.0) * np.exp(-dt / 2.0))[0]
    pupil = cfg.pupil_mean_px + cfg.pupil_sd_px * (1.2 * (run_lp - cfg.run_fraction) + 0.7 * _ou(rng, shape, 8.0 * frame_rate))
    pupil = np.maximum(pupil, 2.0)
    eye = np.zeros((n_trials, n_frames, 2))
    pos = rng.normal(0, cfg.saccade_sd_deg, (n_trials, 2)) * np.array([1.0, 0.4])
    back = np.exp(-dt / 3.0)
    for t in range(n_frames):
        jump = rng.uniform(size=n_trials) < cfg.saccade_rate_hz * dt
        step = rng.normal(0, cfg.saccade_sd_deg, (n_trials, 2)) * np.array([1.0, 0.4])
        pos = back * pos + jump[:, None] * step + rng.normal(0, 0.05, (n_trials, 2))
        eye[:, t] = pos
    return {"running": running.astype(np.float32), "pupil": pupil.astype(np.float32),
            "eye_position": eye.astype(np.float32)}

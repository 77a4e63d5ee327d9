"""Validation score used for early stopping: per-neuron Pearson correlation over valid frames."""

from __future__ import annotations

import numpy as np


def corr_per_neuron(pred: np.ndarray, resp: np.ndarray, n_frames: np.ndarray, burn_in: int) -> np.ndarray:
    """Pearson r (ddof 0, eps-guarded) per neuron between ``pred`` and ``resp`` (trial, time, N),
    pooled over trials and frames ``burn_in <= t < n_frames``. Returns (N,); constant -> 0."""
    t = np.arange(resp.shape[1])[None, :]
    valid = (t >= burn_in) & (t < np.asarray(n_frames)[:, None])
    p = np.asarray(pred, np.float64)[valid]
    y = np.asarray(resp, np.float64)[valid]
    p, y = p - p.mean(0), y - y.mean(0)
    r = (p * y).mean(0) / (np.sqrt((p ** 2).mean(0) * (y ** 2).mean(0)) + 1e-12)
    return np.nan_to_num(r)

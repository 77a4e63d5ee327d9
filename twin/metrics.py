"""How well a model predicts neurons: the one implementation of SCIENCE.md section 3.

Every metric is per neuron (the last axis, ``unit``). Repeated test trials are laid out as

    responses    (clip, repeat, time, unit)   recorded activity, events/frame
    predictions  (clip, repeat, time, unit)   the model's rate for that very trial (its own
                                              behaviour), or (clip, time, unit) when the
                                              prediction does not depend on the repeat

``NaN`` marks entries that do not exist: a clip shown fewer times than the most-repeated one,
frames past a trial's ``n_frames``, and burn-in frames. Each (clip, time) "sample" with at least
one finite repeat takes part; repeat statistics use the samples with at least two. Unit
conventions (fixed here once, so that no two parts of `twin` differ):

- Pearson correlation with ddof 0, guarded by ``eps`` on the denominator; a constant input
  (zero variance) gives correlation 0, never NaN.
- Variances of responses are ddof 1 (noise variance within a clip's repeats, total variance).
- Signal power follows Schoppe et al. (2016, Front. Comput. Neurosci. 10:10), with the
  clips x frames of the test set as the stimulus dimension and the repeats as the trials.

All functions take NumPy arrays (float32 or float64) and compute in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-12
FEV_THRESHOLD = 0.15
QUALITY_CC_MAX = 0.4
QUALITY_CC_ABS = 0.2

METRIC_NAMES = (
    "single_trial_correlation", "correlation_to_average", "oracle", "noise_variance",
    "total_variance", "fev", "feve", "cc_abs", "cc_max", "cc_norm", "passes_quality",
    "prediction_sd",
)


def _xp(x: Any) -> Any:
    """The array namespace of ``x``: jax.numpy for JAX arrays, else NumPy."""
    if type(x).__module__.startswith("jax"):
        import jax.numpy as jnp

        return jnp
    return np


def corr(x: Any, y: Any, axis: int | tuple[int, ...] = 0, eps: float = EPS) -> Any:
    """Pearson correlation of ``x`` and ``y`` along ``axis`` (ddof 0), ignoring non-finite pairs.

    Args:
      x, y: arrays of one (broadcastable) shape, e.g. (sample, unit).
      axis: the axis (or axes) holding the samples.
      eps: guard on the denominator sqrt(var_x * var_y).
    Returns:
      The remaining axes' correlations in [-1, 1]. A constant or empty input gives 0 (not NaN).
      Works on NumPy arrays (computed in float64) and on JAX arrays (differentiable, float32),
      so training code can use the same definition for its validation correlation.
    """
    xp = _xp(x) if _xp(x) is not np else _xp(y)
    if xp is np:
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
    x, y = xp.broadcast_arrays(x, y)
    valid = xp.isfinite(x) & xp.isfinite(y)
    n = xp.maximum(valid.sum(axis=axis, keepdims=True), 1)
    x = xp.where(valid, x, 0.0)
    y = xp.where(valid, y, 0.0)
    dx = xp.where(valid, x - x.sum(axis=axis, keepdims=True) / n, 0.0)
    dy = xp.where(valid, y - y.sum(axis=axis, keepdims=True) / n, 0.0)
    cov = (dx * dy).sum(axis=axis) / xp.squeeze(n, axis)
    var_x = (dx * dx).sum(axis=axis) / xp.squeeze(n, axis)
    var_y = (dy * dy).sum(axis=axis) / xp.squeeze(n, axis)
    r = cov / xp.maximum(xp.sqrt(var_x * var_y), eps)
    return xp.clip(r, -1.0, 1.0)


def _check(responses: np.ndarray, predictions: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray | None]:
    responses = np.asarray(responses, np.float64)
    if responses.ndim != 4:
        raise ValueError(f"responses must be (clip, repeat, time, unit), got shape {responses.shape}")
    if predictions is None:
        return responses, None
    predictions = np.asarray(predictions, np.float64)
    if predictions.ndim == 3:
        predictions = predictions[:, None]
    if predictions.ndim != 4 or predictions.shape[0] != responses.shape[0] or \
            predictions.shape[2:] != responses.shape[2:] or \
            predictions.shape[1] not in (1, responses.shape[1]):
        raise ValueError(f"predictions of shape {predictions.shape} do not match responses "
                         f"{responses.shape} (clip, repeat, time, unit)")
    predictions = np.broadcast_to(predictions, responses.shape)
    # a prediction only counts where a response exists
    predictions = np.where(np.isfinite(responses), predictions, np.nan)
    return responses, predictions


def _flat(a: np.ndarray) -> np.ndarray:
    """(clip, repeat, time, unit) or (clip, time, unit) -> (sample, unit)."""
    return a.reshape(-1, a.shape[-1])


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    n = np.isfinite(a).sum(axis=axis)
    s = np.where(np.isfinite(a), a, 0.0).sum(axis=axis)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def _repeat_mean(a: np.ndarray) -> np.ndarray:
    """(clip, repeat, time, unit) -> (clip, time, unit) mean over the finite repeats."""
    return _nanmean(a, axis=1)


def _repeat_var(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variance over repeats (ddof 1) and repeat counts, both (clip, time, unit); NaN if n < 2."""
    n = np.isfinite(a).sum(axis=1)
    m = _repeat_mean(a)
    ss = np.where(np.isfinite(a), (a - m[:, None]) ** 2, 0.0).sum(axis=1)
    return np.where(n >= 2, ss / np.maximum(n - 1, 1), np.nan), n


def single_trial_correlation(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per-unit correlation over every test trial and frame (single trials, not averaged).

    Args: responses, predictions as in the module docstring. Returns: (unit,) in [-1, 1].
    """
    responses, predictions = _check(responses, predictions)
    return corr(_flat(responses), _flat(predictions), axis=0)


def correlation_to_average(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per-unit correlation of the repeat-averaged response with the repeat-averaged prediction,
    across clips and frames (Sensorium's "correlation to average"). Returns: (unit,)."""
    responses, predictions = _check(responses, predictions)
    return corr(_flat(_repeat_mean(responses)), _flat(_repeat_mean(predictions)), axis=0)


def prediction_sd(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per-unit standard deviation (ddof 0) of the repeat-averaged prediction across clips and
    frames, over the samples where a response exists. Units: events/frame.

    Correlations ignore a prediction's scale; this is its range. Divided by the noise-free
    truth's on the same trials (``twin evaluate --truth``: ``ratio_to_truth``) it says how much a
    twin compresses the responses (1 = the same range; a twin that predicts the mean where it is
    unsure falls below 1, which flattens tuning curves and lowers selectivity indices).
    Returns: (unit,), NaN where no sample exists."""
    responses, predictions = _check(responses, predictions)
    x = _flat(_repeat_mean(predictions))
    return np.sqrt(_nanmean((x - _nanmean(x, axis=0)) ** 2, axis=0))


def cc_abs(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """CC_abs: corr(trial-averaged prediction, trial-averaged response) over clips x frames.

    The same number as :func:`correlation_to_average` (the connectomics papers' name for it).
    Returns: (unit,).
    """
    return correlation_to_average(responses, predictions)


def noise_variance(responses: np.ndarray) -> np.ndarray:
    """Mean over (clip, frame) samples of the variance over repeats (ddof 1). Returns (unit,),
    NaN where no sample has two repeats. Units: (events/frame)^2."""
    responses, _ = _check(responses)
    var, _ = _repeat_var(responses)
    return _nanmean(_flat(var), axis=0)


def total_variance(responses: np.ndarray) -> np.ndarray:
    """Variance of the responses over all trials and frames (ddof 1). Returns (unit,)."""
    responses, _ = _check(responses)
    flat = _flat(responses)
    n = np.isfinite(flat).sum(axis=0)
    m = _nanmean(flat, axis=0)
    ss = np.where(np.isfinite(flat), (flat - m) ** 2, 0.0).sum(axis=0)
    return np.where(n >= 2, ss / np.maximum(n - 1, 1), np.nan)


def fev(responses: np.ndarray) -> np.ndarray:
    """Fraction of explainable variance, (total - noise) / total. Returns (unit,); NaN for a
    constant unit (total variance 0)."""
    total = total_variance(responses)
    noise = noise_variance(responses)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (total - noise) / total, np.nan)


def feve(responses: np.ndarray, predictions: np.ndarray,
         fev_threshold: float | None = FEV_THRESHOLD) -> np.ndarray:
    """Fraction of explainable variance explained, 1 - (MSE - noise) / (total - noise).

    MSE is the mean squared error over all trials and frames. Returns (unit,), NaN where the unit
    has no explainable variance, and (with ``fev_threshold``, default 0.15) NaN where
    FEV < ``fev_threshold``: FEVE is only reported for units whose responses are reliable.
    """
    responses, predictions = _check(responses, predictions)
    total = total_variance(responses)
    noise = noise_variance(responses)
    mse = _nanmean(_flat((predictions - responses) ** 2), axis=0)
    explainable = total - noise
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(explainable > 0, 1.0 - (mse - noise) / explainable, np.nan)
        if fev_threshold is not None:
            frac = np.where(total > 0, explainable / total, np.nan)
            out = np.where(frac >= fev_threshold, out, np.nan)
    return out


def oracle_correlation(responses: np.ndarray) -> np.ndarray:
    """Jackknife oracle: each trial is predicted by the mean of the other repeats of its clip;
    correlation over all such trials and frames. Samples with fewer than two repeats are
    skipped. Returns (unit,): an upper reference for single-trial correlation; NaN for a unit
    with no repeated sample (nothing to measure)."""
    responses, _ = _check(responses)
    n = np.isfinite(responses).sum(axis=1, keepdims=True)
    total = np.where(np.isfinite(responses), responses, 0.0).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = np.where(n >= 2, (total - responses) / (n - 1), np.nan)
    r = corr(_flat(np.where(n >= 2, responses, np.nan)), _flat(loo), axis=0)
    return np.where((n >= 2).any(axis=(0, 1, 2)), r, np.nan)


def signal_power(responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signal power of each unit and the variance of its repeat-averaged response.

    With N repeats of every sample this is Schoppe et al. (2016):
    SP = (Var(sum_r y_r) - sum_r Var(y_r)) / (N (N - 1)), variances (ddof 0) over the
    stimulus dimension (clips x frames). When clips have different numbers of repeats (NaN
    padding), the same quantity is estimated as Var(mean_r y) - mean over samples of
    var_r(y) / n_r, which equals Schoppe's except for a (small) term from differences between
    whole-repeat means. Returns (sp, var_of_mean), each (unit,).
    """
    responses, _ = _check(responses)
    n_slots = responses.shape[1]
    counts = np.isfinite(responses).sum(axis=1)  # (clip, time, unit)
    keep = counts >= 2
    mean = np.where(keep, _repeat_mean(responses), np.nan)
    var_mean = _var0(_flat(mean))
    if n_slots >= 2 and np.all((counts == 0) | (counts == n_slots)):
        # every sample that exists has all repeats: Schoppe et al.'s formula as published
        y = np.moveaxis(responses, 1, 0).reshape(n_slots, -1, responses.shape[-1])
        sum_var = sum(_var0(y_r) for y_r in y)
        sp = (_var0(y.sum(axis=0)) - sum_var) / (n_slots * (n_slots - 1))
    else:
        var_r, n = _repeat_var(responses)
        noise_over_n = _nanmean(_flat(np.where(keep, var_r / np.maximum(n, 1), np.nan)), axis=0)
        sp = var_mean - noise_over_n
    return sp, var_mean


def _var0(a: np.ndarray) -> np.ndarray:
    """(sample, unit) -> (unit,) variance over finite samples, ddof 0."""
    m = _nanmean(a, axis=0)
    return _nanmean((a - m) ** 2, axis=0)


def cc_max(responses: np.ndarray) -> np.ndarray:
    """CC_max = sqrt(SP / Var(mean_r y)): the best correlation any model can reach with the
    trial-averaged response given its repeat noise (Schoppe et al. 2016). Returns (unit,) in
    [0, 1]; 0 when the unit shows no signal power (SP <= 0) or is constant; NaN when no
    sample was repeated (nothing to measure)."""
    sp, var_mean = signal_power(responses)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(var_mean > 0, sp / var_mean, 0.0)
    return np.where(np.isfinite(var_mean), np.sqrt(np.clip(np.nan_to_num(ratio), 0.0, 1.0)), np.nan)


def cc_norm(cc_abs_values: np.ndarray, cc_max_values: np.ndarray) -> np.ndarray:
    """CC_norm = CC_abs / CC_max (may exceed 1 by noise); NaN where CC_max is 0 or NaN."""
    cc_abs_values = np.asarray(cc_abs_values, np.float64)
    cc_max_values = np.asarray(cc_max_values, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cc_max_values > 0, cc_abs_values / cc_max_values, np.nan)


def passes_quality(cc_abs_values: np.ndarray, cc_max_values: np.ndarray,
                   min_cc_max: float = QUALITY_CC_MAX, min_cc_abs: float = QUALITY_CC_ABS
                   ) -> np.ndarray:
    """The connectomics papers' unit filter: CC_max > 0.4 and CC_abs > 0.2. Returns (unit,) bool
    (False where either is NaN)."""
    return (np.asarray(cc_max_values) > min_cc_max) & (np.asarray(cc_abs_values) > min_cc_abs)


def all_metrics(responses: np.ndarray, predictions: np.ndarray,
                fev_threshold: float | None = FEV_THRESHOLD) -> dict[str, np.ndarray]:
    """Every metric of this module for one set of repeated test trials.

    Args:
      responses: (clip, repeat, time, unit), NaN where absent (see module docstring).
      predictions: (clip, repeat, time, unit) or (clip, time, unit).
    Returns:
      {name: (unit,) array} for each name in :data:`METRIC_NAMES` (``passes_quality`` bool).
    """
    responses, predictions = _check(responses, predictions)
    out = {
        "single_trial_correlation": single_trial_correlation(responses, predictions),
        "correlation_to_average": correlation_to_average(responses, predictions),
        "oracle": oracle_correlation(responses),
        "noise_variance": noise_variance(responses),
        "total_variance": total_variance(responses),
        "fev": fev(responses),
        "feve": feve(responses, predictions, fev_threshold),
        "cc_max": cc_max(responses),
        "prediction_sd": prediction_sd(responses, predictions),
    }
    out["cc_abs"] = out["correlation_to_average"]
    out["cc_norm"] = cc_norm(out["cc_abs"], out["cc_max"])
    out["passes_quality"] = passes_quality(out["cc_abs"], out["cc_max"])
    return {k: out[k] for k in METRIC_NAMES}

"""Readout refit: each neuron's feature vectors and bias refitted on the trained twin's frozen
design by a ridge-penalised Poisson regression, the penalty chosen per neuron by K-fold
cross-validation over the training trials.

Why. On the default synthetic mouse the readouts of the noisiest neurons fit noise: their
correlation with single training trials doubles during training while on validation trials it
stays flat (``experiments/train/fit_gap.py``). A stronger global L1 costs the good neurons what it
gains on the noisy ones, and six validation trials cannot choose a strength per neuron. Given
the core, positions, shifter and modulator, each neuron's evaluation-mode output is a generalised
linear model of its readout design (:meth:`twin.model.readout.ScanReadout.design`)::

    rate_t = (ELU(x_t . w + b) + 1) * gain_t

so each neuron's penalty can be chosen on all of its training data by cross-validation.

Method, per scan and neuron: design columns standardised over the training frames (after the
burn-in); for every penalty ``lam`` in ``penalties`` (ascending) and every fold of trials
(trial ``i`` is in fold ``i % folds``), ``cv_iterations`` Fisher-scoring steps (best of the step
sizes 1, 1/2, 1/4) on

    mean_t [rate_t - y_t log(rate_t + eps)] + lam / 2 * |w|^2     (bias not penalised)

over the other folds, warm-started from the trained readout and then from the previous
penalty's fit, with the Fisher information kept at its value at the trained readout (factored
once per penalty; each step then costs two passes over the design, and the folds are fitted side
by side, so each pass serves all of them). That information comes from one (P x P) product per
frame: each fold's held-out frames' information, summed, gives every fold's fit (the total less
its own fold) and all frames' (the total). The held-out fold's Poisson loss is summed over folds,
each neuron takes the penalty with the smallest, and the final fit on all trials runs
``iterations`` Fisher-scoring steps from the trained readout with the total information kept
fixed too (``exact_final = true`` recomputes it every step, as before 2026-12-06: on 96 neurons x
240 trials of the demo twin the same penalties, held-out losses within 5e-6 and training losses
within 1.5e-5 relative, and 13 (P x P) products per frame fewer). Deterministic: no random
numbers. The training L1 on the features is not part of it.

``cv_together`` (off by default; on in ``experiments/train/demo.toml``) fits every penalty's folds
side by side instead of chaining the penalties: penalties x folds fits, each from the trained
readout, so each pass over the design serves all of them: 2 x cv_iterations + 1 passes instead of
penalties x (2 x cv_iterations + 1). In both schedules each penalty's held-out loss is read from
its fits' linear predictors, which already cover the held-out frames (before 2026-12-07 the chained
grid spent another pass per penalty on it). Each pass carries penalties x folds columns instead of
folds; what that costs per pass was not timed on its own, only the whole refit. Measured on one
scan of a 300-step demo twin (200 neurons, 960 training trials, 43,200 frames, 193 columns; alone
on the 2 cores, 2026-12-07): the scan's whole refit, design included (about 130 s of it), 308 s
chained (with the held-out passes it had then), 226 s together (4 steps
each; 240 s with the blocks of 11 neurons instead of 15 that leave room for the 25 curvatures,
the same fits), with the same penalty for 199 of 200 neurons, mean held-out loss at the chosen
penalty 0.912406 vs 0.912405, validation correlation 0.20356 vs 0.20354; 6 steps together took 263 s
(0.20349). Starting the final fit from the mean of the chosen penalty's fold fits, with 4
steps instead of 10 from the trained readout, saved nothing measurable (234.5 s) and was not kept.
Each on one core, the two side by side (as make demo's members run): 417 s chained, 360 s
together.

``relax_scale`` (off by default; on in ``experiments/train/demo.toml``) then keeps each neuron's
fitted direction ``w`` and refits, without the penalty, only the scale and bias of its drive,
``z = a (x . w) + b`` (Fisher scoring on two parameters per neuron, on the same design: no extra
core pass), as the relaxed lasso does for the lasso's shrinkage. Why: the ridge shrinks the
noisiest neurons' drive towards its mean, which leaves correlations almost unchanged but flattens
their tuning curves, so selectivity indices follow each neuron's noise instead of its tuning. On
the demo twin (seed 0) the median ratio of the twin's gOSI to the planted neuron's fell with
the chosen penalty from 0.65 (penalty 0.1) to 0.05 (penalty 10); relaxed (median a = 1.34,
10th-90th percentile 1.14-2.62) 0.71 to 0.31. Validation correlation 0.1701 (0.1660 without, 0.1595 trained);
held-out natural movies 0.712 of the truth (0.710 without), Gabors 0.716 (0.686), flashing dots
0.670 (0.679); in silico gOSI Spearman 0.42 (0.38), from directional noise 0.64 (0.58),
signal-correlation r 0.64 (0.62). The cost: a neuron with no signal at all gets its
fitted noise scaled up (in the tests up to 9x), so its indices become noise of full size rather
than near zero; filter neurons by their prediction accuracy (CC_abs, CC_max) first. One scale
per readout component instead of one per neuron (3 parameters) was no better: natural 0.707,
gOSI Spearman 0.42, signal-correlation r 0.64.

``variance_floor`` (off by default, 2 in ``experiments/train/demo.toml``; also
``train.variance_floor`` for training) replaces the Poisson loss by the quasi-Poisson loss
``(rate + q) - (y + q) log(rate + q)``, whose score ``(y - rate) / (rate + q)`` is the efficient
one when ``Var(y) ~ rate + q``, with ``q`` this factor times each neuron's mean training response
(0 = Poisson, the same numbers as before). Why: thresholded deconvolved events keep noise events
where the rate is near zero, so their variance does not fall with the rate, and the Poisson loss's
weights ``1 / rate`` over-weight the frames where a neuron is silent. On the default mouse's
repeated natural test clips (scan 1, the planted neurons' expected observation as the rate), the
variance per neuron over frame quintiles of the rate (0.68-1.92 times the neuron's mean) stays
1.1-1.2 times the mean and then rises to 1.75: a floor about twice the mean. On the demo twin
(seed 0, 2026-12-06, refit alone, from its refitted readouts; the same script with the floor at 0
reproduced its numbers exactly): floor 2, held-out natural movies 0.717 of the truth vs 0.709, out
of domain 0.55-0.77 (flashing dots 0.665 vs 0.683), in silico gOSI Spearman 0.41 vs 0.40,
signal-correlation r 0.644 vs 0.633; floor 10: natural 0.717, Gabors 0.737 vs 0.705, flashing dots
0.660. Trained with floor 2 as well (``train.variance_floor``): natural 0.718, out of domain
0.58-0.79 (RDK 0.582 vs 0.545, Gabors 0.654 vs 0.705), validation 0.1704 vs 0.1692 after the refit,
gOSI Spearman 0.40, signal-correlation r 0.656. Seed 1, trained and refitted with floor 2 against
the same seed with Poisson: natural 0.732 vs 0.695, out of domain 0.56-0.81 vs 0.54-0.78 (every type
higher; RDK 0.562 vs 0.541), validation 0.1688 vs 0.1675, gOSI Spearman 0.46 vs 0.30,
signal-correlation r 0.646 vs 0.620. Over the two seeds natural +0.009 and +0.037 and
signal-correlation r +0.02 and +0.03: a consistent gain. Seed 2: natural 0.726 vs 0.696, gOSI
Spearman 0.42, signal-correlation r 0.650. The demo's default since 2026-12-06 (floor 2 in [train]
and [refit] of demo.toml).

Also tried on that twin (2026-12-06) and not kept: a penalty ``w' S w`` (``S`` the neuron's design
correlation; a g-prior, which shrinks every direction of the design alike instead of keeping its
leading ones, by a ridge on the design times ``S^(-1/2)``): held-out natural movies 0.607 vs
0.709, signal-correlation r 0.579. It did remove the common mode that the ridge leaves in the
noisiest neurons: on the natural-movie battery the first principal component of the twin's
errors (z-scored twin minus truth) holds 15% of their variance and follows the truth's population
mean (r 0.88); with the g-prior the twin's first PC share fell to 0.13 (truth 0.18, ridge 0.26).
So the ridge's lean on the shared response is what makes the noisy neurons predictable, and what
inflates the twin's pairwise signal correlations (mean 0.23, truth 0.14). Nor did the g-prior
widen the twin's too narrow spatial-frequency tuning (the evoked response at 0.08 cpd exp(-1.08)
of that at 0.04, exp(-0.83) with the ridge, planted exp(-0.10)) or help gOSI (Spearman 0.36).

``relax_in_cv`` (with ``relax_scale``; off by default) scores each penalty in the
cross-validation by its relaxed fit's held-out loss, as the relaxed lasso chooses its penalty.
Once the scale is refitted, a strong penalty costs little, so neurons choose far stronger ones
(on the demo twin: 129 of 400 the grid's largest, 10, against 10 without) and their scales grow
(median 1.75, 90th percentile 7.4). Held-out natural movies 0.725 of the truth (0.712 with
``relax_scale`` alone), out of domain 0.57-0.77 (RDK 0.574, drifting gratings 0.769, flashing
dots 0.671, Gabors 0.700); but in silico gOSI Spearman 0.37 (0.42), from directional noise 0.59
(0.64), signal-correlation r 0.60 (0.64): the strongly shrunk directions predict movies better
and tuning worse, so the demo keeps it off. With the grid widened to 30 and 100, 95 neurons
chose 100 (scales up to 56 at the 90th percentile) for the same 0.725, gOSI Spearman 0.37 and
signal-correlation r 0.60; that refit (9 penalties) took 545 s alone on the 2 cores.

Tried on the demo twin and not kept (held-out natural movies as a fraction of the planted
neurons', 0.680 trained, 0.710 with this ridge): a Gaussian population prior instead of the ridge
(penalty (w - mu)' Sigma^-1 (w - mu) on the raw weights, mu and a Ledoit-Wolf Sigma from the
ridge-refitted weights of all 400 neurons, its strength chosen per neuron by the same
cross-validation) 0.666; the same with each neuron's prior from the other half of the neurons
0.663; with mu = 0 (the population's covariance only) 0.653. The cross-validation chose strong
priors (3-30 times the prior's own weight), perhaps because the Poisson loss rewards the
population's shared drive while the correlation with a neuron's average response does not
(not tested). Choosing each neuron's ridge penalty by its single-trial correlation on the
held-out folds instead of the Poisson loss: 0.649 (similar penalty counts, other neurons).
A per-neuron output nonlinearity was not built: on the held-out natural movies, even each
neuron's best power of its prediction, chosen against the planted responses themselves, took
the correlation to average only from 0.713 to 0.728 of the truth's (an isotonic map fitted to
them, an upper bound that overfits: 0.780). The readout positions are not where the noisiest
neurons lose either: by quartile of the planted neurons' correlation to average, the median
distance of the readout position from the planted RF centre is 0.74, 0.62, 0.54 and 0.49 RF
radii (the ridge-refitted twin). Lagged design columns (the features one and two frames back: a
per-neuron temporal filter) did not lower the cross-validated loss (100 neurons of scan 1:
0.5779 without, 0.5781 with one lag, 0.5786 with two; validation correlation 0.161, 0.163,
0.160).

Cost: one core pass over the training trials (with several blocks of neurons, ``max_block_mb``
of design each, frames x (features x components + 1) floats per neuron, the blocks wait on disk
under ``scratch_dir`` until their turn), folds + iterations
(P x P) products per neuron and penalties x (2 x cv_iterations + 1) passes over the design (each
serving every fold; with ``cv_together``, 2 x cv_iterations + 1 passes serving every penalty
and fold). On one scan of the demo twin (200 neurons, 10,800 frames, 193 columns; alone on the 2
cores) the refit took 111 s, ~33 s of them building the design; fitting the folds
one after another with a fresh solve per step, as before 2026-12-06, took 143 s (the same
penalties for 199 of 200 neurons, the other a near tie in held-out loss).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RefitConfig:
    """``[refit]`` in a training config."""

    enabled: bool = False
    folds: int = 5                    # cross-validation folds over the training trials
    penalties: list[float] = field(default_factory=lambda: [0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0])
    cv_iterations: int = 8            # steps per penalty and fold (warm-started; curvature fixed)
    iterations: int = 10              # steps of the final fit on all training trials
    exact_final: bool = False         # the final fit's curvature recomputed every step (else kept at the start)
    # Design held in memory per block of neurons. 500 since 2026-12-06: on one scan of the 80-minute
    # mouse the transfer run peaked at 13.1 GB resident with 500 and 20.6 GB with 2,000, same fits.
    max_block_mb: float = 500.0
    chunk_trials: int = 4             # trials per core pass
    scratch_dir: str = ""             # where blocks' designs wait on disk when there are several ("" = temp)
    relax_scale: bool = False         # then refit each neuron's drive scale and bias unpenalised
    relax_in_cv: bool = False         # with relax_scale: penalties chosen by the relaxed fits' held-out loss
    cv_together: bool = False         # all penalties' fits side by side from the trained readout (not chained)
    variance_floor: float = 0.0       # quasi-Poisson Var(y) ~ rate + floor, floor = this x the neuron's mean

    def problem(self) -> tuple[str, str, Any] | None:
        """(field, expected, got) for the first invalid setting, or None."""
        if self.folds < 2:
            return "folds", ">= 2", self.folds
        if not self.penalties or any(p < 0 for p in self.penalties):
            return "penalties", "a non-empty list of penalties >= 0", self.penalties
        if self.cv_iterations < 1 or self.iterations < 1:
            return "iterations", "cv_iterations and iterations >= 1", (self.cv_iterations, self.iterations)
        if self.max_block_mb <= 0 or self.chunk_trials < 1:
            return "max_block_mb", "> 0 (and chunk_trials >= 1)", (self.max_block_mb, self.chunk_trials)
        if not self.variance_floor >= 0:
            return "variance_floor", ">= 0 (0 = Poisson)", self.variance_floor
        if self.relax_in_cv and not self.relax_scale:
            return "relax_in_cv", "used together with relax_scale = true", self.relax_in_cv
        if self.enabled and self.scratch_dir and not os.path.isdir(self.scratch_dir):
            return "scratch_dir", "an existing folder (or empty: the system's temporary folder)", self.scratch_dir
        return None


RELAX_STEPS = 20   # the most Newton steps of ``relax_scale``'s two-parameter fits


def _glm_functions():
    """The GLM's jitted pieces. Every fit runs K fits per neuron at once, one per fold (K = 1 for
    the final fit): parameters th (N, K, P) with the bias last, linear predictors z (N, F, K),
    frame masks m (F, K), penalties lam (N, K); the design x (N, F, P) and y, g (N, F) are shared
    by the K fits, so each pass over the design serves all folds (the passes are what the
    cross-validation's time goes to)."""
    import jax
    import jax.numpy as jnp

    eps = 1e-8

    def predictor(x, th):
        """The linear predictors z (N, F, K) of the K fits: one pass over x."""
        return jnp.einsum("nfp,nkp->nfk", x, th)

    def loss(z, y, g, q, m, th, lam):
        """Per neuron and fit, the mean Poisson loss over the frames where m = 1, + lam/2 |w|^2;
        with a variance floor q (N,) > 0 the quasi-Poisson loss (rate + q) - (y + q) log(rate + q)."""
        rate = (jax.nn.elu(z) + 1.0) * g[..., None]
        shifted, target = rate + q[:, None, None], y[..., None] + q[:, None, None]
        nll = jnp.sum(m * (shifted - target * jnp.log(shifted + eps)), 1) / jnp.maximum(jnp.sum(m, 0), 1.0)
        return nll + 0.5 * lam * jnp.sum(th[..., :-1] ** 2, -1)

    def objective(x, y, g, q, m, th, lam):
        """:func:`loss` of the design x (N, F, P) (constant column last) and parameters th."""
        return loss(predictor(x, th), y, g, q, m, th, lam)

    def _weights(z, y, g, q, m):
        slope = jnp.where(z > 0, 1.0, jnp.exp(jnp.minimum(z, 0.0)))   # d ELU / dz
        gg = g[..., None]
        shifted = (jax.nn.elu(z) + 1.0) * gg + q[:, None, None]       # rate + variance floor
        nf = jnp.maximum(jnp.sum(m, 0), 1.0)                           # (K,)
        dz = m * gg * slope * (1.0 - (y[..., None] + q[:, None, None]) / (shifted + eps)) / nf  # d loss / dz
        w = m * (gg * slope) ** 2 / (shifted + eps) / nf               # Fisher weight
        return dz, w

    def _fisher(x, w):
        """(N, K, P, P) from Fisher weights w (N, F, K), one fit after another (lax.map), so that one
        (N, F, P) product x * w is held at a time (unrolled, the 5 folds held 5: 3.1 GB of
        temporaries for a 0.62 GB design)."""
        return jnp.moveaxis(jax.lax.map(lambda wk: jnp.einsum("nfp,nfq->npq", x * wk[..., None], x),
                                        jnp.moveaxis(w, 2, 0)), 0, 1)

    def curvature(x, y, g, q, m, th):
        """Fisher information of the unpenalised loss (N, K, P, P)."""
        _, w = _weights(predictor(x, th), y, g, q, m)
        return _fisher(x, w)

    @jax.jit
    def _part_fisher(x, w, idx):
        xi = x[:, idx]
        return jnp.einsum("nfp,nfq->npq", xi * w[:, idx, None], xi)

    def fold_curvature(x, y, g, q, valid, th, parts):
        """Fisher information at th (N, P) of every fold's fit, from one pass over the design: the
        information of each fold's held-out frames (index arrays ``parts``, together every valid
        frame once) summed, each fit's being the total less its own fold's. Returns (the folds'
        fits (N, K, P, P), all valid frames (N, 1, P, P)), each normalised by its frame count
        as :func:`curvature` is. K (P x P) products per frame, as :func:`curvature` of the K fits
        makes, would cost K times as much."""
        m = valid.astype(x.dtype)[:, None]
        _, w = _weights(predictor(x, th[:, None]), y, g, q, m)             # / all valid frames
        held = jnp.stack([_part_fisher(x, w[..., 0], jnp.asarray(i)) for i in parts], 1)   # (N, K, P, P)
        total = jnp.sum(held, 1, keepdims=True)
        n_all = float(valid.sum())
        n_fit = np.array([n_all - len(i) for i in parts], np.float32)
        return (total - held) * jnp.asarray(n_all / np.maximum(n_fit, 1.0))[None, :, None, None], total

    def backtrack(state, direction, f, f_of):
        """Per neuron and fit, the best of ``state - size * direction`` for sizes 1, 1/2, 1/4 by
        ``f_of`` (loss (N, K)), or ``state`` itself if none lowers its loss ``f``. ``state`` and
        ``direction`` are matching tuples of a (N, K, ...) array and optionally a (N, F, K) one."""
        for size in (1.0, 0.5, 0.25):
            cand = tuple(v - size * d for v, d in zip(state, direction))
            fc = f_of(cand)
            better = fc < f
            picks = (better[..., None], better[:, None, :])[:len(state)]
            state = tuple(jnp.where(b, c, v) for b, c, v in zip(picks, cand, state))
            f = jnp.where(better, fc, f)
        return state, f

    def _penalised(hess, lam):
        """The Newton system's matrix: curvature + lam on the weights (not the bias) + 1e-6."""
        eye = jnp.eye(hess.shape[-1], dtype=hess.dtype)
        return hess + lam[..., None, None] * eye.at[-1, -1].set(0.0) + 1e-6 * eye

    def factor(hess, lam):
        """LU factors of the fixed curvature's system, once per penalty: with them a step's solve
        took 24 ms instead of 98 ms for 74 neurons x 5 folds of 193 columns (timed alone)."""
        return jax.scipy.linalg.lu_factor(_penalised(hess, lam))

    def step(x, y, g, q, m, th, z, f, lam, lu):
        """One Fisher-scoring step (with the LU factors ``lu`` of a fixed curvature if given, else
        the curvature at th), the best of the step sizes 1, 1/2, 1/4 per neuron and fit, or none
        if none lowers its objective ``f``. Two passes over x: the gradient and x . direction (z
        is linear in th, so candidates cost no pass)."""
        dz, w = _weights(z, y, g, q, m)
        grad = jnp.einsum("nfp,nfk->nkp", x, dz) + lam[..., None] * th.at[..., -1].set(0.0)   # bias free
        if lu is None:
            d = jnp.linalg.solve(_penalised(_fisher(x, w), lam), grad[..., None])[..., 0]
        else:
            d = jax.scipy.linalg.lu_solve(lu, grad[..., None])[..., 0]
        (th, z), f = backtrack((th, z), (d, predictor(x, d)), f, lambda c: loss(c[1], y, g, q, m, c[0], lam))
        return th, z, f

    @jax.jit
    def relax(x, y, g, q, m, th):
        """Refit each neuron's (and fit's) scale a and bias b of its fitted drive, z = a * (x . w)
        + b (th's direction w kept), unpenalised; returns (th with w * a and bias b, a (N, K))."""
        s = jnp.einsum("nfp,nkp->nfk", x[:, :, :-1], th[..., :-1])
        p = jnp.stack([jnp.ones(th.shape[:2], th.dtype), th[..., -1]], -1)          # (N, K, 2): a, b

        def drive(p):
            return p[:, None, :, 0] * s + p[:, None, :, 1]

        def f_of(c):
            return loss(drive(c[0]), y, g, q, m, th, 0.0)

        def body(carry):
            i, p, f, _ = carry
            dz, w = _weights(drive(p), y, g, q, m)
            grad = jnp.stack([jnp.sum(dz * s, 1), jnp.sum(dz, 1)], -1)
            sw, sws = jnp.sum(w, 1), jnp.sum(w * s, 1)
            hess = jnp.stack([jnp.stack([jnp.sum(w * s * s, 1), sws], -1), jnp.stack([sws, sw], -1)], -2)
            d = jnp.linalg.solve(hess + 1e-6 * jnp.eye(2, dtype=s.dtype), grad[..., None])[..., 0]
            (new,), f = backtrack((p,), (d,), f, f_of)
            return i + 1, new, f, jnp.any(new != p)

        # Up to RELAX_STEPS Newton steps, stopping at the first that moves no neuron's (a, b): the
        # next would start from the same (a, b) and loss and so move none either, so stopping
        # there gives the same numbers as running all of them. On a block of the demo twin (11
        # neurons, 43,200 frames) every neuron stopped moving after 3 steps, and the loop took
        # 0.72 s instead of 2.8 s (one core, a training run on the other; 2026-12-07). The whole
        # refit of a member alone on one core was only 6 s faster (648 s vs 654 s).
        _, p, _, _ = jax.lax.while_loop(lambda c: (c[0] < RELAX_STEPS) & c[3], body,
                                        (0, p, f_of((p,)), jnp.asarray(True)))
        return jnp.concatenate([th[..., :-1] * p[..., :1], p[..., 1:]], -1), p[..., 0]

    objective, curvature, step, factor = jax.jit(objective), jax.jit(curvature), jax.jit(step), jax.jit(factor)

    def fit(x, y, g, q, m, th, lam, iterations, hess=None, with_z=False):
        """``iterations`` Fisher-scoring steps (:func:`step`) from th. With ``hess`` that curvature
        is kept fixed (factored once; no new (P x P) products per step), else it is recomputed
        every step. With ``with_z`` returns (th, its linear predictors z (N, F, K) on every frame),
        from which any frames' loss costs no pass over the design."""
        z = predictor(x, th)
        f = loss(z, y, g, q, m, th, lam)
        lu = None if hess is None else factor(hess, lam)
        for _ in range(iterations):
            th, z, f = step(x, y, g, q, m, th, z, f, lam, lu)
        return (th, z) if with_z else th

    return objective, curvature, fit, relax, fold_curvature, jax.jit(loss)


def _standardise():
    """A jitted ``(x, valid) -> (x standardised, mean, sd)``: each design column but the last (the
    constant) centred and scaled to unit s.d. over the valid frames (s.d. <= 1e-6 left at 1),
    means and s.d.s (N, 1, P). In NumPy (single-threaded, with full-size temporaries) this took
    a third of the fits' time."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def standardise(x, valid):
        m = valid.astype(x.dtype)[None, :, None]
        n = jnp.maximum(jnp.sum(m, 1, keepdims=True), 1.0)
        cols = x[..., :-1]
        mean = jnp.sum(cols * m, 1, keepdims=True) / n
        sd = jnp.sqrt(jnp.sum((cols - mean) ** 2 * m, 1, keepdims=True) / n)
        sd = jnp.where(sd > 1e-6, sd, 1.0)
        return jnp.concatenate([(cols - mean) / sd, x[..., -1:]], -1), mean, sd

    return standardise


def _block_size(data, burn_in: int, p: int, cfg: RefitConfig) -> int:
    """Neurons per block: as many as fit ``max_block_mb`` of design (p columns + the bias), and with
    ``cv_together`` of its penalties x folds (P x P) curvatures too (three copies: the tiled
    curvature, its LU factors and the penalised matrix; 11 MB per neuron at the demo's 193
    columns, which a short recording with many neurons per block would otherwise multiply)."""
    n_trials, n_t, n_units = data.response.shape
    per_unit = n_trials * (n_t - burn_in) * (p + 1) * 4
    if cfg.cv_together:
        per_unit += 3 * len(cfg.penalties) * cfg.folds * (p + 1) ** 2 * 4
    return max(1, min(n_units, int(cfg.max_block_mb * 2 ** 20 // per_unit)))


def _design_blocks(model, rid: str, data, burn_in: int, cfg: RefitConfig):
    """Yield (neuron slice, x (N_b, F, G*C + 1) float32 with a last column of ones, gain (N_b, F),
    y (N_b, F), frame mask (F,), trial index (F,)) over blocks of neurons; F = trials x
    (T - burn_in) frames, frames beyond a trial's n_frames masked.

    One core pass over the trials serves every block: with more than one block, each block's
    design is written to its own file under ``cfg.scratch_dir`` (the system's temporary folder
    when empty; removed afterwards) and read back whole when its turn comes. Running the core
    again for every block made the refit's core work grow with the square of the data (blocks x
    trials). Measured (2026-12-06, one scan of the demo twin's config, 200 neurons, alone): with
    twice the demo's training movie (2 blocks) the design took 70.8 s instead of 122.5 s; with
    4x (4 blocks) 139.7 s, where a core pass per block would take about 490 s. The whole refit of
    that 4x twin (both scans): 780 s, against 1,452 s before. On the ensemble demo's seed-0 member
    (2026-12-06, one scan, 960 trials, 14 blocks of 500 MB) the pass took 345 s, 1.1 s of each
    4-trial chunk's 1.36 s going to the Gaussian pooling's gathers; read by a matmul instead
    (:func:`twin.model.readout.pooled_by_matmul`) 138 s, and the member's whole refit 753 s instead
    of 882 s (the test suite on the cores for its first minutes), with the same penalty for 399 of
    400 neurons (validation correlation 0.20113 both)."""
    import jax
    from flax import nnx

    from twin.errors import InputError

    graphdef, state = nnx.split(model)

    @jax.jit
    def design(st, stimulus, behaviour):
        m = nnx.merge(graphdef, st)
        return m.readouts[rid].design(m.features(stimulus), behaviour)

    n_trials, n_t = data.response.shape[:2]
    n_units = data.response.shape[2]
    r = model.readouts[rid]
    g, c = r.feature_weights().shape[1:]
    per = n_t - burn_in
    frames = n_trials * per
    block = _block_size(data, burn_in, g * c, cfg)
    slices = [slice(n0, min(n_units, n0 + block)) for n0 in range(0, n_units, block)]
    valid = (np.arange(burn_in, n_t)[None, :] < np.asarray(data.n_frames)[:, None]).reshape(-1)
    trial = np.repeat(np.arange(n_trials), per)
    on_disk = len(slices) > 1
    with contextlib.ExitStack() as stack:
        if not on_disk:
            xs = [np.empty((n_units, frames, g * c + 1), np.float32)]
            gains = [np.empty((n_units, frames), np.float32)]
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="twin-refit-", dir=cfg.scratch_dir or None))
            need, free = n_units * frames * (g * c + 2) * 4, shutil.disk_usage(tmp).free
            if need > free:
                raise InputError(cfg.scratch_dir or tmp, "refit.scratch_dir",
                                 f"{need / 2 ** 30:.1f} GiB free for the design of {rid}'s {n_units} neurons "
                                 "(or a larger refit.max_block_mb)", f"{free / 2 ** 30:.1f} GiB")
            xs = [np.lib.format.open_memmap(f"{tmp}/x{i}.npy", mode="w+", dtype=np.float32,
                                            shape=(sl.stop - sl.start, frames, g * c + 1))
                  for i, sl in enumerate(slices)]
            gains = [np.lib.format.open_memmap(f"{tmp}/gain{i}.npy", mode="w+", dtype=np.float32,
                                               shape=(sl.stop - sl.start, frames))
                     for i, sl in enumerate(slices)]
        for i in range(0, n_trials, cfg.chunk_trials):
            tr = slice(i, i + cfg.chunk_trials)
            d, gg = design(state, data.stimulus[tr].astype(np.float32), data.behaviour(tr))
            f0, f1 = i * per, min(n_trials, i + cfg.chunk_trials) * per
            d = np.asarray(d[:, burn_in:]).reshape(f1 - f0, n_units, g * c)
            gg = np.asarray(gg[:, burn_in:]).reshape(f1 - f0, n_units)
            for x, gain, sl in zip(xs, gains, slices):
                x[:, f0:f1, :-1] = d[:, sl].transpose(1, 0, 2)
                gain[:, f0:f1] = gg[:, sl].T
        if on_disk:   # one buffer for every block read back: fresh memory costs a page fault per 4 kB
            most = max(sl.stop - sl.start for sl in slices)
            buf_x, buf_gain = np.empty((most, frames, g * c + 1), np.float32), np.empty((most, frames), np.float32)
        for x, gain, sl in zip(xs, gains, slices):
            if on_disk:                                       # a block on disk is read back whole
                nb = sl.stop - sl.start
                np.copyto(buf_x[:nb], x)
                np.copyto(buf_gain[:nb], gain)
                x, gain = buf_x[:nb], buf_gain[:nb]
            x[..., -1] = 1.0                                  # the bias column
            y = np.asarray(data.response[:, burn_in:, sl], np.float32).reshape(frames, -1).T
            yield sl, x, gain, y, valid, trial


def refit_scan(model, rid: str, data, burn_in: int, cfg: RefitConfig, progress=None) -> dict[str, np.ndarray]:
    """Refit scan ``rid``'s readout feature vectors and bias in ``model`` (in place) on training
    trials ``data`` (:class:`twin.train.data.ScanData`). Returns per-neuron arrays: ``penalty``
    (chosen), ``cv_loss`` (N, penalties) held-out (quasi-)Poisson loss per frame, ``train_loss_before`` /
    ``train_loss_after`` (all training frames, unpenalised), ``scale`` (the ``relax_scale``
    factor; 1 without it)."""
    import jax.numpy as jnp

    objective, curvature, fit, relax, fold_curvature, loss_of_z = _glm_functions()
    standardise = _standardise()
    lams = np.sort(np.asarray(cfg.penalties, np.float32))
    r = model.readouts[rid]
    w_all = np.array(r.feature_weights())               # (N, G, C)
    b_all = np.array(r.bias[...])
    n_units, g, c = w_all.shape
    out = {"penalty": np.zeros(n_units, np.float32), "cv_loss": np.zeros((n_units, len(lams)), np.float32),
           "train_loss_before": np.zeros(n_units, np.float32), "train_loss_after": np.zeros(n_units, np.float32),
           "scale": np.ones(n_units, np.float32)}
    for sl, x, gain, y, valid, trial in _design_blocks(model, rid, data, burn_in, cfg):
        nb = x.shape[0]
        x, mean, sd = standardise(x, valid)                   # a JAX array from here on
        mean, sd = np.asarray(mean), np.asarray(sd)
        w0 = w_all[sl].reshape(nb, g * c)
        th0 = np.concatenate([w0 * sd[:, 0], (b_all[sl] + np.sum(mean[:, 0] * w0, 1))[:, None]], 1)
        th0 = jnp.asarray(th0, jnp.float32)
        # quasi-Poisson variance floor per neuron (events per frame; 0 = Poisson)
        q = cfg.variance_floor * np.mean(y, axis=1, where=valid[None, :])
        y, gain, q = jnp.asarray(y), jnp.asarray(gain), jnp.asarray(q, jnp.float32)
        fold = trial % cfg.folds
        folds = [k for k in range(cfg.folds) if np.any(valid & (fold == k))]
        fit_m = jnp.asarray(np.stack([valid & (fold != k) for k in folds], 1), jnp.float32)    # (F, K)
        held_m = jnp.asarray(np.stack([valid & (fold == k) for k in folds], 1), jnp.float32)
        n_held = np.asarray(held_m).sum(0)                                                     # (K,)
        th = jnp.broadcast_to(th0[:, None], (nb, len(folds), th0.shape[1]))
        # at the trained readout, kept for every penalty (and, unless exact_final, the final fit)
        hess, hess_all = fold_curvature(x, y, gain, q, valid, th0, [np.flatnonzero(valid & (fold == k)) for k in folds])
        cv = np.zeros((nb, len(lams)))
        nk = len(folds)
        # penalties fitted in groups: all at once from the trained readout (cv_together), or one at
        # a time in ascending order, each warm-started from the last one's fit (chained)
        for cols in [np.arange(len(lams))] if cfg.cv_together else np.arange(len(lams))[:, None]:
            nl = len(cols)
            lam_g = jnp.asarray(np.broadcast_to(np.repeat(lams[cols], nk), (nb, nl * nk)), jnp.float32)
            fit_g, held_g = jnp.tile(fit_m, (1, nl)), jnp.tile(held_m, (1, nl))
            th, z = fit(x, y, gain, q, fit_g, jnp.tile(th, (1, nl, 1)), lam_g, cfg.cv_iterations,
                        jnp.tile(hess, (1, nl, 1, 1)), with_z=True)
            zero = jnp.zeros((nb, nl * nk), jnp.float32)
            if cfg.relax_scale and cfg.relax_in_cv:
                held = objective(x, y, gain, q, held_g, relax(x, y, gain, q, fit_g, th)[0], zero)
            else:   # the held-out frames' loss from the fits' own predictors: no pass over x
                held = loss_of_z(z, y, gain, q, held_g, th, zero)
            cv[:, cols] = np.asarray(held).reshape(nb, nl, nk) @ n_held / max(n_held.sum(), 1.0)
            if progress is not None:
                progress.update(nl)
        choice = np.argmin(cv, axis=1)
        lam = jnp.asarray(lams[choice], jnp.float32)[:, None]
        all_m = jnp.asarray(valid[:, None], jnp.float32)
        th = fit(x, y, gain, q, all_m, th0[:, None], lam, cfg.iterations, None if cfg.exact_final else hess_all)
        scale = np.ones(nb, np.float32)
        if cfg.relax_scale:
            th, scale = relax(x, y, gain, q, all_m, th)
            scale = np.asarray(scale[:, 0])
        zero = jnp.zeros((nb, 1), jnp.float32)
        before = np.asarray(objective(x, y, gain, q, all_m, th0[:, None], zero))[:, 0]
        after = np.asarray(objective(x, y, gain, q, all_m, th, zero))[:, 0]
        th = np.asarray(th[:, 0], np.float64)
        ok = np.isfinite(th).all(1) & np.isfinite(after)
        w = th[:, :-1] / sd[:, 0]
        b = th[:, -1] - np.sum(mean[:, 0] * w, 1)
        w_all[sl] = np.where(ok[:, None], w, w0).reshape(nb, g, c)
        b_all[sl] = np.where(ok, b, b_all[sl])
        out["penalty"][sl] = lams[choice]
        out["cv_loss"][sl] = cv
        out["train_loss_before"][sl] = before
        out["train_loss_after"][sl] = np.where(ok, after, before)
        out["scale"][sl] = np.where(ok, scale, 1.0)
        if progress is not None:
            progress.update(1)
    r.set_feature_weights(w_all)
    r.bias[...] = jnp.asarray(b_all, jnp.float32)
    return out


def refit_readouts(model, train_data: dict, burn_in: int, cfg: RefitConfig, progress: bool = True):
    """Refit every scan's readout of ``model`` in place (see the module docstring); returns a
    pandas table, one row per neuron: recording_id, unit index, chosen penalty, held-out loss at
    the chosen and at the smallest penalty, training loss before and after, relaxed scale."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows = []
    total = 0
    for rid, d in train_data.items():
        g, c = model.readouts[rid].feature_weights().shape[1:]
        total += -(-d.response.shape[2] // _block_size(d, burn_in, g * c, cfg)) * (len(cfg.penalties) + 1)
    with tqdm(total=total, desc="refit readouts", unit="fit", disable=not progress) as bar:
        for rid, d in train_data.items():
            got = refit_scan(model, rid, d, burn_in, cfg, bar)
            lams = np.sort(np.asarray(cfg.penalties, np.float32))
            pick = np.searchsorted(lams, got["penalty"])
            rows.append(pd.DataFrame({
                "recording_id": rid, "unit_index": np.arange(len(got["penalty"])), "penalty": got["penalty"],
                "cv_loss": got["cv_loss"][np.arange(len(pick)), pick], "cv_loss_weakest": got["cv_loss"][:, 0],
                "train_loss_before": got["train_loss_before"], "train_loss_after": got["train_loss_after"],
                "scale": got["scale"]}))
    return pd.concat(rows, ignore_index=True)

"""Orientation, direction, spatial- and temporal-frequency tuning and phase invariance.

Stimuli come from :mod:`twin.stimuli` (drifting gratings, directional pink noise). Directions
are counter-clockwise from rightward (degrees); orientation = direction mod 180.

* ``gOSI = |sum_d r_d e^{2 i theta_d}| / sum_d r_d``, ``gDSI = |sum_d r_d e^{i theta_d}| / sum_d r_d``
  on the trial-averaged mean rates ``r_d``; preferred orientation/direction are the angles of
  those sums.
* Permutation p-values: the direction labels of all trials (direction x repeat) are shuffled
  together (one permutation shared by every neuron, so the test is vectorised), the tuning
  curve re-averaged and gOSI/gDSI recomputed; ``p = (1 + #{null >= observed}) / (1 + n_perm)``.
  Repeats are grating starting phases and independent noise seeds, so on a noise-free model
  the null still carries the stimulus-driven variability across repeats.
* A bimodal von Mises fit ``b + a1 e^{k(cos(t-mu)-1)} + a2 e^{k(cos(t-mu-pi)-1)}`` for every
  neuron at once (grid + vectorised Levenberg-Marquardt).
* Phase invariance: ``F1/F0`` of the time course to a drifting grating at each neuron's
  preferred direction and SF (the SF sweep, at ``tf_hz``): ``F0`` = mean rate, ``F1`` = twice
  the amplitude of its Fourier component at the grating TF over a whole number of cycles.
  ``F1/F0 > 1`` = simple, ``< 1`` = complex.
* Evoked responses: the battery includes a uniform grey clip; its mean response is the
  neuron's spontaneous rate (``blank_response``). With ``modulation_baseline = "blank"`` (the
  default) F1/F0 divides by ``F0 - blank`` (F0 corrected for spontaneous activity, as in Skottun
  et al. 1991), so a neuron's (or a twin's) spontaneous rate does not make a simple cell look
  complex. With ``selectivity_baseline = "blank"`` (default "none": raw rates) gOSI, gDSI and
  their permutation tests use each trial's response above it, ``max(r - blank, 0)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from twin.insilico.common import dataset, scored


def selectivity(r: np.ndarray, directions_deg: np.ndarray) -> dict[str, np.ndarray]:
    """gOSI, gDSI, preferred orientation [0,180) and direction [0,360) in degrees.

    Args:
      r: (..., n_directions) non-negative responses.
      directions_deg: (n_directions,) directions of motion.
    Returns:
      dict of (...) arrays ``gosi, gdsi, pref_ori, pref_dir``.
    """
    r = np.asarray(r, np.float64)
    th = np.deg2rad(np.asarray(directions_deg, np.float64))
    total = np.maximum(r.sum(-1), 1e-12)
    z2 = (r * np.exp(2j * th)).sum(-1)
    z1 = (r * np.exp(1j * th)).sum(-1)
    return {"gosi": np.abs(z2) / total, "gdsi": np.abs(z1) / total,
            "pref_ori": (np.rad2deg(np.angle(z2)) / 2) % 180.0, "pref_dir": np.rad2deg(np.angle(z1)) % 360.0}


def permutation_p(trials: np.ndarray, directions_deg: np.ndarray, n_permutations: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Permutation p-values of gOSI and gDSI.

    Args:
      trials: (n_directions, n_repeats, n_units) responses per trial.
    Returns:
      ``gosi_p``, ``gdsi_p``: (n_units,) in (0, 1].
    """
    nd, nr, nu = trials.shape
    obs = selectivity(trials.mean(1).T, directions_deg)
    flat = np.asarray(trials, np.float64).reshape(nd * nr, nu)
    th = np.deg2rad(np.asarray(directions_deg, np.float64))
    # a shuffled tuning curve's vector sums are linear in the trials: for a permutation matrix
    # the direction of trial j is that of its new slot, so e^{i m theta} weights are permuted
    e2 = np.repeat(np.exp(2j * th), nr) / nr                       # (nd * nr,) slot weights
    e1 = np.repeat(np.exp(1j * th), nr) / nr
    total = np.maximum(flat.sum(0) / nr, 1e-12)                    # invariant under permutation
    ge_o = np.zeros(nu)
    ge_d = np.zeros(nu)
    done = 0
    while done < n_permutations:     # blocks of permutations as one matrix product each
        b = min(256, n_permutations - done)
        perms = np.stack([rng.permutation(nd * nr) for _ in range(b)])   # (b, nd*nr): slot -> trial
        w2 = np.zeros((b, nd * nr), np.complex128)
        w1 = np.zeros_like(w2)
        rows = np.arange(b)[:, None]
        w2[rows, perms] = e2[None]
        w1[rows, perms] = e1[None]
        ge_o += (np.abs(w2 @ flat) / total >= obs["gosi"] - 1e-12).sum(0)
        ge_d += (np.abs(w1 @ flat) / total >= obs["gdsi"] - 1e-12).sum(0)
        done += b
    return {"gosi_p": (1 + ge_o) / (1 + n_permutations), "gdsi_p": (1 + ge_d) / (1 + n_permutations)}


def _vm2(p: np.ndarray, th: np.ndarray) -> np.ndarray:
    """Bimodal von Mises curves: p (..., 5) = (b, a1, a2, mu, k), th (D,) -> (..., D)."""
    b, a1, a2, mu, k = (p[..., i:i + 1] for i in range(5))
    return b + a1 * np.exp(k * (np.cos(th - mu) - 1)) + a2 * np.exp(k * (np.cos(th - mu - np.pi) - 1))


_KAPPA = (0.05, 50.0)


def _vm_grid(y: np.ndarray, th: np.ndarray) -> np.ndarray:
    """Best (b, a1, a2, mu, k) per row of ``y`` (N, D) on a (mu, kappa) grid; the linear
    parameters solved in closed form (a1, a2 >= 0 by trying the constrained sub-models)."""
    n = len(y)
    mus = np.deg2rad(np.arange(0.0, 360.0, 5.0))
    kappas = np.geomspace(*_KAPPA, 28)
    best = np.full(n, np.inf)
    out = np.zeros((n, 5))
    ones = np.ones_like(th)
    for mu in mus:
        for k in kappas:
            e1 = np.exp(k * (np.cos(th - mu) - 1))
            e2 = np.exp(k * (np.cos(th - mu - np.pi) - 1))
            for use in ((1, 1), (1, 0), (0, 1), (0, 0)):
                cols = [ones] + [e for e, u in zip((e1, e2), use) if u]
                X = np.stack(cols, 1)                                  # (D, q)
                coef = y @ np.linalg.pinv(X).T                         # (N, q)
                full = np.zeros((n, 3))
                full[:, [0] + [1 + i for i, u in enumerate(use) if u]] = coef
                ok = (full[:, 1] >= 0) & (full[:, 2] >= 0)
                sse = ((coef @ X.T - y) ** 2).sum(1)
                better = ok & (sse < best)
                best = np.where(better, sse, best)
                out[better, :3] = full[better]
                out[better, 3], out[better, 4] = mu, k
    return out


def _vm_refine(p: np.ndarray, y: np.ndarray, th: np.ndarray, n_iter: int = 30) -> np.ndarray:
    """Vectorised Levenberg-Marquardt on every row at once (a1, a2 >= 0, kappa in bounds)."""
    lo = np.array([-np.inf, 0, 0, -np.inf, _KAPPA[0]])
    hi = np.array([np.inf, np.inf, np.inf, np.inf, _KAPPA[1]])
    lam = np.full(len(p), 1e-3)

    def sse(q):
        return ((_vm2(q, th) - y) ** 2).sum(1)

    cur = sse(p)
    for _ in range(n_iter):
        b, a1, a2, mu, k = (p[:, i:i + 1] for i in range(5))
        c1, c2 = np.cos(th - mu), np.cos(th - mu - np.pi)
        e1, e2 = np.exp(k * (c1 - 1)), np.exp(k * (c2 - 1))
        s1, s2 = np.sin(th - mu), np.sin(th - mu - np.pi)
        J = np.stack([np.ones_like(e1), e1, e2, a1 * e1 * k * s1 + a2 * e2 * k * s2,
                      a1 * e1 * (c1 - 1) + a2 * e2 * (c2 - 1)], -1)     # (N, D, 5)
        r = _vm2(p, th) - y
        A = np.einsum("ndi,ndj->nij", J, J)
        g = np.einsum("ndi,nd->ni", J, r)
        A = A + lam[:, None, None] * (np.eye(5) * np.maximum(np.diagonal(A, axis1=1, axis2=2), 1e-12)[:, None, :])
        step = np.linalg.solve(A + 1e-12 * np.eye(5), -g[..., None])[..., 0]
        new = np.clip(p + step, lo, hi)
        val = sse(new)
        ok = val < cur
        p = np.where(ok[:, None], new, p)
        cur = np.where(ok, val, cur)
        lam = np.where(ok, lam * 0.3, lam * 10)
    return p


def fit_von_mises(r: np.ndarray, directions_deg: np.ndarray) -> dict[str, np.ndarray]:
    """Bimodal von Mises fit per neuron (peaks ``mu`` and ``mu + 180``, shared width), every
    neuron at once: a (mu, kappa) grid with closed-form linear parameters, then vectorised
    Levenberg-Marquardt (a1, a2 >= 0, kappa in [0.05, 50]).

    Args:
      r: (n_units, n_directions) mean responses.
    Returns:
      (n_units,) arrays ``vm_mu`` (deg, [0,360): the larger peak), ``vm_kappa``, ``vm_a1``,
      ``vm_a2``, ``vm_baseline``, ``vm_r2``.
    """
    th = np.deg2rad(np.asarray(directions_deg, np.float64))
    y = np.asarray(r, np.float64)
    out = {k: np.full(len(y), np.nan) for k in ("vm_mu", "vm_kappa", "vm_a1", "vm_a2", "vm_baseline", "vm_r2")}
    span = y.max(1) - y.min(1) if y.size else np.zeros(0)
    fit = np.isfinite(span) & (span > 1e-12)
    if not fit.any():
        return out
    yy = y[fit]
    p = _vm_refine(_vm_grid(yy, th), yy, th)
    b, a1, a2, mu, k = p.T
    swap = a2 > a1
    a1, a2, mu = np.where(swap, a2, a1), np.where(swap, a1, a2), np.where(swap, mu + np.pi, mu)
    ss = ((yy - yy.mean(1, keepdims=True)) ** 2).sum(1)
    res = ((_vm2(p, th) - yy) ** 2).sum(1)
    out["vm_mu"][fit] = np.rad2deg(mu) % 360
    out["vm_kappa"][fit], out["vm_a1"][fit], out["vm_a2"][fit], out["vm_baseline"][fit] = k, a1, a2, b
    out["vm_r2"][fit] = 1 - res / np.maximum(ss, 1e-12)
    return out


def f1_f0(r: np.ndarray, tf_hz: float, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F0) and first-harmonic amplitude (F1) of time courses at ``tf_hz``.

    Uses the longest whole number of cycles from the start of ``r`` (..., T, N) (all of it when
    shorter than a cycle). Returns ``(F0, F1)``, each (..., N).
    """
    t_total = r.shape[-2]
    n_cyc = int(np.floor(t_total * tf_hz / frame_rate))
    n = int(round(n_cyc * frame_rate / tf_hz)) if n_cyc >= 1 else t_total
    n = min(max(n, 1), t_total)
    x = np.asarray(r[..., :n, :], np.float64)
    t = np.arange(n) / frame_rate
    ph = np.exp(-2j * np.pi * tf_hz * t)[:, None]
    f0 = x.mean(-2)
    f1 = 2 * np.abs((x * ph).mean(-2))
    return f0, f1


def _grating(model, direction: float, sf: float, tf: float, phase: float, n_frames: int, contrast: float):
    from twin.stimuli import drifting_grating

    return drifting_grating(n_frames, tuple(model.image_shape), direction_deg=float(direction), sf_cpd=float(sf),
                            tf_hz=float(tf), pixel_size_deg=model.pixel_size_deg, frame_rate=model.frame_rate,
                            phase_deg=float(phase), contrast=contrast)


def directions(cfg) -> np.ndarray:
    """The equally spaced directions of motion, degrees."""
    return np.arange(cfg.n_directions) * 360.0 / cfg.n_directions


def tuning_clips(model, cfg, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Every distinct clip of the tuning battery (the same for every scan), grey levels.

    Returns ``clips`` (n, T, H, W), ``tf`` (n,) the temporal frequency of each clip (1 Hz for
    noise: unused) and index arrays into ``clips``: ``"grating"`` (n_dir, n_phases), ``"noise"``
    (n_dir, noise_repeats), ``"sf"`` (n_sf, n_dir), ``"tf"`` (n_tf, n_dir), ``"blank"`` (1,): a uniform
    grey clip (the spontaneous rate). A grating that appears
    in several runs (the SF and TF sweeps at the direction run's SF/TF, phase 0) is shown once.
    """
    from twin.stimuli import GREY, directional_noise

    dirs = directions(cfg)
    T = cfg.n_frames
    clips: list[np.ndarray] = []
    tfs: list[float] = []
    seen: dict[tuple, int] = {}

    def grating(d, sf, tf, phase):
        key = ("g", round(float(d), 6), round(float(sf), 9), round(float(tf), 9), round(float(phase) % 360, 6))
        if key not in seen:
            seen[key] = len(clips)
            clips.append(_grating(model, d, sf, tf, phase, T, cfg.contrast))
            tfs.append(float(tf))
        return seen[key]

    idx = {"grating": np.array([[grating(d, cfg.sf_cpd, cfg.tf_hz, 360.0 * p / cfg.n_phases)
                                 for p in range(cfg.n_phases)] for d in dirs], np.int64)}
    seeds = np.random.SeedSequence(seed).generate_state(cfg.noise_repeats)
    noise = np.zeros((len(dirs), cfg.noise_repeats), np.int64)
    for a, d in enumerate(dirs):
        for b, s in enumerate(seeds):
            noise[a, b] = len(clips)
            clips.append(directional_noise(T, tuple(model.image_shape), direction_deg=float(d),
                                           pixel_size_deg=model.pixel_size_deg, frame_rate=model.frame_rate,
                                           seed=int(s), speed_deg_s=cfg.noise_speed_deg_s))
            tfs.append(1.0)
    idx["noise"] = noise
    idx["sf"] = np.array([[grating(d, f, cfg.tf_hz, 0.0) for d in dirs] for f in cfg.sf_list], np.int64)
    idx["tf"] = np.array([[grating(d, cfg.sf_cpd, f, 0.0) for d in dirs] for f in cfg.tf_list], np.int64)
    idx["blank"] = np.array([len(clips)], np.int64)
    clips.append(np.full_like(clips[0], GREY))
    tfs.append(1.0)
    return np.stack(clips).astype(np.float32), np.asarray(tfs), idx


def tuning_stimuli(model, cfg, seed: int) -> dict[str, np.ndarray]:
    """Every clip of the tuning battery by run, grey levels (duplicates included).

    Returns {"grating": (n_dir, n_phases, T, H, W), "noise": (n_dir, n_rep, T, H, W),
    "sf": (n_sf, n_dir, T, H, W), "tf": (n_tf, n_dir, T, H, W), "blank": (1, T, H, W)}.
    """
    clips, _, idx = tuning_clips(model, cfg, seed)
    return {k: clips[v] for k, v in idx.items()}


def _f1_weights(tf_hz: np.ndarray, n_frames: int, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Per clip (n,) weights over ``n_frames`` frames: F0 = sum w0 r, F1 = 2 |sum w1 r| over the
    longest whole number of cycles from the start (all frames when shorter than a cycle)."""
    n = len(tf_hz)
    w0 = np.zeros((n, n_frames))
    w1 = np.zeros((n, n_frames), np.complex128)
    t = np.arange(n_frames) / frame_rate
    for i, tf in enumerate(np.asarray(tf_hz, np.float64)):
        n_cyc = int(np.floor(n_frames * tf / frame_rate))
        k = int(round(n_cyc * frame_rate / tf)) if n_cyc >= 1 else n_frames
        k = min(max(k, 1), n_frames)
        w0[i, :k] = 1.0 / k
        w1[i, :k] = np.exp(-2j * np.pi * tf * t[:k]) / k
    return w0, w1


def clip_stats(model, units: pd.DataFrame, clips: np.ndarray, tf_hz: np.ndarray, batch: int):
    """Mean rate, F1 and F0 per clip and unit over scored frames, each (n_clips, n_units);
    every model call answers for every unit, and each batch is reduced at once."""
    from twin.insilico.engine import iter_responses

    n = len(clips)
    T = clips.shape[1] - int(model.burn_in)
    w0, w1 = _f1_weights(tf_hz, T, model.frame_rate)
    mean = np.empty((n, len(units)))
    f0 = np.empty_like(mean)
    f1 = np.empty_like(mean)
    for s, r in iter_responses(model, units, clips, batch):
        r = scored(model, r).astype(np.float64)                          # (b, T', N)
        sl = slice(s, s + len(r))
        mean[sl] = r.mean(1)
        f0[sl] = np.einsum("bt,btn->bn", w0[sl], r)
        f1[sl] = 2 * np.abs(np.einsum("bt,btn->bn", w1[sl], r))
    return mean, f1, f0


def run_tuning(model, units: pd.DataFrame, cfg, seed: int, progress=None) -> xr.Dataset:
    """The tuning battery for ``units`` (see :func:`twin.insilico.common.unit_table`).

    Returns an xarray Dataset on dim ``unit`` (plus ``direction``, ``repeat``, ``noise_repeat``,
    ``sf``, ``tf``) with the trial responses (mean rate per frame over scored frames) and the
    per-unit metrics named in the module docstring; noise-based metrics carry a ``noise_`` prefix.
    """
    rng = np.random.default_rng(seed)
    clips, tfs, idx = tuning_clips(model, cfg, seed)
    dirs = directions(cfg)
    n = len(units)
    mean, f1_all, f0_all = clip_stats(model, units, clips, tfs, cfg.batch)
    if progress is not None:
        progress.update(n)
    g = mean[idx["grating"]]                           # (n_dir, n_phases, n)
    nz = mean[idx["noise"]]
    sf_mean, sf_f1, sf_f0 = mean[idx["sf"]], f1_all[idx["sf"]], f0_all[idx["sf"]]
    tf_mean = mean[idx["tf"]]
    blank = mean[idx["blank"][0]]                      # (n,) spontaneous rate
    base = blank if cfg.selectivity_baseline == "blank" else np.zeros(n)
    f0_base = blank if cfg.modulation_baseline == "blank" else np.zeros(n)
    data: dict = {"grating_response": (("unit", "direction", "repeat"), g.transpose(2, 0, 1)),
                  "noise_response": (("unit", "direction", "noise_repeat"), nz.transpose(2, 0, 1)),
                  "blank_response": ("unit", blank)}
    for prefix, trials in (("", g), ("noise_", nz)):
        trials = np.maximum(trials - base, 0.0)        # evoked (selectivity_baseline = "blank")
        sel = selectivity(trials.mean(1).T, dirs)
        sel.update(permutation_p(trials, dirs, cfg.n_permutations, rng))
        for k, v in sel.items():
            data[prefix + k] = ("unit", v)
    if cfg.von_mises:
        for k, v in fit_von_mises(g.mean(1).T, dirs).items():
            data[k] = ("unit", v)
    # SF / TF curves at each neuron's preferred grating direction (nearest tested direction)
    pd_idx = np.argmax(g.mean(1), axis=0)
    cols = np.arange(n)
    sf_curve = sf_mean[:, pd_idx, cols].T
    tf_curve = tf_mean[:, pd_idx, cols].T
    data["sf_response"] = (("unit", "sf"), sf_curve)
    data["tf_response"] = (("unit", "tf"), tf_curve)
    data["pref_sf"] = ("unit", np.asarray(cfg.sf_list)[np.argmax(sf_curve, 1)])
    data["pref_tf"] = ("unit", np.asarray(cfg.tf_list)[np.argmax(tf_curve, 1)])
    best_sf = np.argmax(sf_curve, 1)
    f0 = sf_f0[best_sf, pd_idx, cols]
    f1 = sf_f1[best_sf, pd_idx, cols]
    evoked = f0 - f0_base
    # no response above the spontaneous rate at the preferred grating: F1/F0 undefined
    ratio = np.where(evoked > 0, f1 / np.where(evoked > 0, evoked, 1.0), np.nan)
    data["f0"], data["f1"] = ("unit", f0), ("unit", f1)       # at the preferred direction and SF, raw
    data["f1_f0"] = ("unit", ratio)
    data["phase_invariance"] = ("unit", 1.0 - np.clip(ratio, 0.0, 2.0) / 2.0)
    data["tuned"] = ("unit", data["gosi_p"][1] < cfg.tuned_p)
    attrs = {"response": "mean expected events per frame over frames after burn-in",
             "permutation": "direction labels shuffled across all direction x repeat trials; repeats are "
                            "grating starting phases (grating_*) or noise seeds (noise_*)",
             "phase_invariance": "1 - clip(F1/F0, 0, 2) / 2 (0 simple .. 1 complex)",
             "selectivity_baseline": ("gOSI/gDSI on max(trial - blank_response, 0)"
                                      if cfg.selectivity_baseline == "blank" else "gOSI/gDSI on the raw rates"),
             "modulation_baseline": ("F1 / (F0 - blank_response)" if cfg.modulation_baseline == "blank"
                                     else "F1 / F0 on the raw rates"),
             "sf_cpd": cfg.sf_cpd, "tf_hz": cfg.tf_hz}
    coords = {"direction": dirs, "repeat": np.arange(cfg.n_phases), "noise_repeat": np.arange(cfg.noise_repeats),
              "sf": np.asarray(cfg.sf_list, np.float64), "tf": np.asarray(cfg.tf_list, np.float64)}
    return dataset(units, data, coords, attrs)

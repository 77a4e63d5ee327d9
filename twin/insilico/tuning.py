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
* A bimodal von Mises fit ``b + a1 e^{k(cos(t-mu)-1)} + a2 e^{k(cos(t-mu-pi)-1)}`` (scipy
  ``least_squares``).
* Phase invariance: ``F1/F0`` of the time course to a drifting grating at each neuron's
  preferred direction and SF (the SF sweep, at ``tf_hz``): ``F0`` = mean rate, ``F1`` = twice
  the amplitude of its Fourier component at the grating TF over a whole number of cycles.
  ``F1/F0 > 1`` = simple, ``< 1`` = complex.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import least_squares

from twin.insilico.common import by_scan, dataset, iter_batches, scored


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
    flat = trials.reshape(nd * nr, nu)
    ge_o = np.zeros(nu)
    ge_d = np.zeros(nu)
    for _ in range(n_permutations):
        perm = flat[rng.permutation(nd * nr)].reshape(nd, nr, nu).mean(1).T
        null = selectivity(perm, directions_deg)
        ge_o += null["gosi"] >= obs["gosi"] - 1e-12
        ge_d += null["gdsi"] >= obs["gdsi"] - 1e-12
    return {"gosi_p": (1 + ge_o) / (1 + n_permutations), "gdsi_p": (1 + ge_d) / (1 + n_permutations)}


def _vm2(p: np.ndarray, th: np.ndarray) -> np.ndarray:
    b, a1, a2, mu, k = p
    return b + a1 * np.exp(k * (np.cos(th - mu) - 1)) + a2 * np.exp(k * (np.cos(th - mu - np.pi) - 1))


def fit_von_mises(r: np.ndarray, directions_deg: np.ndarray) -> dict[str, np.ndarray]:
    """Bimodal von Mises fit per neuron (peaks ``mu`` and ``mu + 180``, shared width).

    Args:
      r: (n_units, n_directions) mean responses.
    Returns:
      (n_units,) arrays ``vm_mu`` (deg, [0,360): the larger peak), ``vm_kappa``, ``vm_a1``,
      ``vm_a2``, ``vm_baseline``, ``vm_r2``.
    """
    th = np.deg2rad(np.asarray(directions_deg, np.float64))
    out = {k: np.full(len(r), np.nan) for k in ("vm_mu", "vm_kappa", "vm_a1", "vm_a2", "vm_baseline", "vm_r2")}
    for i, y in enumerate(np.asarray(r, np.float64)):
        span = float(y.max() - y.min())
        if not np.isfinite(span) or span <= 1e-12:
            continue
        mu0 = np.angle((y * np.exp(1j * th)).sum())
        x0 = [y.min(), span, span / 2, mu0, 2.0]
        fit = least_squares(lambda p: _vm2(p, th) - y, x0,
                            bounds=([-np.inf, 0, 0, -4 * np.pi, 0.05], [np.inf, np.inf, np.inf, 4 * np.pi, 50]))
        b, a1, a2, mu, k = fit.x
        if a2 > a1:
            a1, a2, mu = a2, a1, mu + np.pi
        ss = ((y - y.mean()) ** 2).sum()
        out["vm_mu"][i] = np.rad2deg(mu) % 360
        out["vm_kappa"][i], out["vm_a1"][i], out["vm_a2"][i], out["vm_baseline"][i] = k, a1, a2, b
        out["vm_r2"][i] = 1 - (fit.fun ** 2).sum() / max(ss, 1e-12)
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


def tuning_stimuli(model, cfg, seed: int) -> dict[str, np.ndarray]:
    """Every clip of the tuning battery (the same for every scan), grey levels.

    Returns {"grating": (n_dir, n_phases, T, H, W), "noise": (n_dir, n_rep, T, H, W),
    "sf": (n_sf, n_dir, T, H, W), "tf": (n_tf, n_dir, T, H, W)}.
    """
    from twin.stimuli import directional_noise

    dirs = directions(cfg)
    T = cfg.n_frames
    g = np.stack([np.stack([_grating(model, d, cfg.sf_cpd, cfg.tf_hz, 360.0 * p / cfg.n_phases, T, cfg.contrast)
                            for p in range(cfg.n_phases)]) for d in dirs])
    seeds = np.random.SeedSequence(seed).generate_state(cfg.noise_repeats)
    nz = np.stack([np.stack([directional_noise(T, tuple(model.image_shape), direction_deg=float(d),
                                               pixel_size_deg=model.pixel_size_deg, frame_rate=model.frame_rate,
                                               seed=int(s), speed_deg_s=cfg.noise_speed_deg_s) for s in seeds])
                   for d in dirs])
    sf = np.stack([np.stack([_grating(model, d, f, cfg.tf_hz, 0.0, T, cfg.contrast) for d in dirs])
                   for f in cfg.sf_list])
    tf = np.stack([np.stack([_grating(model, d, cfg.sf_cpd, f, 0.0, T, cfg.contrast) for d in dirs])
                   for f in cfg.tf_list])
    return {"grating": g, "noise": nz, "sf": sf, "tf": tf}


def directions(cfg) -> np.ndarray:
    """The equally spaced directions of motion, degrees."""
    return np.arange(cfg.n_directions) * 360.0 / cfg.n_directions


def _clip_stats(model, clips: np.ndarray, rid: str, idx: np.ndarray, batch: int, tf_hz):
    """Mean rate, F1 and F0 per clip over scored frames: clips (..., T, H, W), ``tf_hz`` broadcast
    to the clips' leading shape; each batch of model outputs is reduced at once."""
    lead = clips.shape[:-3]
    flat = clips.reshape((-1,) + clips.shape[-3:])
    tfs = np.broadcast_to(np.asarray(tf_hz, np.float64), lead).reshape(-1)
    f0 = np.empty((len(flat), len(idx)))
    f1 = np.empty_like(f0)
    mean = np.empty_like(f0)
    for s, r in iter_batches(model, flat, rid, batch, idx):
        r = scored(model, r)
        mean[s:s + len(r)] = r.mean(-2)
        for c in range(len(r)):
            f0[s + c], f1[s + c] = f1_f0(r[c], tfs[s + c], model.frame_rate)
    return mean.reshape(lead + (-1,)), f1.reshape(lead + (-1,)), f0.reshape(lead + (-1,))


def run_tuning(model, units: pd.DataFrame, cfg, seed: int, progress=None) -> xr.Dataset:
    """The tuning battery for ``units`` (see :func:`twin.insilico.common.unit_table`).

    Returns an xarray Dataset on dim ``unit`` (plus ``direction``, ``repeat``, ``noise_repeat``,
    ``sf``, ``tf``) with the trial responses (mean rate per frame over scored frames) and the
    per-unit metrics named in the module docstring; noise-based metrics carry a ``noise_`` prefix.
    """
    rng = np.random.default_rng(seed)
    stim = tuning_stimuli(model, cfg, seed)
    dirs = directions(cfg)
    n = len(units)
    nd = len(dirs)
    g = np.zeros((nd, cfg.n_phases, n))
    nz = np.zeros((nd, cfg.noise_repeats, n))
    sf_mean = np.zeros((len(cfg.sf_list), nd, n))
    sf_f1 = np.zeros_like(sf_mean)
    sf_f0 = np.zeros_like(sf_mean)
    tf_mean = np.zeros((len(cfg.tf_list), nd, n))
    for rid, rows, idx in by_scan(units):
        g[..., rows] = _clip_stats(model, stim["grating"], rid, idx, cfg.batch, cfg.tf_hz)[0]
        nz[..., rows] = _clip_stats(model, stim["noise"], rid, idx, cfg.batch, 1.0)[0]
        m, f1, f0 = _clip_stats(model, stim["sf"], rid, idx, cfg.batch, cfg.tf_hz)
        sf_mean[..., rows], sf_f1[..., rows], sf_f0[..., rows] = m, f1, f0
        tf_mean[..., rows] = _clip_stats(model, stim["tf"], rid, idx, cfg.batch,
                                         np.asarray(cfg.tf_list)[:, None])[0]
        if progress is not None:
            progress.update(1)
    data: dict = {"grating_response": (("unit", "direction", "repeat"), g.transpose(2, 0, 1)),
                  "noise_response": (("unit", "direction", "noise_repeat"), nz.transpose(2, 0, 1))}
    for prefix, trials in (("", g), ("noise_", nz)):
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
    ratio = f1 / np.maximum(f0, 1e-12)
    data["f1_f0"] = ("unit", ratio)
    data["phase_invariance"] = ("unit", 1.0 - np.clip(ratio, 0.0, 2.0) / 2.0)
    data["tuned"] = ("unit", data["gosi_p"][1] < cfg.tuned_p)
    attrs = {"response": "mean expected events per frame over frames after burn-in",
             "permutation": "direction labels shuffled across all direction x repeat trials; repeats are "
                            "grating starting phases (grating_*) or noise seeds (noise_*)",
             "phase_invariance": "1 - clip(F1/F0, 0, 2) / 2 (0 simple .. 1 complex)",
             "sf_cpd": cfg.sf_cpd, "tf_hz": cfg.tf_hz}
    coords = {"direction": dirs, "repeat": np.arange(cfg.n_phases), "noise_repeat": np.arange(cfg.noise_repeats),
              "sf": np.asarray(cfg.sf_list, np.float64), "tf": np.asarray(cfg.tf_list, np.float64)}
    return dataset(units, data, coords, attrs)

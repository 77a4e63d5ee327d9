"""Spatial receptive fields: flashing-dot mapping and input gradients; centre and size.

* Dots: clips of :func:`twin.stimuli.flashing_dots`; each flash's response is the mean rate
  over the flash plus blank window after its onset (flashes starting in the burn-in are
  dropped). The map is the response-weighted average of the flash contrast images
  ``sum_f (r_f - mean r) c_f / n_flashes`` (signed: on positive, off negative), and the
  unsigned map the same with ``|c_f|`` (cells that answer both polarities); the dot centre and
  size come from the energy of both.
* Gradient: ``d mean_t r_i / d clip`` at ``grad_samples`` dynamic low-contrast noise clips
  (white noise, new every frame); the map is the root-mean-square over clips and frames of
  the gradient (a sensitivity map that also works for phase-invariant and direction-selective
  cells, whose gradient at a static or grey input vanishes); one forward pass per clip serves a
  wave of neurons (``jax.jacrev``, waves of a fixed shape: one compilation).
* Centre and size from the energy map ``e = map^2``: centre = e-weighted mean of the pixel
  positions (degrees, x right, y up; pixels under 5% of the peak ignored), size = sqrt(2) x the
  sigma of a 2D isotropic Gaussian fitted to ``e`` (scipy ``curve_fit``; the envelope sigma of
  a Gabor RF), falling back to the second moment of ``e``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import OptimizeWarning, curve_fit

from twin.insilico.common import by_scan, dataset, static_frames


def rf_center_size(maps: np.ndarray, pixel_size_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """RF centre (x, y) and sigma in degrees of each map.

    Args:
      maps: (n, H, W) signed or non-negative RF maps.
    Returns:
      centre (n, 2) degrees (x right, y up, 0 at the screen centre), sigma (n,) degrees.
    """
    from twin.stimuli.grid import visual_grid

    n, h, w = maps.shape
    x, y = visual_grid((h, w), pixel_size_deg)
    centers = np.full((n, 2), np.nan)
    sigmas = np.full(n, np.nan)
    for i, m in enumerate(np.asarray(maps, np.float64)):
        e = m ** 2
        e = np.where(e > 0.05 * e.max(), e, 0.0)
        if e.sum() <= 0:
            continue
        cx, cy = (e * x).sum() / e.sum(), (e * y).sum() / e.sum()
        s_mom = np.sqrt(max((e * ((x - cx) ** 2 + (y - cy) ** 2)).sum() / e.sum(), 1e-12))
        a = m ** 2  # energy: the carrier averages out; its Gaussian sigma is the envelope's / sqrt 2

        def g(xy, amp, mx, my, s, b):
            return amp * np.exp(-((xy[0] - mx) ** 2 + (xy[1] - my) ** 2) / (2 * s ** 2)) + b

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                p, _ = curve_fit(g, np.stack([x.ravel(), y.ravel()]), a.ravel(),
                                 p0=[a.max(), cx, cy, max(s_mom / np.sqrt(2), pixel_size_deg), 0.0], maxfev=2000)
            ok = np.isfinite(p).all() and abs(p[3]) < max(h, w) * pixel_size_deg
        except (RuntimeError, ValueError):
            ok = False
        centers[i] = (cx, cy)
        sigmas[i] = np.sqrt(2) * abs(p[3]) if ok else s_mom
    return centers, sigmas


def dot_maps(model, units: pd.DataFrame, cfg, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Response-weighted averages of flashing dots, each (n_units, H, W) in contrast units: the
    signed map (flash contrast: on +, off -) and the unsigned map (flash footprint |contrast|,
    which also locates cells that answer both polarities, e.g. complex cells)."""
    from twin.insilico.engine import iter_responses
    from twin.stimuli import flashing_dots

    shape = tuple(model.image_shape)
    seeds = np.random.SeedSequence(seed).generate_state(cfg.n_clips)
    clips, events = [], []
    for s in seeds:
        c, ev = flashing_dots(cfg.n_frames, shape, pixel_size_deg=model.pixel_size_deg, frame_rate=model.frame_rate,
                              seed=int(s), dot_size_deg=cfg.dot_size_deg, dots_per_flash=cfg.dots_per_flash,
                              flash_s=cfg.flash_s, blank_s=cfg.blank_s, return_events=True)
        clips.append(c)
        events.append(ev)
    clips = np.stack(clips)
    window = max(1, int(round((cfg.flash_s + cfg.blank_s) * model.frame_rate)))
    onsets = [[o for o in np.unique(ev["onset_frame"]) if model.burn_in <= o and o + window <= cfg.n_frames]
              for ev in events]
    resp, imgs = [], []
    for s, r in iter_responses(model, units, clips, cfg.batch):   # reduced batch by batch
        for b in range(len(r)):
            for onset in onsets[s + b]:
                resp.append(r[b, onset:onset + window].mean(0))
                imgs.append((clips[s + b, onset] - 127.5) / 127.5)
    resp, imgs = np.asarray(resp, np.float64), np.asarray(imgs, np.float64)
    resp = resp - resp.mean(0)
    k = max(len(resp), 1)
    return np.einsum("fn,fhw->nhw", resp, imgs) / k, np.einsum("fn,fhw->nhw", resp, np.abs(imgs)) / k


def gradient_maps(model, units: pd.DataFrame, cfg, seed: int, n_frames: int) -> np.ndarray:
    """Root-mean-square input gradient of each neuron's mean scored rate, (n_units, H, W),
    over ``grad_samples`` dynamic noise clips of ``n_frames`` frames (summed over frames).

    One forward pass per wave of neurons and noise clip; the per-neuron backward passes are
    vmapped (``jax.jacrev``); waves have a fixed shape (one compilation)."""
    import jax
    import jax.numpy as jnp

    from twin.insilico.engine import unit_waves

    rng = np.random.default_rng(seed)
    h, w = model.image_shape
    bgs = 127.5 * (1 + cfg.grad_rms_contrast * rng.standard_normal((cfg.grad_samples, n_frames, h, w)))
    bgs = jnp.asarray(np.clip(bgs, 0, 255).astype(np.float32))
    out = np.zeros((len(units), h, w))
    b = int(model.burn_in)
    for wv in unit_waves(model, units, cfg.unit_chunk, cfg.chunk):
        plan = wv.plan

        def build(plan=plan):
            fc = plan.columns()

            def per_group(p, cols, bg):
                def f(clip):
                    return fc(p, clip[None], cols[None])[0, b:, :].mean(0)

                return (jax.jacrev(f)(bg) ** 2).sum(1)                     # (m, H, W)

            def all_groups(P, cols, bgs):
                acc = jnp.zeros(cols.shape + (h, w))
                for i in range(bgs.shape[0]):
                    acc = acc + jax.vmap(per_group, in_axes=(0, 0, None))(P, cols, bgs[i])
                return jnp.sqrt(acc / bgs.shape[0])

            return all_groups

        f = plan.jit(("grad_rf", n_frames, cfg.grad_samples), build)
        maps = np.asarray(f(plan.take(wv.groups), jnp.asarray(wv.cols), bgs))
        ok = wv.rows >= 0
        out[wv.rows[ok]] = maps[ok]
    return out


def run_rf(model, units: pd.DataFrame, cfg, seed: int, n_frames_grad: int = 12) -> xr.Dataset:
    """RF maps (dots and gradient), centres and sizes, and readout positions when the model has
    them (``readout_position`` (unit, axis), degrees, converted to y up).

    A trained twin reports readout positions with y pointing down (twin.model); they are flipped
    here to the stimulus convention (y up).
    """
    from twin.stimuli.grid import visual_grid

    n = len(units)
    if cfg.n_clips > 0:
        dots, dots_abs = dot_maps(model, units, cfg, seed)
        # energy of both maps: the signed one for phase-selective cells, the unsigned one for
        # cells answering both polarities
        c_d, s_d = rf_center_size(np.sqrt(dots ** 2 + dots_abs ** 2), model.pixel_size_deg)
    else:
        dots = dots_abs = np.zeros((n,) + tuple(model.image_shape))
        c_d, s_d = np.full((n, 2), np.nan), np.full(n, np.nan)
    if cfg.grad_samples > 0:
        grads = gradient_maps(model, units, cfg, seed + 1, static_frames(model, n_frames_grad))
        c_g, s_g = rf_center_size(grads, model.pixel_size_deg)
    else:
        grads = np.zeros_like(dots)
        c_g, s_g = np.full((n, 2), np.nan), np.full(n, np.nan)
    x, y = visual_grid(model.image_shape, model.pixel_size_deg)
    data = {"dot_map": (("unit", "y", "x"), dots.astype(np.float32)),
            "dot_map_abs": (("unit", "y", "x"), dots_abs.astype(np.float32)),
            "grad_map": (("unit", "y", "x"), grads.astype(np.float32)),
            "rf_center_dots": (("unit", "axis"), c_d), "rf_sigma_dots": ("unit", s_d),
            "rf_center_grad": (("unit", "axis"), c_g), "rf_sigma_grad": ("unit", s_g)}
    # the profile's rf_center: the gradient map (defined for every cell type), dots where it fails
    best = np.where(np.isfinite(c_g), c_g, c_d)
    data["rf_center"] = (("unit", "axis"), best)
    data["rf_sigma"] = ("unit", np.where(np.isfinite(s_g), s_g, s_d))
    if hasattr(model, "readout_positions"):
        pos = np.full((len(units), 2), np.nan)
        for rid, rows, idx in by_scan(units):
            p = np.asarray(model.readout_positions(rid))[idx]
            pos[rows] = np.stack([p[:, 0], -p[:, 1]], -1)
        data["readout_position"] = (("unit", "axis"), pos)
        data["readout_distance"] = ("unit", np.linalg.norm(pos - best, axis=1))
    coords = {"axis": ["x", "y"], "x_deg": ("x", x[0]), "y_deg": ("y", y[:, 0])}
    return dataset(units, data, coords, {"rf_center": "degrees, x right, y up, 0 = screen centre"})

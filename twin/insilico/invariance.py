"""Bipartite invariance: how far a neuron's response tolerates replacing part of its MEI by texture.

For each neuron, the RF region is where the (smoothed) MEI energy exceeds 10% of its peak. A
*variable subfield* grows across that region from one side: for sweep direction ``phi`` and
size ``s`` in [0, 1], it holds the fraction ``s`` of RF pixels with the smallest projection on
``phi``; the rest (the *fixed subfield*) keeps the MEI. The variable subfield is filled with
natural texture (frames of :func:`twin.stimuli.natural_movie`, rescaled to the MEI's RMS there).
The curve is the mean response over textures divided by the MEI response (peak-normalised,
capped at 1); the **bipartite index** is the area under it over ``s`` in [0, 1] (trapezoid),
maximised over ``n_sweep_directions`` equally spaced sweep directions: near 1 when one side of
the RF is texture-invariant (a bipartite cell), lower for cells whose whole RF is
phase-selective.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import gaussian_filter

from twin.insilico.common import by_scan, dataset
from twin.insilico.mei import own_responses


def variable_masks(mei: np.ndarray, pixel_size_deg: float, sizes: np.ndarray, sweeps_deg: np.ndarray) -> np.ndarray:
    """Masks of the variable subfield: (n_sweeps, n_sizes, H, W) bool for one MEI (H, W)."""
    from twin.stimuli.grid import visual_grid

    c = np.asarray(mei, np.float64) - 127.5
    e = gaussian_filter(c ** 2, 1.0)
    rf = e > 0.1 * e.max() if e.max() > 0 else np.ones_like(e, bool)
    x, y = visual_grid(c.shape, pixel_size_deg)
    w = e * rf
    cx, cy = (w * x).sum() / max(w.sum(), 1e-12), (w * y).sum() / max(w.sum(), 1e-12)
    out = np.zeros((len(sweeps_deg), len(sizes)) + c.shape, bool)
    for a, phi in enumerate(np.deg2rad(sweeps_deg)):
        proj = (x - cx) * np.cos(phi) + (y - cy) * np.sin(phi)
        vals = np.sort(proj[rf])
        for b, s in enumerate(sizes):
            if s <= 0:
                continue
            k = int(round(s * len(vals)))
            thr = vals[min(k, len(vals)) - 1] if k > 0 else -np.inf
            out[a, b] = rf & (proj <= thr)
    return out


def run_bipartite(model, units: pd.DataFrame, mei: xr.Dataset, mcfg, bcfg, seed: int) -> xr.Dataset:
    """Bipartite invariance for ``units`` given the MEI output: ``bipartite_curve`` (unit, size)
    at the best sweep direction, ``bipartite_index`` (unit,), ``bipartite_sweep_deg`` (unit,)."""
    from twin.stimuli import natural_movie

    h, w = model.image_shape
    sizes = np.linspace(0.0, 1.0, bcfg.n_sizes)
    sweeps = np.arange(bcfg.n_sweep_directions) * 360.0 / bcfg.n_sweep_directions
    mov = natural_movie(bcfg.n_textures * 10, (h, w), frame_rate=model.frame_rate,
                        pixel_size_deg=model.pixel_size_deg, seed=seed)[::10][:bcfg.n_textures]
    tex = mov.astype(np.float64) - mov.mean((1, 2), keepdims=True)
    n = len(units)
    curves = np.zeros((n, len(sizes)))
    index = np.zeros(n)
    best_sweep = np.zeros(n)
    meis = mei["mei"].values
    ref = np.maximum(mei["mei_response"].values, 1e-12)
    for rid, rows, idx in by_scan(units):
        for row, ix in zip(rows, idx):
            m = meis[row].astype(np.float64)
            c = m - 127.5
            masks = variable_masks(m, model.pixel_size_deg, sizes, sweeps)    # (S, Z, H, W)
            imgs = np.empty(masks.shape[:2] + (len(tex), h, w))
            for t, tx in enumerate(tex):
                for a in range(len(sweeps)):
                    for b in range(len(sizes)):
                        mk = masks[a, b]
                        if mk.any():
                            scale = np.sqrt((c[mk] ** 2).mean() / max((tx[mk] ** 2).mean(), 1e-12))
                            img = np.where(mk, tx * scale, c)
                        else:
                            img = c
                        imgs[a, b, t] = np.clip(img + 127.5, 0, 255)
            r = own_responses(model, rid, imgs.reshape(-1, h, w), np.full(imgs[..., 0, 0].size, ix),
                              mcfg.n_frames, mcfg.unit_batch).reshape(imgs.shape[:3]).mean(2)
            curve = np.minimum(r / ref[row], 1.0)                             # (S, Z)
            auc = np.trapezoid(curve, sizes, axis=1)
            a = int(np.argmax(auc))
            curves[row], index[row], best_sweep[row] = curve[a], auc[a], sweeps[a]
    if "mei_effective" in mei:
        index = np.where(mei["mei_effective"].values.astype(bool), index, np.nan)
    return dataset(units, {"bipartite_curve": (("unit", "size"), curves), "bipartite_index": ("unit", index),
                           "bipartite_sweep_deg": ("unit", best_sweep)}, {"size": sizes})

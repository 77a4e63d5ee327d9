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

from twin.insilico.common import dataset
from twin.insilico.mei import with_mei


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


def bipartite_images(mei: np.ndarray, textures: np.ndarray, pixel_size_deg: float, sizes: np.ndarray,
                     sweeps_deg: np.ndarray) -> np.ndarray:
    """(n_sweeps, n_sizes, n_textures, H, W) grey levels for one MEI (H, W): the variable
    subfield filled with each texture (zero-mean contrast), rescaled to the MEI's RMS there."""
    c = np.asarray(mei, np.float64) - 127.5
    masks = variable_masks(mei, pixel_size_deg, sizes, sweeps_deg)[:, :, None]      # (S, Z, 1, H, W)
    tex = np.asarray(textures, np.float64)[None, None]                             # (1, 1, t, H, W)
    cnt = np.maximum(masks.sum((-2, -1), keepdims=True), 1)
    c_ms = (masks * c ** 2).sum((-2, -1), keepdims=True) / cnt
    t_ms = (masks * tex ** 2).sum((-2, -1), keepdims=True) / cnt
    scale = np.sqrt(c_ms / np.maximum(t_ms, 1e-12))
    img = np.where(masks, tex * scale, c)
    return np.clip(img + 127.5, 0, 255)


def run_bipartite(model, units: pd.DataFrame, mei: xr.Dataset, mcfg, bcfg, seed: int) -> xr.Dataset:
    """Bipartite invariance for ``units`` given the MEI output: ``bipartite_curve`` (unit, size)
    at the best sweep direction, ``bipartite_index`` (unit,), ``bipartite_sweep_deg`` (unit,).

    Every neuron's images (sweeps x sizes > 0 x textures) go through
    :func:`twin.insilico.engine.own_responses` in fixed-shape waves; the size-0 point is the MEI
    itself (curve value 1)."""
    from twin.insilico.engine import own_responses
    from twin.stimuli import natural_movie

    h, w = model.image_shape
    sizes = np.linspace(0.0, 1.0, bcfg.n_sizes)
    sweeps = np.arange(bcfg.n_sweep_directions) * 360.0 / bcfg.n_sweep_directions
    mov = natural_movie(bcfg.n_textures * 10, (h, w), frame_rate=model.frame_rate,
                        pixel_size_deg=model.pixel_size_deg, seed=seed)[::10][:bcfg.n_textures]
    tex = mov.astype(np.float64) - mov.mean((1, 2), keepdims=True)
    n = len(units)
    have = with_mei(units, mei)
    sub = units.iloc[have].reset_index(drop=True)
    meis = mei["mei"].values[have]
    ref = np.maximum(mei["mei_response"].values[have], 1e-12)
    S, Z, nt = len(sweeps), len(sizes) - 1, len(tex)
    curves = np.full((n, len(sizes)), np.nan)
    index = np.full(n, np.nan)
    best_sweep = np.full(n, np.nan)
    if len(have):
        def images(rows):
            return np.stack([bipartite_images(meis[r], tex, model.pixel_size_deg, sizes[1:], sweeps)
                             .reshape(S * Z * nt, h, w) for r in rows]).astype(np.float32)

        r = own_responses(model, sub, images, mcfg.n_frames, mcfg.unit_batch, mcfg.chunk, k=S * Z * nt)
        r = r.reshape(len(have), S, Z, nt).mean(-1)
        curve = np.concatenate([np.ones((len(have), S, 1)), np.minimum(r / ref[:, None, None], 1.0)], -1)
        auc = np.trapezoid(curve, sizes, axis=-1)                       # (n_have, S)
        best = np.argmax(auc, 1)
        i = np.arange(len(have))
        curves[have], index[have], best_sweep[have] = curve[i, best], auc[i, best], sweeps[best]
    if "mei_effective" in mei:
        index = np.where(mei["mei_effective"].values.astype(bool), index, np.nan)
    return dataset(units, {"bipartite_curve": (("unit", "size"), curves), "bipartite_index": ("unit", index),
                           "bipartite_sweep_deg": ("unit", best_sweep)}, {"size": sizes})

"""The planted neurons' noise-free response, in JAX (batched, jit-able, differentiable).

Per neuron (parameters from :func:`twin.simulate.population.sample_population`):

* Spatial quadrature pair of Gabors ``S_e, S_o`` (RF centre, sigma, preferred direction as the
  carrier's wave vector, SF, phase; DC removed) and a causal temporal quadrature pair
  ``h_e, h_o`` (gamma envelope x cos/sin at the preferred TF, ~0.6 s long).
* Linear channels ``a = h_e*S_e.x - d h_o*S_o.x`` and ``b = h_e*S_o.x + d h_o*S_e.x``: with
  direction strength ``d = 1`` they are a motion-energy (Adelson-Bergen) quadrature pair tuned
  to the preferred direction; with ``d = 0`` a space-time separable filter.
* Drive ``D = (1-p) relu(a) + p sqrt(a^2 + b^2)`` with phase invariance ``p`` (simple p~0,
  complex p~1); bipartite cells add ``w_t * mean_k sqrt(e_k^2 + o_k^2)`` over K shifted
  texture filters (a shift-tolerant subfield next to the phase-selective one).
* Divisive normalisation (contrast gain control): ``D / (sigma + pool)`` with ``pool`` the RMS
  over 4 orientations of the local quadrature energy at the neuron's RF and SF, and ``sigma``
  a quarter of the pool's median on natural movies (calibrated), so a full-contrast optimal grating
  drives a neuron a few times more than natural movies do, not twenty times.
* Rate ``= gain * (baseline + amplitude * sat(softplus_3((D - offset)/scale - threshold)))`` Hz
  with ``sat(s) = 3 s / (s + 3)`` (saturation at 3x amplitude),
  ``offset/scale`` calibrated on natural movies; gain ``= exp(b_run tanh(run/10 cm/s) +
  b_pupil (pupil - mean)/sd)``. Output: expected events per frame (rate / frame_rate).
* Eye position (degrees) shifts the image on the retina: the retina sees screen(x + eye).

All spatial filtering is one matmul of the frames with the stacked filters; temporal filtering
is a short causal FIR (sum of shifted multiply-adds).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin.simulate.population import N_TEXTURE_POSITIONS
from twin.stimuli.grid import GREY, visual_grid

KERNEL_S = 0.6
SOFTPLUS_SHARPNESS = 3.0
RUN_SCALE_CM_S = 10.0
N_POOL_ORIENTATIONS = 4
SATURATION = 3.0  # maximal evoked rate in units of `amplitude`


def _gabor_pair(x: np.ndarray, y: np.ndarray, cx, cy, sigma, theta_deg, sf, phase_deg) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature Gabor pair, each (n, H*W), DC-free, scaled so an optimal full-contrast grating
    gives a projection of ~1."""
    cx, cy, sigma, th, sf, ph = (np.asarray(v, np.float64)[:, None, None] for v in (cx, cy, sigma, theta_deg, sf, phase_deg))
    dx, dy = x[None] - cx, y[None] - cy
    env = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
    u = dx * np.cos(np.deg2rad(th)) + dy * np.sin(np.deg2rad(th))
    arg = 2 * np.pi * sf * u + np.deg2rad(ph)
    norm = np.maximum(env.sum((1, 2), keepdims=True), 1e-9)
    out = []
    for carrier in (np.cos(arg), np.sin(arg)):
        f = env * carrier
        f = f - env * (f.sum((1, 2), keepdims=True) / norm)
        out.append((2.0 * f / norm).reshape(len(f), -1))
    return out[0], out[1]


def temporal_kernels(tf_hz: np.ndarray, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Causal temporal quadrature pair per neuron, each (n, L) with L = ceil(0.6 s * frame_rate).

    ``h(t) = g(t) cos/sin(2 pi tf t)`` with a gamma envelope ``g`` (time constant 0.12/tf, so
    the even kernel is band-pass around ``tf`` but keeps about half its peak gain at 0 Hz);
    tap 0 is the current frame.
    """
    n_taps = max(2, int(np.ceil(KERNEL_S * frame_rate)))
    t = (np.arange(n_taps) + 0.5) / frame_rate
    tf = np.asarray(tf_hz, np.float64)[:, None]
    tau = np.clip(0.12 / tf, 0.03, 0.15)
    env = (t / tau) ** 2 * np.exp(-t / tau)
    env = env / env.sum(1, keepdims=True)
    return env * np.cos(2 * np.pi * tf * t), env * np.sin(2 * np.pi * tf * t)


def build_params(units: pd.DataFrame, image_shape: tuple[int, int], pixel_size_deg: float,
                 frame_rate: float) -> dict[str, np.ndarray]:
    """Filters and per-neuron constants of one scan's neurons (rows of ``units``) as arrays.

    ``offset``/``scale`` come from the ``drive_offset``/``drive_scale`` columns when present
    (else 0/1, i.e. uncalibrated).
    """
    x, y = visual_grid(image_shape, pixel_size_deg)
    u = units
    se, so = _gabor_pair(x, y, u.rf_x_deg, u.rf_y_deg, u.rf_sigma_deg, u.pref_dir_deg, u.sf_cpd, u.phase_deg)
    he, ho = temporal_kernels(u.tf_hz.to_numpy(), frame_rate)
    pool = []
    for k_ori in range(N_POOL_ORIENTATIONS):
        pe, po = _gabor_pair(x, y, u.rf_x_deg, u.rf_y_deg, u.rf_sigma_deg,
                             u.pref_dir_deg + 180.0 * k_ori / N_POOL_ORIENTATIONS, u.sf_cpd, np.zeros(len(u)))
        pool += [pe, po]
    env = np.abs(he) / np.abs(he).sum(1, keepdims=True)
    tex = np.flatnonzero(u.texture_weight.to_numpy() > 0)
    k = N_TEXTURE_POSITIONS
    if len(tex):
        t = u.iloc[tex]
        off = np.array([(-1, -1), (-1, 1), (1, -1), (1, 1)], float)[:k] * 0.6
        rep = lambda v: np.repeat(np.asarray(v, float), k)  # noqa: E731
        tcx = rep(t.texture_x_deg) + np.tile(off[:, 0], len(tex)) * rep(t.texture_sigma_deg)
        tcy = rep(t.texture_y_deg) + np.tile(off[:, 1], len(tex)) * rep(t.texture_sigma_deg)
        te, to = _gabor_pair(x, y, tcx, tcy, rep(t.texture_sigma_deg), rep(t.texture_ori_deg),
                             rep(t.texture_sf_cpd), np.zeros(len(tcx)))
        w_tex = np.concatenate([te, to]).astype(np.float32)
    else:
        w_tex = np.zeros((0, x.size), np.float32)
    col = lambda name, default: (u[name].to_numpy(np.float64) if name in u else np.full(len(u), default))  # noqa: E731
    return {
        "w": np.concatenate([se, so]).astype(np.float32),            # (2N, P)
        "w_pool": np.concatenate(pool).astype(np.float32),          # (2 O N, P)
        "h_pool": env.T.astype(np.float32),                          # (L, N)
        "norm_sigma": col("norm_sigma", 1.0).astype(np.float32),
        "w_tex": w_tex,                                              # (2 K Nb, P)
        "tex_idx": tex.astype(np.int32),
        "tex_w": u.texture_weight.to_numpy(np.float32)[tex],
        "h_e": he.T.astype(np.float32), "h_o": ho.T.astype(np.float32),  # (L, N)
        "d": u.direction_strength.to_numpy(np.float32),
        "p": u.phase_invariance.to_numpy(np.float32),
        "offset": col("drive_offset", 0.0).astype(np.float32),
        "scale": col("drive_scale", 1.0).astype(np.float32),
        "threshold": u.threshold.to_numpy(np.float32),
        "baseline": (u.baseline_hz.to_numpy() / frame_rate).astype(np.float32),
        "amplitude": (u.amplitude_hz.to_numpy() / frame_rate).astype(np.float32),
        "beta_running": u.beta_running.to_numpy(np.float32),
        "beta_pupil": u.beta_pupil.to_numpy(np.float32),
        # fluorescence noise (spike-jump units): not used by the rate, only by the truth model's
        # expected observation (twin.simulate.observation.expected_observation_jax)
        "noise_sd": col("noise_sd", 0.0).astype(np.float32),
    }


def _causal(x: jax.Array, h: jax.Array) -> jax.Array:
    """Causal FIR along time: x (B, T, N), h (L, N) -> (B, T, N); frames before 0 are grey (0)."""
    n_taps = h.shape[0]
    t = x.shape[1]
    xp = jnp.pad(x, ((0, 0), (n_taps - 1, 0), (0, 0)))
    out = jnp.zeros_like(x)
    for lag in range(n_taps):
        out = out + h[lag] * xp[:, n_taps - 1 - lag:n_taps - 1 - lag + t]
    return out


def shift_frames(contrast: jax.Array, eye_px: jax.Array) -> jax.Array:
    """Retinal image of screen frames for an eye displaced by ``eye_px`` (x right, y up; pixels).

    contrast: (B, T, H, W) signed contrast (0 = grey); eye_px: (B, T, 2). Bilinear, grey outside.
    """
    b, t, h, w = contrast.shape
    rows = jnp.arange(h, dtype=contrast.dtype)[:, None] * jnp.ones((1, w), contrast.dtype)
    cols = jnp.ones((h, 1), contrast.dtype) * jnp.arange(w, dtype=contrast.dtype)[None, :]

    def one(frame, e):
        return jax.scipy.ndimage.map_coordinates(frame, [rows - e[1], cols + e[0]], order=1,
                                                 mode="constant", cval=0.0)

    flat = jax.vmap(one)(contrast.reshape(b * t, h, w), eye_px.reshape(b * t, 2))
    return flat.reshape(b, t, h, w)


def pool(params: Mapping[str, jax.Array], contrast: jax.Array) -> jax.Array:
    """Normalisation pool (B, T, N): RMS over 4 orientations of the local quadrature energy at
    each neuron's RF and SF (temporal low-pass), i.e. the band-limited contrast it is divided by."""
    b, t = contrast.shape[:2]
    n = params["d"].shape[0]
    proj = (contrast.reshape(b * t, -1) @ params["w_pool"].T).reshape(b, t, -1, n)
    flat = jnp.moveaxis(proj, 2, 0).reshape(-1, b, t, n)
    filt = jax.vmap(lambda c: _causal(c, params["h_pool"]))(flat)
    return jnp.sqrt((filt ** 2).sum(0) / N_POOL_ORIENTATIONS + 1e-10)


def drive(params: Mapping[str, jax.Array], contrast: jax.Array) -> jax.Array:
    """Divisively normalised drive D / (norm_sigma + pool) (B, T, N) of the neurons to retinal
    contrast frames (B, T, H, W)."""
    return raw_drive(params, contrast) / (params["norm_sigma"] + pool(params, contrast))


def raw_drive(params: Mapping[str, jax.Array], contrast: jax.Array) -> jax.Array:
    """Un-normalised drive D (B, T, N) of the neurons to retinal contrast frames (B, T, H, W)."""
    b, t = contrast.shape[:2]
    n = params["d"].shape[0]
    frames = contrast.reshape(b * t, -1)
    proj = (frames @ params["w"].T).reshape(b, t, 2, n)
    pe, po = proj[:, :, 0], proj[:, :, 1]
    ee, oo = _causal(pe, params["h_e"]), _causal(po, params["h_o"])
    eo, oe = _causal(po, params["h_e"]), _causal(pe, params["h_o"])
    d = params["d"]
    a = ee - d * oo
    bq = eo + d * oe
    energy = jnp.sqrt(a ** 2 + bq ** 2 + 1e-8)
    p = params["p"]
    out = (1 - p) * jax.nn.relu(a) + p * energy
    nb = params["tex_idx"].shape[0]
    if nb:
        k = params["w_tex"].shape[0] // (2 * nb)
        tp = (frames @ params["w_tex"].T).reshape(b, t, 2, nb * k)
        h_tex = jnp.repeat(params["h_e"][:, params["tex_idx"]], k, axis=1)
        te, to = _causal(tp[:, :, 0], h_tex), _causal(tp[:, :, 1], h_tex)
        tex = jnp.sqrt(te ** 2 + to ** 2 + 1e-8).reshape(b, t, nb, k).mean(-1)
        out = out.at[:, :, params["tex_idx"]].add(params["tex_w"] * tex)
    return out


def gain(params: Mapping[str, jax.Array], running: jax.Array, pupil: jax.Array,
         pupil_mean: float, pupil_sd: float) -> jax.Array:
    """Multiplicative behavioural gain (B, T, N) from running (B, T) cm/s and pupil (B, T) px."""
    r = jnp.tanh(running / RUN_SCALE_CM_S)[..., None]
    q = ((pupil - pupil_mean) / pupil_sd)[..., None]
    return jnp.exp(params["beta_running"] * r + params["beta_pupil"] * q)


def respond(params: Mapping[str, jax.Array], stimulus: jax.Array, running: jax.Array, pupil: jax.Array,
            eye_px: jax.Array | None, pupil_mean: float, pupil_sd: float) -> jax.Array:
    """Expected events per frame (B, T, N) for grey-level stimulus (B, T, H, W) and behaviour.

    ``eye_px`` (B, T, 2) in pixels, or None (eye at the screen centre).
    """
    contrast = (jnp.asarray(stimulus, jnp.float32) - GREY) / GREY
    if eye_px is not None:
        contrast = shift_frames(contrast, eye_px)
    z = (drive(params, contrast) - params["offset"]) / params["scale"] - params["threshold"]
    sp = jax.nn.softplus(SOFTPLUS_SHARPNESS * z) / SOFTPLUS_SHARPNESS
    resp = params["baseline"] + params["amplitude"] * sp * SATURATION / (sp + SATURATION)
    return resp * gain(params, running, pupil, pupil_mean, pupil_sd)


def to_device(params: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Arrays as jnp (``tex_idx`` stays a NumPy index so its length is static under jit)."""
    return {k: (np.asarray(v) if k == "tex_idx" else jnp.asarray(v)) for k, v in params.items()}

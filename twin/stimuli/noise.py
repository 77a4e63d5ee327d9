"""Noise stimuli: flashing dots (sparse noise), directional pink noise (Monet2-like), random
dot kinematograms.

All return float32 grey levels 0..255 shaped (n_frames, H, W), deterministic by ``seed``;
geometry and direction conventions are those of :mod:`twin.stimuli.grid`.
"""

from __future__ import annotations

import numpy as np

from twin.stimuli.grid import GREY, frame_times, to_grey, visual_grid


def _disc(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: float,
          pixel_size_deg: float) -> np.ndarray:
    """Anti-aliased discs: (n, H, W) coverage in 0..1 of discs centred at (cx, cy) degrees."""
    d = np.hypot(x[None] - np.asarray(cx)[:, None, None], y[None] - np.asarray(cy)[:, None, None])
    return np.clip((radius - d) / pixel_size_deg + 0.5, 0.0, 1.0)


def flashing_dots(n_frames: int, image_shape: tuple[int, int], *, pixel_size_deg: float,
                  frame_rate: float, seed: int, dot_size_deg: float = 8.0, dots_per_flash: int = 1,
                  flash_s: float = 0.3, blank_s: float = 0.2, polarity: str = "both",
                  return_events: bool = False):
    """Sparse noise: white (on) and black (off) discs flashed at random positions on grey.

    Args:
      dot_size_deg: disc diameter in degrees.
      dots_per_flash: discs shown together in each flash.
      flash_s, blank_s: flash and inter-flash grey durations (seconds).
      polarity: "on", "off" or "both" (random per dot).
      return_events: also return per-dot arrays ``onset_frame, n_frames, x_deg, y_deg, polarity``
        (polarity +1 on, -1 off).
    Returns:
      (n_frames, H, W) float32 (and the events dict).
    """
    if polarity not in ("on", "off", "both"):
        raise ValueError(f"polarity must be 'on', 'off' or 'both', got {polarity!r}")
    rng = np.random.default_rng(seed)
    h, w = image_shape
    x, y = visual_grid(image_shape, pixel_size_deg)
    on = max(1, int(round(flash_s * frame_rate)))
    off = max(0, int(round(blank_s * frame_rate)))
    contrast = np.zeros((n_frames, h, w))
    ev: dict[str, list] = {k: [] for k in ("onset_frame", "n_frames", "x_deg", "y_deg", "polarity")}
    for start in range(0, n_frames, on + off):
        cx = rng.uniform(x.min(), x.max(), dots_per_flash)
        cy = rng.uniform(y.min(), y.max(), dots_per_flash)
        pol = {"on": np.ones(dots_per_flash), "off": -np.ones(dots_per_flash),
               "both": rng.choice([-1.0, 1.0], dots_per_flash)}[polarity]
        frame = (pol[:, None, None] * _disc(x, y, cx, cy, dot_size_deg / 2, pixel_size_deg)).sum(0)
        n = min(on, n_frames - start)
        contrast[start:start + n] = np.clip(frame, -1, 1)
        for i in range(dots_per_flash):
            for k, v in zip(ev, (start, n, cx[i], cy[i], pol[i])):
                ev[k].append(v)
    out = to_grey(contrast)
    if return_events:
        return out, {k: np.asarray(v) for k, v in ev.items()}
    return out


def directional_noise(n_frames: int, image_shape: tuple[int, int], *, direction_deg: float,
                      pixel_size_deg: float, frame_rate: float, seed: int,
                      speed_deg_s: float = 20.0, exponent: float = 1.0, sf_max_cpd: float = 0.16,
                      orientation_bandwidth_deg: float = 20.0, rms_contrast: float = 0.35) -> np.ndarray:
    """Directional pink noise ("Monet2"-like): oriented 1/f noise drifting in one direction.

    Spatial amplitude spectrum ~ 1/f**exponent (low-passed at ``sf_max_cpd``), concentrated
    (von Mises, ``orientation_bandwidth_deg``) on wave vectors along ``direction_deg``, so the
    noise has bars normal to its motion; the field translates rigidly at ``speed_deg_s``
    (periodic canvas, no seams). Scaled to ``rms_contrast`` and clipped.
    Returns (n_frames, H, W) float32.
    """
    rng = np.random.default_rng(seed)
    h, w = image_shape
    fy = np.fft.fftfreq(h, d=pixel_size_deg)[:, None] * np.ones((1, w))
    fx = np.fft.fftfreq(w, d=pixel_size_deg)[None, :] * np.ones((h, 1))
    fy = -fy  # rows grow downward, elevation upward
    f = np.hypot(fx, fy)
    th = np.deg2rad(direction_deg)
    ang = np.arctan2(fy, fx)
    kappa = 1.0 / np.deg2rad(max(orientation_bandwidth_deg, 1.0)) ** 2
    orient = np.exp(kappa * (np.cos(2 * (ang - th)) - 1))
    amp = np.where(f > 0, (np.maximum(f, 1e-9) ** -exponent) * np.exp(-(f / sf_max_cpd) ** 4) * orient, 0.0)
    spec = amp * np.fft.fft2(rng.standard_normal((h, w)))
    v = speed_deg_s * frame_times(n_frames, frame_rate)
    shift = np.exp(-2j * np.pi * (fx[None] * np.cos(th) + fy[None] * np.sin(th)) * v[:, None, None])
    field = np.fft.ifft2(spec[None] * shift).real
    sd = field.std()
    contrast = field * (rms_contrast / sd) if sd > 0 else field
    return to_grey(contrast)


def monet2(image_shape: tuple[int, int], *, pixel_size_deg: float, frame_rate: float, seed: int,
           n_directions: int = 16, direction_s: float = 1.0, **noise_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """A Monet2-style block: directional noise in ``n_directions`` equally spaced directions,
    ``direction_s`` seconds each, in a seeded random order.

    Returns (stimulus (T, H, W) float32, direction_deg per frame (T,) float64), with
    T = n_directions * round(direction_s * frame_rate).
    """
    rng = np.random.default_rng(seed)
    per = max(1, int(round(direction_s * frame_rate)))
    dirs = rng.permutation(np.arange(n_directions) * 360.0 / n_directions)
    seeds = rng.integers(0, 2 ** 31, n_directions)
    blocks = [directional_noise(per, image_shape, direction_deg=d, pixel_size_deg=pixel_size_deg,
                                frame_rate=frame_rate, seed=int(s), **noise_kwargs) for d, s in zip(dirs, seeds)]
    return np.concatenate(blocks), np.repeat(dirs, per)


def random_dot_kinematogram(n_frames: int, image_shape: tuple[int, int], *, direction_deg: float,
                            pixel_size_deg: float, frame_rate: float, seed: int,
                            coherence: float = 1.0, speed_deg_s: float = 20.0,
                            dot_size_deg: float = 4.0, density: float = 0.004,
                            contrast: float = 1.0) -> np.ndarray:
    """Random dot kinematogram: black and white discs on grey; a ``coherence`` fraction moves in
    ``direction_deg`` at ``speed_deg_s``, the rest each in its own random direction; dots wrap
    around the screen. ``density`` is dots per square degree.
    Returns (n_frames, H, W) float32.
    """
    rng = np.random.default_rng(seed)
    x, y = visual_grid(image_shape, pixel_size_deg)
    h, w = image_shape
    width, height = w * pixel_size_deg, h * pixel_size_deg
    n = max(1, int(round(density * width * height)))
    px = rng.uniform(-width / 2, width / 2, n)
    py = rng.uniform(-height / 2, height / 2, n)
    pol = rng.choice([-1.0, 1.0], n)
    coherent = rng.uniform(size=n) < coherence
    ang = np.where(coherent, np.deg2rad(direction_deg), rng.uniform(0, 2 * np.pi, n))
    step = speed_deg_s / frame_rate
    out = np.empty((n_frames, h, w), np.float32)
    for t in range(n_frames):
        cx = (px + np.cos(ang) * step * t + width / 2) % width - width / 2
        cy = (py + np.sin(ang) * step * t + height / 2) % height - height / 2
        frame = (pol[:, None, None] * _disc(x, y, cx, cy, dot_size_deg / 2, pixel_size_deg)).sum(0)
        out[t] = to_grey(contrast * np.clip(frame, -1, 1))
    return out


rdk = random_dot_kinematogram
_ = GREY

"""Parametric stimuli: drifting gratings and Gabor patches (single or flashed sequences).

All functions return float32 grey levels 0..255 shaped (n_frames, H, W); geometry and
direction conventions are those of :mod:`twin.stimuli.grid`.
"""

from __future__ import annotations

import numpy as np

from twin.stimuli.grid import aperture, frame_times, to_grey, visual_grid


def drifting_grating(n_frames: int, image_shape: tuple[int, int], *, direction_deg: float,
                     sf_cpd: float, tf_hz: float, pixel_size_deg: float, frame_rate: float,
                     phase_deg: float = 0.0, contrast: float = 1.0,
                     center_deg: tuple[float, float] = (0.0, 0.0), size_deg: float | None = None,
                     square: bool = False) -> np.ndarray:
    """A sinusoidal (or square-wave) grating drifting in ``direction_deg``.

    Args:
      n_frames: frames to render (at ``frame_rate`` Hz).
      image_shape: (H, W) pixels.
      direction_deg: direction of motion (0 = rightward, 90 = upward); orientation = this mod 180.
      sf_cpd: spatial frequency, cycles per visual degree.
      tf_hz: temporal frequency, cycles per second (0 = static).
      pixel_size_deg: visual degrees per pixel.
      frame_rate: Hz.
      phase_deg: spatial phase at t = 0 at ``center_deg``.
      contrast: Michelson contrast 0..1.
      center_deg, size_deg: centre (x, y) and diameter of a soft circular aperture
        (None = full field).
      square: square-wave instead of sinusoidal luminance profile.
    Returns:
      (n_frames, H, W) float32 grey levels.
    """
    x, y = visual_grid(image_shape, pixel_size_deg)
    th = np.deg2rad(direction_deg)
    u = (x - center_deg[0]) * np.cos(th) + (y - center_deg[1]) * np.sin(th)
    t = frame_times(n_frames, frame_rate)[:, None, None]
    wave = np.cos(2 * np.pi * (sf_cpd * u[None] - tf_hz * t) + np.deg2rad(phase_deg))
    if square:
        wave = np.sign(wave)
    mask = aperture(image_shape, pixel_size_deg, center_deg, size_deg)
    return to_grey(contrast * mask[None] * wave)


def gabor_patch(n_frames: int, image_shape: tuple[int, int], *, ori_deg: float, sf_cpd: float,
                sigma_deg: float, pixel_size_deg: float, frame_rate: float,
                center_deg: tuple[float, float] = (0.0, 0.0), phase_deg: float = 0.0,
                contrast: float = 1.0, tf_hz: float = 0.0) -> np.ndarray:
    """A Gabor patch (Gaussian envelope x sinusoidal carrier), static or drifting.

    The carrier's wave vector points along ``ori_deg``; with ``tf_hz > 0`` the carrier drifts
    in direction ``ori_deg`` (so ``ori_deg`` in [0, 360) doubles as a direction).
    ``sigma_deg`` is the envelope's standard deviation. Returns (n_frames, H, W) float32.
    """
    x, y = visual_grid(image_shape, pixel_size_deg)
    dx, dy = x - center_deg[0], y - center_deg[1]
    th = np.deg2rad(ori_deg)
    u = dx * np.cos(th) + dy * np.sin(th)
    env = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma_deg ** 2))
    t = frame_times(n_frames, frame_rate)[:, None, None]
    carrier = np.cos(2 * np.pi * (sf_cpd * u[None] - tf_hz * t) + np.deg2rad(phase_deg))
    return to_grey(contrast * env[None] * carrier)


def gabor_sequence(n_frames: int, image_shape: tuple[int, int], *, pixel_size_deg: float,
                   frame_rate: float, seed: int, flash_s: float = 0.5, blank_s: float = 0.3,
                   sf_range_cpd: tuple[float, float] = (0.02, 0.1),
                   sigma_range_deg: tuple[float, float] = (6.0, 12.0), contrast: float = 1.0,
                   return_events: bool = False):
    """Flashed static Gabor patches at random positions, orientations, phases and SFs.

    Each flash lasts ``flash_s`` then grey for ``blank_s``. Positions are uniform over the
    screen. Returns (n_frames, H, W) float32, or with ``return_events`` also a dict of
    per-flash arrays (``onset_frame``, ``x_deg``, ``y_deg``, ``ori_deg``, ``sf_cpd``,
    ``sigma_deg``, ``phase_deg``).
    """
    rng = np.random.default_rng(seed)
    h, w = image_shape
    on = max(1, int(round(flash_s * frame_rate)))
    off = max(0, int(round(blank_s * frame_rate)))
    out = np.full((n_frames, h, w), 127.5, np.float32)
    half_w, half_h = (w - 1) / 2 * pixel_size_deg, (h - 1) / 2 * pixel_size_deg
    events: dict[str, list] = {k: [] for k in ("onset_frame", "x_deg", "y_deg", "ori_deg", "sf_cpd",
                                               "sigma_deg", "phase_deg")}
    for start in range(0, n_frames, on + off):
        ev = dict(onset_frame=start, x_deg=rng.uniform(-half_w, half_w), y_deg=rng.uniform(-half_h, half_h),
                  ori_deg=rng.uniform(0, 180), sf_cpd=float(np.exp(rng.uniform(*np.log(sf_range_cpd)))),
                  sigma_deg=rng.uniform(*sigma_range_deg), phase_deg=rng.uniform(0, 360))
        n = min(on, n_frames - start)
        out[start:start + n] = gabor_patch(n, image_shape, ori_deg=ev["ori_deg"], sf_cpd=ev["sf_cpd"],
                                           sigma_deg=ev["sigma_deg"], pixel_size_deg=pixel_size_deg,
                                           frame_rate=frame_rate, center_deg=(ev["x_deg"], ev["y_deg"]),
                                           phase_deg=ev["phase_deg"], contrast=contrast)
        for k, v in ev.items():
            events[k].append(v)
    if return_events:
        return out, {k: np.asarray(v) for k, v in events.items()}
    return out


def grating_set(directions_deg, n_frames: int, image_shape: tuple[int, int], *, sf_cpd: float, tf_hz: float,
                pixel_size_deg: float, frame_rate: float, **kwargs) -> np.ndarray:
    """Drifting gratings in each of ``directions_deg`` (a tuning battery), stacked as a batch.

    Other keyword arguments go to :func:`drifting_grating`. Returns (n_directions, n_frames, H, W)
    float32, ready for ``ResponseModel.predict``.
    """
    return np.stack([drifting_grating(n_frames, image_shape, direction_deg=float(d), sf_cpd=sf_cpd, tf_hz=tf_hz,
                                      pixel_size_deg=pixel_size_deg, frame_rate=frame_rate, **kwargs)
                     for d in np.atleast_1d(directions_deg)])

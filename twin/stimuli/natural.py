"""Natural movies from the photographs scikit-image ships (no downloads).

A clip is a view of one grayscale photograph seen through a moving, zooming window: the
window fixates, drifts slowly and jumps in saccades, as a head-fixed mouse's view of a
camera-moved natural scene would. Images may be mirrored or rotated by 90 degrees per clip
to widen the set of scenes.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from twin.stimuli.grid import GREY

#: scikit-image images used (natural scenes, objects and textures; no text or synthetic art).
IMAGE_NAMES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "moon", "clock",
               "grass", "gravel", "brick", "hubble_deep_field", "immunohistochemistry", "cell")


@functools.lru_cache(maxsize=None)
def natural_image(name: str) -> np.ndarray:
    """One scikit-image photograph as float32 grey levels 0..255, (rows, cols), read-only."""
    import skimage.data
    from skimage.color import rgb2gray

    if name not in IMAGE_NAMES:
        raise ValueError(f"unknown image {name!r}; choose from {IMAGE_NAMES}")
    img = getattr(skimage.data, name)()
    if img.ndim == 3:
        img = rgb2gray(img[..., :3]) * 255.0
    img = np.asarray(img, np.float32)
    if img.max() <= 1.0:
        img = img * 255.0
    img.setflags(write=False)
    return img


def natural_images() -> dict[str, np.ndarray]:
    """All bundled photographs: {name: (rows, cols) float32 grey levels 0..255}."""
    return {name: natural_image(name) for name in IMAGE_NAMES}


def natural_movie(n_frames: int, image_shape: tuple[int, int], *, frame_rate: float,
                  pixel_size_deg: float, seed: int, image: str | None = None,
                  field_fraction: float = 0.6, saccade_rate_hz: float = 1.0,
                  saccade_deg: float = 20.0, drift_deg_s: float = 10.0,
                  zoom_range: tuple[float, float] = (0.8, 1.25), zoom_tau_s: float = 3.0,
                  rms_contrast: float | None = 0.25) -> np.ndarray:
    """A natural movie clip: a photograph viewed through a drifting, saccading, zooming window.

    Args:
      n_frames: frames at ``frame_rate`` Hz.
      image_shape: (H, W) pixels of the output.
      pixel_size_deg: visual degrees per output pixel (sets speeds' scale).
      seed: picks the image (unless ``image`` is given), its flip/rotation and the trajectory.
      image: name from :data:`IMAGE_NAMES` (None = chosen by ``seed``).
      field_fraction: the window's width as a fraction of the (shorter) photograph side at zoom 1.
      saccade_rate_hz: Poisson rate of saccadic jumps; ``saccade_deg`` their typical size.
      drift_deg_s: typical slow drift speed (Ornstein-Uhlenbeck velocity).
      zoom_range, zoom_tau_s: range and time constant of the slow zoom.
      rms_contrast: per-clip RMS contrast (std / mean grey) after normalisation to mean grey
        127.5, before clipping to 0..255 (None keeps the photograph's own luminance).
    Returns:
      (n_frames, H, W) float32 grey levels 0..255.
    """
    rng = np.random.default_rng(seed)
    name = image if image is not None else IMAGE_NAMES[rng.integers(len(IMAGE_NAMES))]
    img = natural_image(name)
    k = int(rng.integers(4))
    img = np.rot90(img, k)
    if rng.uniform() < 0.5:
        img = img[:, ::-1]
    rows, cols = img.shape
    h, w = image_shape
    dt = 1.0 / frame_rate
    # window width in photograph pixels at zoom 1 (its height follows the output's aspect)
    win_w = min(field_fraction * min(rows, cols), 0.95 * cols, 0.95 * rows * w / h)
    step = win_w / w  # photograph pixels per output pixel at zoom 1
    px_per_deg = step / pixel_size_deg
    img = ndimage.gaussian_filter(img, sigma=0.5 * step)  # anti-alias before subsampling
    lo, hi = np.log(zoom_range[0]), np.log(zoom_range[1])
    a_zoom = np.exp(-dt / zoom_tau_s)
    a_vel = np.exp(-dt / 1.0)
    cz = rng.uniform(lo, hi)
    pos = np.array([rng.uniform(0.3, 0.7) * cols, rng.uniform(0.3, 0.7) * rows])  # (col, row)
    vel = rng.standard_normal(2) * drift_deg_s * px_per_deg
    cc0 = np.arange(w) - (w - 1) / 2.0
    rr0 = np.arange(h) - (h - 1) / 2.0
    out = np.empty((n_frames, h, w), np.float32)
    for t in range(n_frames):
        if t > 0 and rng.uniform() < saccade_rate_hz * dt:
            pos = pos + rng.standard_normal(2) * saccade_deg * px_per_deg
        vel = a_vel * vel + np.sqrt(1 - a_vel ** 2) * rng.standard_normal(2) * drift_deg_s * px_per_deg
        pos = pos + vel * dt
        cz = float(np.clip(a_zoom * cz + (1 - a_zoom) * (lo + hi) / 2
                           + np.sqrt(1 - a_zoom ** 2) * (hi - lo) / 4 * rng.standard_normal(), lo, hi))
        s = step / np.exp(cz)
        half = np.array([w / 2 * s, h / 2 * s])
        pos = np.clip(pos, half, np.array([cols, rows]) - half)  # stay inside the photograph
        rr, cc = np.meshgrid(pos[1] + rr0 * s, pos[0] + cc0 * s, indexing="ij")
        out[t] = ndimage.map_coordinates(img, np.stack([rr, cc]), order=1, mode="reflect", prefilter=False)
    if rms_contrast is not None:
        mean, sd = out.mean(), out.std()
        out = GREY + (out - mean) * (rms_contrast * GREY / max(sd, 1e-6))
    return np.clip(out, 0, 255).astype(np.float32)


def natural_movies(n_clips: int, n_frames: int, image_shape: tuple[int, int], *, frame_rate: float,
                   pixel_size_deg: float, seed: int, **kwargs) -> np.ndarray:
    """``n_clips`` independent clips, (n_clips, n_frames, H, W) float32; clip i uses a seed drawn
    from ``seed`` so any clip can be regenerated alone with :func:`clip_seeds`."""
    return np.stack([natural_movie(n_frames, image_shape, frame_rate=frame_rate, pixel_size_deg=pixel_size_deg,
                                   seed=int(s), **kwargs) for s in clip_seeds(seed, n_clips)])


def clip_seeds(seed: int, n_clips: int) -> np.ndarray:
    """The per-clip seeds :func:`natural_movies` uses, (n_clips,) int64."""
    return np.random.SeedSequence(seed).generate_state(n_clips, dtype=np.uint32).astype(np.int64)

"""Screen geometry shared by every stimulus generator.

Conventions (the same for the simulator's neurons and for in-silico experiments):

* A stimulus is float32 grey levels 0..255, 127.5 = mean grey, shaped ``(time, H, W)``.
* Visual coordinates are in degrees with the origin at the screen centre: ``x`` (azimuth)
  grows to the right along columns, ``y`` (elevation) grows *upward* (against row order).
* A direction ``theta`` (degrees) is the direction of motion in that frame: 0 = rightward,
  90 = upward, counter-clockwise. A grating's orientation is its drift direction mod 180
  (the direction of its wave vector, i.e. normal to the bars).
"""

from __future__ import annotations

import numpy as np

GREY = 127.5


def visual_grid(image_shape: tuple[int, int], pixel_size_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Visual coordinates of every pixel centre.

    Returns ``(x_deg, y_deg)``, each (H, W) float64: azimuth (right positive) and elevation
    (up positive) in degrees, zero at the screen centre.
    """
    h, w = (int(s) for s in image_shape)
    if h < 1 or w < 1 or pixel_size_deg <= 0:
        raise ValueError(f"image_shape {image_shape} and pixel_size_deg {pixel_size_deg} must be positive")
    cols = (np.arange(w) - (w - 1) / 2.0) * pixel_size_deg
    rows = ((h - 1) / 2.0 - np.arange(h)) * pixel_size_deg
    x, y = np.meshgrid(cols, rows)
    return x, y


def to_grey(contrast: np.ndarray) -> np.ndarray:
    """Map signed contrast (-1..1 around mean grey) to float32 grey levels clipped to 0..255."""
    return np.clip(GREY * (1.0 + np.asarray(contrast, np.float64)), 0.0, 255.0).astype(np.float32)


def frame_times(n_frames: int, frame_rate: float) -> np.ndarray:
    """Onset time in seconds of each frame, (n_frames,) float64."""
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    return np.arange(int(n_frames)) / float(frame_rate)


def aperture(image_shape: tuple[int, int], pixel_size_deg: float, center_deg: tuple[float, float],
             size_deg: float | None, edge_deg: float = 2.0) -> np.ndarray:
    """A soft circular window, (H, W) float64 in 0..1; ``size_deg`` is the diameter (None = full field)."""
    x, y = visual_grid(image_shape, pixel_size_deg)
    if size_deg is None:
        return np.ones_like(x)
    r = np.hypot(x - center_deg[0], y - center_deg[1])
    edge = max(edge_deg, 1e-6)
    return np.clip((size_deg / 2.0 - r) / edge + 0.5, 0.0, 1.0)

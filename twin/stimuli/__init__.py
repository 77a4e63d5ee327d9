"""Stimulus generators shared by the simulator and the in-silico experiments.

Every generator returns float32 screen grey levels 0..255 (127.5 = mean grey) shaped
``(n_frames, H, W)``, for any resolution (``image_shape``, ``pixel_size_deg``) and frame rate,
deterministic by ``seed``. Geometry: :mod:`twin.stimuli.grid` (x right, y up, degrees from the
screen centre; directions counter-clockwise from rightward; orientation = direction mod 180).
"""

from twin.stimuli.grid import GREY, aperture, frame_times, to_grey, visual_grid
from twin.stimuli.natural import IMAGE_NAMES, clip_seeds, natural_image, natural_images, natural_movie, natural_movies
from twin.stimuli.noise import directional_noise, flashing_dots, monet2, random_dot_kinematogram, rdk
from twin.stimuli.parametric import drifting_grating, gabor_patch, gabor_sequence, grating_set

__all__ = ["GREY", "aperture", "frame_times", "to_grey", "visual_grid", "IMAGE_NAMES", "clip_seeds",
           "natural_image", "natural_images", "natural_movie", "natural_movies", "directional_noise",
           "flashing_dots", "monet2", "random_dot_kinematogram", "rdk", "drifting_grating", "gabor_patch",
           "gabor_sequence", "grating_set"]

"""twin.stimuli: shapes, grey levels, determinism and the geometry conventions."""

from __future__ import annotations

import numpy as np
import pytest

from twin import stimuli as S

SHAPE = (18, 32)
KW = dict(pixel_size_deg=2.0, frame_rate=10.0)

GENERATORS = {
    "natural_movie": lambda seed: S.natural_movie(12, SHAPE, seed=seed, **KW),
    "drifting_grating": lambda seed: S.drifting_grating(12, SHAPE, direction_deg=30, sf_cpd=0.05, tf_hz=2,
                                                        phase_deg=seed, **KW),
    "gabor_patch": lambda seed: S.gabor_patch(12, SHAPE, ori_deg=30, sf_cpd=0.05, sigma_deg=6, phase_deg=seed, **KW),
    "gabor_sequence": lambda seed: S.gabor_sequence(12, SHAPE, seed=seed, **KW),
    "flashing_dots": lambda seed: S.flashing_dots(12, SHAPE, seed=seed, **KW),
    "directional_noise": lambda seed: S.directional_noise(12, SHAPE, direction_deg=45, seed=seed, **KW),
    "rdk": lambda seed: S.random_dot_kinematogram(12, SHAPE, direction_deg=45, seed=seed, **KW),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_return_float32_grey_levels_of_the_requested_shape(name):
    x = GENERATORS[name](1)
    assert x.shape == (12, *SHAPE) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 255
    assert abs(float(np.median(x)) - 127.5) < 40  # centred on mean grey


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_gives_identical_frames_and_another_seed_differs(name):
    a, b, c = GENERATORS[name](3), GENERATORS[name](3), GENERATORS[name](4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_grating_drifting_rightward_shifts_one_pixel_per_frame_when_speed_is_one_pixel():
    # speed = tf / sf = 20 deg/s = 1 pixel (2 deg) per frame at 10 Hz
    g = S.drifting_grating(3, SHAPE, direction_deg=0, sf_cpd=0.05, tf_hz=1.0, **KW)
    np.testing.assert_allclose(g[1][:, 1:], g[0][:, :-1], atol=1e-3)


def test_grating_drifting_upward_has_horizontal_bars_moving_toward_row_zero():
    g = S.drifting_grating(2, SHAPE, direction_deg=90, sf_cpd=0.05, tf_hz=1.0, **KW)
    assert np.allclose(g[0], g[0][:, :1])                          # constant along each row
    np.testing.assert_allclose(g[1][:-1], g[0][1:], atol=1e-3)      # content moves up (to lower rows)


def test_directional_noise_translates_along_its_direction():
    d = S.directional_noise(2, SHAPE, direction_deg=0, seed=0, speed_deg_s=20.0, **KW)
    np.testing.assert_allclose(d[1], np.roll(d[0], 1, axis=1), atol=0.6)  # rightward, periodic canvas


def test_directional_noise_energy_is_oriented_along_the_direction():
    d = S.directional_noise(1, (64, 64), direction_deg=0, seed=0, **KW)[0] - 127.5
    # motion rightward -> wave vectors horizontal -> vertical bars -> strong variation along x
    assert np.abs(np.diff(d, axis=1)).mean() > 2 * np.abs(np.diff(d, axis=0)).mean()


def test_monet2_shows_each_of_16_directions_for_the_same_time():
    x, dirs = S.monet2(SHAPE, seed=0, direction_s=0.2, **KW)
    values, counts = np.unique(dirs, return_counts=True)
    assert len(values) == 16 and (counts == 2).all() and len(x) == 32


def test_natural_movie_is_smooth_in_time_with_requested_contrast():
    m = S.natural_movie(40, (36, 64), seed=0, rms_contrast=0.25, **KW)
    assert abs(m.mean() - 127.5) < 6 and 0.15 < m.std() / 127.5 <= 0.26  # target 0.25 before clipping to 0..255
    r = [np.corrcoef(m[t].ravel(), m[t + 1].ravel())[0, 1] for t in range(39)]
    assert np.median(r) > 0.8  # a movie, not white noise


def test_natural_movies_uses_all_images_and_regenerates_single_clips():
    assert len(S.natural_images()) == len(S.IMAGE_NAMES)
    clips = S.natural_movies(3, 5, SHAPE, seed=9, **KW)
    one = S.natural_movie(5, SHAPE, seed=int(S.clip_seeds(9, 3)[2]), **KW)
    np.testing.assert_array_equal(clips[2], one)


def test_flashing_dots_events_mark_discs_of_their_polarity():
    x, ev = S.flashing_dots(10, SHAPE, seed=2, return_events=True, **KW)
    xs, ys = S.visual_grid(SHAPE, KW["pixel_size_deg"])
    for f, cx, cy, pol in zip(ev["onset_frame"], ev["x_deg"], ev["y_deg"], ev["polarity"]):
        r, c = np.unravel_index(np.argmin(np.hypot(xs - cx, ys - cy)), SHAPE)
        assert np.sign(x[f, r, c] - 127.5) == pol


def test_rdk_with_full_coherence_moves_dots_by_speed_over_frame_rate():
    x = S.random_dot_kinematogram(2, (36, 64), direction_deg=180, seed=0, speed_deg_s=20.0, coherence=1.0,
                                  **KW)
    np.testing.assert_allclose(x[1][:, 3:-4], x[0][:, 4:-3], atol=1.0)  # leftward by one pixel (edges wrap)


def test_visual_grid_is_centred_with_y_up():
    x, y = S.visual_grid((3, 5), 2.0)
    assert x[0, 0] == -4 and x[0, -1] == 4 and y[0, 0] == 2 and y[-1, 0] == -2


def test_grating_set_stacks_one_grating_per_direction():
    g = S.grating_set([0, 90, 180], 4, SHAPE, sf_cpd=0.05, tf_hz=1.0, **KW)
    assert g.shape == (3, 4, *SHAPE)
    np.testing.assert_array_equal(g[1], S.drifting_grating(4, SHAPE, direction_deg=90, sf_cpd=0.05, tf_hz=1.0, **KW))

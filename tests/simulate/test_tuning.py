"""The planted tuning is real: it can be read back out of simulated responses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from twin.simulate.config import ObservationConfig
from twin.simulate.observation import observe
from twin.stimuli import drifting_grating

DIRS = np.arange(16) * 22.5


def _grating_responses(truth, rid, n_frames=30):
    """Noise-free responses (dir, T, N) to gratings at each neuron's own SF/TF (diagonal)."""
    u = truth.units(rid)
    out = np.zeros((len(DIRS), n_frames, len(u)))
    stim = np.stack([[drifting_grating(n_frames, truth.image_shape, direction_deg=d, sf_cpd=sf, tf_hz=tf,
                                       pixel_size_deg=truth.pixel_size_deg, frame_rate=truth.frame_rate)
                      for d in DIRS] for sf, tf in zip(u.sf_cpd, u.tf_hz)])  # (N, dir, T, H, W)
    for i in range(len(u)):
        r = np.asarray(truth.predict(stim[i], rid))  # (dir, T, N)
        out[:, :, i] = r[:, :, i]
    return u, out


def _pref_ori(mean_resp):
    """Preferred orientation (deg) from (dir, N) mean responses: angle of sum r e^{2i theta}."""
    z = (mean_resp * np.exp(2j * np.deg2rad(DIRS))[:, None]).sum(0)
    return np.rad2deg(np.angle(z)) / 2 % 180


def _ori_err(a, b):
    d = np.abs(a - b) % 180
    return np.minimum(d, 180 - d)


@pytest.fixture(scope="module")
def gratings(truth):
    rid = truth.recording_ids()[0]
    u, r = _grating_responses(truth, rid)
    return rid, u, r


def test_orientation_from_noise_free_grating_responses_matches_planted(gratings, truth):
    _, u, r = gratings
    keep = (u.cell_class != "bipartite").to_numpy()  # a texture subfield has its own orientation
    m = r[:, truth.burn_in:].mean(1)
    err = _ori_err(_pref_ori(m - m.min(0)), u.pref_ori_deg.to_numpy())[keep]
    assert np.median(err) < 5 and np.quantile(err, 0.9) < 15


def test_orientation_from_noisy_trial_averages_matches_planted(gratings, truth):
    _, u, r = gratings
    rng = np.random.default_rng(0)
    reps = np.stack([observe(r, u.noise_sd.to_numpy(), truth.frame_rate, ObservationConfig(), rng)
                     for _ in range(10)])  # (repeat, dir, T, N)
    m = reps[:, :, truth.burn_in:].mean((0, 2))
    keep = (u.cell_class != "bipartite").to_numpy()
    err = _ori_err(_pref_ori(m - m.min(0)), u.pref_ori_deg.to_numpy())[keep]
    assert np.median(err) < 12 and (err < 30).mean() > 0.75


def test_complex_cells_are_phase_invariant_and_simple_cells_are_not(gratings, truth):
    _, u, r = gratings
    best = r[:, truth.burn_in:].mean(1).argmax(0)
    base = np.asarray(truth.predict(np.full((1, 10, *truth.image_shape), 127.5, np.float32),
                                    truth.recording_ids()[0]))[0, -1]
    f1f0 = []
    for i in range(len(u)):
        x = r[best[i], truth.burn_in:, i] - base[i]
        tf = u.tf_hz.iloc[i]
        t = np.arange(len(x)) / truth.frame_rate
        f1 = 2 * np.abs((x * np.exp(-2j * np.pi * tf * t)).mean())
        f1f0.append(f1 / max(x.mean(), 1e-9))
    f1f0 = np.array(f1f0)
    cls = u.cell_class.to_numpy()
    assert np.median(f1f0[cls == "simple"]) > 1.0
    assert np.median(f1f0[cls == "complex"]) < 0.3
    keep = cls != "bipartite"  # their shift-tolerant texture subfield dominates at the best grating
    rho = spearmanr(f1f0[keep], u.phase_invariance[keep]).statistic
    assert rho < -0.4


def test_direction_cells_prefer_their_planted_direction(gratings, truth):
    _, u, r = gratings
    m = r[:, truth.burn_in:].mean(1)
    m = m - m.min(0)
    z = (m * np.exp(1j * np.deg2rad(DIRS))[:, None]).sum(0)
    dsi = np.abs(z) / m.sum(0)
    pref = np.rad2deg(np.angle(z)) % 360
    err = np.abs(pref - u.pref_dir_deg.to_numpy()) % 360
    err = np.minimum(err, 360 - err)
    is_dir = (u.cell_class == "direction").to_numpy()
    assert is_dir.any()
    assert np.median(err[is_dir]) < 15
    assert np.median(dsi[is_dir]) > 2 * np.median(dsi[(u.cell_class == "simple").to_numpy()])


def test_bipartite_cells_have_a_phase_selective_and_a_phase_invariant_subfield(truth):
    from twin.stimuli import gabor_patch

    for rid in truth.recording_ids():
        u = truth.units(rid)
        b = np.flatnonzero(u.cell_class == "bipartite")
        if len(b):
            break
    assert len(b)
    base = np.asarray(truth.predict(np.full((1, 10, *truth.image_shape), 127.5, np.float32), rid))[0, -1]
    ratios = {"fixed": [], "texture": []}
    for i in b:
        row = u.iloc[i]
        for part, (x, y, ori, sf, sig) in {
                "fixed": (row.rf_x_deg, row.rf_y_deg, row.pref_dir_deg, row.sf_cpd, row.rf_sigma_deg),
                "texture": (row.texture_x_deg, row.texture_y_deg, row.texture_ori_deg, row.texture_sf_cpd,
                            1.5 * row.texture_sigma_deg)}.items():
            st = gabor_patch(40, truth.image_shape, ori_deg=ori, sf_cpd=sf, sigma_deg=sig, center_deg=(x, y),
                             tf_hz=row.tf_hz, pixel_size_deg=truth.pixel_size_deg, frame_rate=truth.frame_rate)
            r = np.asarray(truth.predict(st[None], rid))[0, truth.burn_in:, i] - base[i]
            t = np.arange(len(r)) / truth.frame_rate
            f1 = 2 * np.abs((r * np.exp(-2j * np.pi * row.tf_hz * t)).mean())
            ratios[part].append(f1 / max(r.mean(), 1e-9))
    assert np.median(ratios["fixed"]) > 2 * np.median(ratios["texture"])

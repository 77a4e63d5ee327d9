"""Tuning metrics and the grating / noise battery on planted Gabor neurons."""

from __future__ import annotations

import numpy as np

from twin.insilico.tuning import f1_f0, fit_von_mises, permutation_p, selectivity


def test_selectivity_matches_closed_form_for_cosine_tuning():
    th = np.arange(16) * 22.5
    r = 1.0 + 0.5 * np.cos(np.deg2rad(2 * (th - 30.0)))
    s = selectivity(r[None], th)
    assert np.isclose(s["gosi"][0], 0.25)          # |sum 0.5 cos e^{2i}| / sum 1 = 0.5 / 2
    assert np.isclose(s["gdsi"][0], 0.0, atol=1e-12)
    assert np.isclose(s["pref_ori"][0], 30.0)


def test_preferred_direction_of_a_direction_tuned_curve():
    th = np.arange(16) * 22.5
    r = np.exp(2 * (np.cos(np.deg2rad(th - 250.0)) - 1))
    s = selectivity(r[None], th)
    assert abs(s["pref_dir"][0] - 250.0) < 1.0 and s["gdsi"][0] > 0.5


def test_permutation_p_small_for_tuned_and_large_for_flat_noise():
    rng = np.random.default_rng(0)
    th = np.arange(8) * 45.0
    tuned = (1 + np.cos(np.deg2rad(2 * th)))[:, None] + 0.1 * rng.standard_normal((8, 6))
    flat = 1 + 0.3 * rng.standard_normal((8, 6))
    trials = np.stack([tuned, np.abs(flat)], -1)
    p = permutation_p(trials, th, 200, np.random.default_rng(1))
    assert p["gosi_p"][0] < 0.01
    assert p["gosi_p"][1] > 0.05


def test_von_mises_fit_recovers_peak_and_width():
    th = np.arange(16) * 22.5
    t = np.deg2rad(th)
    mu = np.deg2rad(100.0)
    r = 0.2 + 1.0 * np.exp(3 * (np.cos(t - mu) - 1)) + 0.4 * np.exp(3 * (np.cos(t - mu - np.pi) - 1))
    f = fit_von_mises(r[None], th)
    assert abs(f["vm_mu"][0] - 100.0) < 1.0
    assert abs(f["vm_kappa"][0] - 3.0) < 0.1 and f["vm_r2"][0] > 0.999


def test_f1_f0_of_rectified_sine_is_pi_over_2():
    fr, tf = 200.0, 2.0
    t = np.arange(450) / fr   # 4.5 cycles: only the first 4 are used
    r = np.maximum(np.sin(2 * np.pi * tf * t), 0)[:, None]
    f0, f1 = f1_f0(r, tf, fr)
    assert abs(f1[0] / f0[0] - np.pi / 2) < 0.05


def test_grating_preferred_orientation_recovered(fake, tuning_result):
    err = np.abs(tuning_result["pref_ori"].values - fake.ori % 180) % 180
    err = np.minimum(err, 180 - err)
    assert np.median(err) < 5.0
    noise_err = np.abs(tuning_result["noise_pref_ori"].values - fake.ori % 180) % 180
    assert np.median(np.minimum(noise_err, 180 - noise_err)) < 10.0


def test_direction_cells_have_high_gdsi_and_right_direction(fake, tuning_result):
    d = fake.kind == 2
    gdsi = tuning_result["gdsi"].values
    assert gdsi[d].min() > gdsi[fake.kind == 1].max()
    err = np.abs(tuning_result["pref_dir"].values[d] - fake.ori[d]) % 360
    assert np.max(np.minimum(err, 360 - err)) < 15.0


def test_simple_and_complex_separated_by_f1_f0(fake, tuning_result):
    ratio = tuning_result["f1_f0"].values
    assert ratio[fake.kind == 0].min() > 1.0
    assert ratio[fake.kind == 1].max() < 0.2


def test_gosi_orders_neurons_by_envelope_width():
    from scipy.stats import spearmanr

    from twin.insilico.common import unit_table
    from twin.insilico.config import TuningConfig
    from twin.insilico.testing import GaborPopulation
    from twin.insilico.tuning import run_tuning

    m = GaborPopulation(n=8, kinds=np.ones(8, int), sigma_range_deg=(4.0, 10.0), sf_range_cpd=(0.04, 0.04), seed=2)
    ds = run_tuning(m, unit_table(m, m.recording_ids()),
                    TuningConfig(n_directions=8, n_frames=12, sf_list=(0.04,), tf_list=(2.0,), n_phases=1,
                                 noise_repeats=1, n_permutations=10), seed=0)
    assert spearmanr(ds["gosi"].values, m.sigma).statistic > 0.8


def test_evoked_selectivity_and_f1_f0_ignore_the_spontaneous_rate():
    from twin.insilico.common import unit_table
    from twin.insilico.config import TuningConfig
    from twin.insilico.testing import GaborPopulation
    from twin.insilico.tuning import run_tuning

    kinds = np.array([0, 1, 0, 1, 0, 1])
    spont = np.array([0.02, 0.02, 0.5, 0.9, 2.0, 0.3])
    out = {}
    for name, s in (("low", 0.02), ("high", spont)):
        m = GaborPopulation(n=6, kinds=kinds, seed=4, spontaneous=s)
        for base in ("blank", "none"):
            cfg = TuningConfig(n_directions=8, n_frames=22, sf_list=(0.04,), tf_list=(2.0,), n_phases=2,
                               noise_repeats=1, n_permutations=20, von_mises=False,
                               selectivity_baseline=base, modulation_baseline=base)
            out[name, base] = run_tuning(m, unit_table(m, m.recording_ids()), cfg, seed=0)
    np.testing.assert_allclose(out["high", "blank"]["blank_response"].values, spont + (kinds == 1) * 1e-3, atol=1e-4)
    for k in ("gosi", "f1_f0"):
        np.testing.assert_allclose(out["high", "blank"][k].values, out["low", "blank"][k].values, rtol=1e-3, atol=1e-4)
        i = [2, 3, 4, 5] if k == "gosi" else [2, 4]            # F1/F0 of complex cells is ~0 anyway
        raw = out["high", "none"][k].values[i]
        assert np.all(raw < 0.8 * out["low", "none"][k].values[i])       # diluted by the offset
    assert np.all(out["high", "blank"]["f1_f0"].values[kinds == 0] > 1.0)
    assert np.all(out["high", "none"]["f1_f0"].values[4] < 1.0)           # a simple cell looks complex
    # the defaults: raw gOSI (as the MICrONS in-silico tuning), F1/F0 above the blank
    cfg = TuningConfig(n_directions=8, n_frames=22, sf_list=(0.04,), tf_list=(2.0,), n_phases=2,
                       noise_repeats=1, n_permutations=20, von_mises=False)
    m = GaborPopulation(n=6, kinds=kinds, seed=4, spontaneous=spont)
    d = run_tuning(m, unit_table(m, m.recording_ids()), cfg, seed=0)
    np.testing.assert_allclose(d["gosi"].values, out["high", "none"]["gosi"].values)
    np.testing.assert_allclose(d["f1_f0"].values, out["high", "blank"]["f1_f0"].values)


def test_tuning_output_has_neuron_coordinates(tuning_result):
    for c in ("recording_id", "session", "scan_idx", "unit_id", "pt_root_id"):
        assert c in tuning_result.coords
    assert tuning_result["grating_response"].dims == ("unit", "direction", "repeat")


def test_vectorised_von_mises_fit_is_as_good_as_scipy_least_squares():
    from scipy.optimize import least_squares

    from twin.insilico.tuning import _vm2

    rng = np.random.default_rng(3)
    th = np.arange(16) * 22.5
    t = np.deg2rad(th)
    n = 12
    p = np.stack([rng.uniform(0, .5, n), rng.uniform(.2, 2, n), rng.uniform(0, 1, n), rng.uniform(0, 2 * np.pi, n),
                  np.exp(rng.uniform(np.log(.3), np.log(20), n))], 1)
    y = _vm2(p, t) + 0.05 * rng.standard_normal((n, 16))
    f = fit_von_mises(y, th)
    fitted = np.stack([f["vm_baseline"], f["vm_a1"], f["vm_a2"], np.deg2rad(f["vm_mu"]), f["vm_kappa"]], 1)
    sse = ((_vm2(fitted, t) - y) ** 2).sum(1)
    for i in range(n):
        span = y[i].max() - y[i].min()
        ref = least_squares(lambda q: _vm2(q[None], t)[0] - y[i],
                            [y[i].min(), span, span / 2, np.angle((y[i] * np.exp(1j * t)).sum()), 2.0],
                            bounds=([-np.inf, 0, 0, -4 * np.pi, 0.05], [np.inf, np.inf, np.inf, 4 * np.pi, 50]))
        assert sse[i] <= 1.001 * (ref.fun ** 2).sum() + 1e-12


def test_vectorised_permutation_test_equals_the_shuffling_loop():
    rng = np.random.default_rng(0)
    th = np.arange(8) * 45.0
    trials = np.abs(rng.standard_normal((8, 3, 20))) + np.cos(np.deg2rad(2 * th))[:, None, None]
    got = permutation_p(trials, th, 300, np.random.default_rng(5))
    loop = np.random.default_rng(5)
    obs = selectivity(trials.mean(1).T, th)
    flat = trials.reshape(24, 20)
    ge_o, ge_d = np.zeros(20), np.zeros(20)
    for _ in range(300):
        null = selectivity(flat[loop.permutation(24)].reshape(8, 3, 20).mean(1).T, th)
        ge_o += null["gosi"] >= obs["gosi"] - 1e-12
        ge_d += null["gdsi"] >= obs["gdsi"] - 1e-12
    np.testing.assert_array_equal(got["gosi_p"], (1 + ge_o) / 301)
    np.testing.assert_array_equal(got["gdsi_p"], (1 + ge_d) / 301)

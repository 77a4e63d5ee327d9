"""The simulation folder: Recordings that validate, ground truth that agrees with them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from twin.data.recording import open_recording
from twin.similarity import load_profiles, signal_correlation_matrix


def test_recordings_pass_validation_with_all_tiers_and_stimulus_types(tiny_sim):
    files = sorted((tiny_sim / "recordings").glob("*.h5"))
    assert len(files) == 2
    with open_recording(files[0]) as ds:
        tiers = set(ds.tier.values.astype(str))
        kinds = set(ds.stimulus_type.values.astype(str))
        assert tiers == {"train", "validation", "test"}
        assert kinds == {"natural_movie", "drifting_grating", "directional_noise", "flashing_dots", "gabor", "rdk"}
        assert ds.stimulus.dtype == np.uint8 and ds.attrs["frame_rate"] == 10.0
        test_nm = (ds.tier == "test") & (ds.stimulus_type == "natural_movie")
        clips = pd.Series(ds.clip_id.values[test_nm.values].astype(str))
        assert (clips.value_counts() == 3).all()  # tiny: 3 oracle repeats per test clip
        assert float(ds.response.min()) >= 0
        # oracle repeats show identical frames
        idx = np.flatnonzero(test_nm.values & (ds.clip_id.values.astype(str) == clips.iloc[0]))
        np.testing.assert_array_equal(ds.stimulus[idx[0]].values, ds.stimulus[idx[1]].values)


def test_truth_test_responses_follow_the_recordings_test_trials(tiny_sim):
    for f in (tiny_sim / "recordings").glob("*.h5"):
        with open_recording(f) as ds, xr.open_dataset(tiny_sim / "truth" / "test_responses" / f.name) as t:
            test = ds.tier.values.astype(str) == "test"
            np.testing.assert_array_equal(t.clip_id.values.astype(str), ds.clip_id.values[test].astype(str))
            np.testing.assert_array_equal(t.repeat.values, ds.repeat.values[test])
            assert t.response.shape == (test.sum(), ds.sizes["time"], ds.sizes["unit"])


def test_truth_model_reproduces_the_saved_noise_free_test_responses(tiny_sim, truth):
    rid = truth.recording_ids()[0]
    with open_recording(tiny_sim / "recordings" / f"{rid}.h5") as ds, \
            xr.open_dataset(tiny_sim / "truth" / "test_responses" / f"{rid}.h5") as t:
        test = np.flatnonzero(ds.tier.values.astype(str) == "test")[:4]
        beh = {"running": ds.running.values[test], "pupil": ds.pupil.values[test],
               "eye_position": ds.eye_position.values[test]}
        pred = np.asarray(truth.predict(ds.stimulus.values[test].astype(np.float32), rid, beh))
        np.testing.assert_allclose(pred, t.response.values[:4], rtol=1e-4, atol=1e-5)


def test_observed_activity_tracks_the_truth_with_realistic_single_trial_correlation(tiny_sim):
    summary = json.loads((tiny_sim / "summary.json").read_text())
    for scan in summary["scans"].values():
        r = scan["single_trial_corr_true_vs_observed"]
        assert 0.15 < r["median"] < 0.6 and r["q10"] < r["median"] < r["q90"]


def test_units_table_holds_every_planted_parameter_and_unique_ids(tiny_sim, truth):
    u = pd.read_parquet(tiny_sim / "truth" / "units.parquet")
    need = ["recording_id", "animal_id", "session", "scan_idx", "unit_id", "pt_root_id", "nucleus_id", "area",
            "layer", "cell_class", "excitatory", "pref_ori_deg", "pref_dir_deg", "sf_cpd", "tf_hz", "rf_x_deg",
            "rf_y_deg", "rf_sigma_deg", "phase_invariance", "has_proofread_axon", "bipartite_index"]
    assert set(need) <= set(u.columns)
    assert u.pt_root_id.is_unique and (u.pt_root_id > 0).all() and u.nucleus_id.is_unique
    assert set(u.area) <= {"V1", "LM", "RL", "AL"} and set(u.layer) <= {"L2/3", "L4", "L5", "L6"}
    assert ((u.pref_ori_deg >= 0) & (u.pref_ori_deg < 180)).all()
    assert truth.units(truth.recording_ids()[0]).shape[0] == 24


def test_profiles_give_true_signal_correlations_by_root_id(tiny_sim):
    prof = load_profiles(tiny_sim / "truth" / "profiles.h5")
    assert prof.sizes["unit"] == 48 and {"signal_response", "rf_center", "pref_ori"} <= set(prof.data_vars)
    sim = signal_correlation_matrix(prof.signal_response.values)
    assert np.allclose(np.diag(sim), 1) and np.isfinite(sim).all()
    # neighbours in visual space with similar orientation respond more alike than the rest
    rf = prof.rf_center.values
    d = np.hypot(*(rf[:, None] - rf[None]).transpose(2, 0, 1))
    off = ~np.eye(len(sim), dtype=bool)
    assert sim[off & (d < 10)].mean() > sim[off & (d > 30)].mean()


def test_retinotopy_rf_azimuth_follows_cortical_position_in_v1(truth):
    u = truth.table[truth.table.area == "V1"]
    assert np.corrcoef(u.cortical_x, u.rf_x_deg)[0, 1] > 0.6


def test_truth_model_gradients_are_finite_and_nonzero(truth):
    import jax
    import jax.numpy as jnp

    rid = truth.recording_ids()[0]
    x = jnp.full((1, 8, *truth.image_shape), 127.5) + 20 * jax.random.normal(jax.random.key(0), (1, 8, *truth.image_shape))
    g = jax.grad(lambda s: truth.predict(s, rid)[0, -1].sum())(x)
    assert bool(jnp.isfinite(g).all()) and float(jnp.abs(g).sum()) > 0


def test_eye_position_shifts_the_image_on_the_retina(truth):
    rid = truth.recording_ids()[0]
    rng = np.random.default_rng(0)
    x = rng.uniform(60, 200, (1, 8, truth.image_shape[0], truth.image_shape[1] + 2)).astype(np.float32)
    px = truth.pixel_size_deg
    # eye one pixel to the right sees the screen content one pixel to the right
    eye = np.zeros((1, 8, 2), np.float32)
    eye[..., 0] = px
    a = np.asarray(truth.predict(x[..., 1:-1], rid, {"eye_position": eye}))
    b = np.asarray(truth.predict(x[..., 2:], rid, {"eye_position": np.zeros_like(eye)}))
    u = truth.units(rid)
    reach = u.rf_x_deg.abs() + 2.5 * u.rf_sigma_deg  # filters' horizontal extent; edges differ
    reach = np.where(u.texture_weight > 0, np.inf, reach)
    inner = reach < (truth.image_shape[1] / 2 - 1) * px
    assert inner.sum() >= 3
    np.testing.assert_allclose(a[..., inner], b[..., inner], rtol=0.02, atol=1e-3)
    assert not np.allclose(a, np.asarray(truth.predict(x[..., 1:-1], rid, {"eye_position": 0 * eye})))


def test_running_raises_responses_of_neurons_with_positive_running_beta(truth):
    rid = truth.recording_ids()[0]
    u = truth.units(rid)
    x = np.full((1, 8, *truth.image_shape), 127.5, np.float32)
    still = np.asarray(truth.predict(x, rid, {"running": np.zeros((1, 8))}))[0, -1]
    run = np.asarray(truth.predict(x, rid, {"running": np.full((1, 8), 30.0)}))[0, -1]
    np.testing.assert_array_equal(run > still, u.beta_running.to_numpy() > 0)


def test_predict_rejects_a_stimulus_of_the_wrong_shape(truth):
    from twin.errors import InputError

    with pytest.raises(InputError, match="stimulus"):
        truth.predict(np.zeros((1, 4, 5, 5), np.float32), truth.recording_ids()[0])


def test_truth_model_implements_the_response_model_protocol(truth):
    from twin.response_model import ResponseModel

    assert isinstance(truth, ResponseModel)
    assert truth.image_shape == (18, 32) and truth.frame_rate == 10.0 and truth.burn_in >= 1
    cols = {"recording_id", "animal_id", "session", "scan_idx", "unit_id", "area", "layer", "pt_root_id"}
    assert cols <= set(truth.units(truth.recording_ids()[1]).columns)
    out = truth.predict(np.full((2, 5, 18, 32), 127.5, np.float32), truth.recording_ids()[1])
    assert out.shape == (2, 5, 24) and float(out.min()) >= 0


def test_noise_free_recordings_hold_the_planted_rates_and_validate(tiny_sim, truth, tmp_path):
    from twin.simulate.truth import write_noise_free_recordings

    rid = truth.recording_ids()[0]
    (path,) = write_noise_free_recordings(tiny_sim, tmp_path / "nf", [rid])
    assert [p.name for p in (tmp_path / "nf").iterdir()] == [f"{rid}.h5"]      # no temporary left
    with open_recording(path) as ds, open_recording(tiny_sim / "recordings" / f"{rid}.h5") as noisy:
        assert ds.attrs["response_source"].startswith("noise-free")
        np.testing.assert_array_equal(ds.stimulus[:3].values, noisy.stimulus[:3].values)
        np.testing.assert_array_equal(ds.running.values, noisy.running.values)
        beh = {k: ds[k][:2].values for k in ("running", "pupil", "eye_position")}
        expected = np.asarray(truth.predict(ds.stimulus[:2].values, rid, beh))
        np.testing.assert_allclose(ds.response[:2].values, expected, rtol=1e-4, atol=1e-6)
        assert not np.allclose(ds.response.values, noisy.response.values)

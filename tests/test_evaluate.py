"""twin.evaluate on tiny Recordings with small fake ResponseModels (pure JAX functions)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from twin import evaluate as ev
from twin.data.recording import make_recording, write_recording
from twin.errors import InputError

H, W, T, N, RATE, BURN_IN = 4, 6, 12, 5, 10.0, 3
ANIMAL, SESSION, SCAN = "m1", 2, 3
RID = f"{ANIMAL}-{SESSION}-{SCAN}"


class FakeModel:
    """rate = softplus(w . (stimulus/127.5 - 1) + b) * (1 + 0.5 * running): a ResponseModel."""

    frame_rate = RATE
    image_shape = (H, W)
    pixel_size_deg = 1.0
    burn_in = BURN_IN

    def __init__(self, w, b, unit_ids=None, rid=RID, burn_in_garbage=False):
        self.w, self.b = jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)
        self.unit_ids = np.arange(N) if unit_ids is None else np.asarray(unit_ids)
        self.rid = rid
        self.burn_in_garbage = burn_in_garbage
        self.calls: list[tuple] = []

    def recording_ids(self):
        return [self.rid]

    def units(self, recording_id):
        n = len(self.unit_ids)
        return pd.DataFrame({"recording_id": recording_id, "animal_id": ANIMAL, "session": SESSION,
                             "scan_idx": SCAN, "unit_id": self.unit_ids, "area": "V1",
                             "layer": "L2/3", "pt_root_id": np.zeros(n, np.int64)})

    def predict(self, stimulus, recording_id, behaviour=None):
        self.calls.append((stimulus.shape, None if behaviour is None else dict(behaviour)))
        x = stimulus / 127.5 - 1.0
        drive = jnp.einsum("bthw,nhw->btn", x, self.w[self.unit_ids]) + self.b[self.unit_ids]
        running = 1.0 if behaviour is None else behaviour["running"][..., None]
        rate = jax.nn.softplus(drive) * (1.0 + 0.5 * running)
        if self.burn_in_garbage:
            rate = rate.at[:, :BURN_IN].set(1e3)
        return rate


def _params(seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    return rng.normal(0, scale, (N, H, W)) / np.sqrt(H * W) * 4, rng.normal(0, 0.3, N)


def _recording(truth: FakeModel, noise=True, seed=1, running_varies=True):
    """2 train trials; test: 3 natural-movie clips x 4 repeats, 2 gabor clips x 3 repeats."""
    rng = np.random.default_rng(seed)
    clips = {"nm0": "natural_movie", "nm1": "natural_movie", "nm2": "natural_movie",
             "g0": "gabor", "g1": "gabor"}
    frames = {c: rng.uniform(0, 255, (T, H, W)).astype(np.float32) for c in clips}
    tier, stype, clip, rep, stim = [], [], [], [], []
    for i in range(2):
        tier.append("train"), stype.append("natural_movie"), clip.append(f"tr{i}"), rep.append(0)
        stim.append(rng.uniform(0, 255, (T, H, W)).astype(np.float32))
    for c, s in clips.items():
        for r in range(4 if s == "natural_movie" else 3):
            tier.append("test"), stype.append(s), clip.append(c), rep.append(r), stim.append(frames[c])
    order = rng.permutation(len(stim))  # repeats interleaved, as in real sessions
    stim = np.stack(stim)[order]
    n = len(stim)
    running = rng.uniform(0, 2, (n, T)).astype(np.float32) if running_varies else \
        np.ones((n, T), np.float32)
    rate = np.asarray(truth.predict(jnp.asarray(stim), RID, {"running": jnp.asarray(running)}))
    truth.calls.clear()
    response = rng.poisson(rate).astype(np.float32) if noise else rate
    n_frames = np.full(n, T)
    n_frames[order == len(stim) - 1] = T - 2  # one test trial is shorter (padding)
    return make_recording(
        stimulus=stim, response=response, running=running, pupil=np.ones((n, T), np.float32),
        eye_position=np.zeros((n, T, 2), np.float32),
        units={"unit_id": np.arange(N), "area": np.array(["V1", "V1", "LM", "LM", "LM"]),
               "layer": np.full(N, "L2/3"), "cortical_x": np.zeros(N), "cortical_y": np.zeros(N),
               "cortical_z": np.zeros(N), "pt_root_id": np.arange(N) + 100},
        trials={"tier": np.array(tier)[order], "stimulus_type": np.array(stype)[order],
                "clip_id": np.array(clip)[order], "repeat": np.array(rep)[order],
                "n_frames": n_frames},
        frame_rate=RATE, animal_id=ANIMAL, session=SESSION, scan_idx=SCAN)


@pytest.fixture
def setup(tmp_path):
    truth = FakeModel(*_params(0))
    path = write_recording(_recording(truth), tmp_path / f"{RID}.h5")
    w, b = _params(0)
    w_twin = w + np.random.default_rng(9).normal(0, 0.6, w.shape) / np.sqrt(H * W) * 4
    return truth, FakeModel(w_twin, b), path


def test_stack_repeats_groups_trials_by_clip_and_masks_invalid_frames():
    values = np.arange(5 * 2 * 1, dtype=np.float32).reshape(5, 2, 1)
    valid = np.ones((5, 2), bool)
    valid[4, 1] = False
    out, clips = ev.stack_repeats(values, valid, ["a", "b", "a", "a", "b"])
    assert clips == ["a", "b"] and out.shape == (2, 3, 2, 1)
    assert out[0, :, 0, 0].tolist() == [0, 4, 6]
    assert out[1, :2, 0, 0].tolist() == [2, 8]
    assert np.isnan(out[1, 2]).all() and np.isnan(out[1, 1, 1, 0])


def test_evaluate_writes_per_unit_metrics_per_stimulus_type_and_summary(setup, tmp_path):
    truth, twin, path = setup
    out = tmp_path / "eval"
    summary = ev.evaluate(twin, [path], out, truth=truth, batch_size=4, progress=False)
    ds = ev.open_metrics(out / "metrics.h5")
    assert ds["stimulus_type"].values.tolist() == ["natural_movie", "gabor"]
    assert ds["cc_norm"].dims == ("unit", "stimulus_type") and ds.sizes["unit"] == N
    assert ds["pt_root_id"].values.tolist() == list(range(100, 105))
    assert set(ds["area"].values) == {"V1", "LM"} and ds["passes_quality"].dtype == bool
    assert ds["n_trials"].values.tolist() == [[12, 6]] and ds["n_clips"].values.tolist() == [[3, 2]]
    written = json.loads((out / "summary.json").read_text())
    nm = written["stimulus_types"]["natural_movie"]
    assert nm["n_units"] == N and set(nm["by_area"]) == {"LM", "V1"}
    assert nm["median"]["cc_abs"] == pytest.approx(np.median(ds["cc_abs"].values[:, 0]))
    assert written["provenance"]["inputs"] and (out / "truth_metrics.h5").is_file()
    # the noise-free truth predicts the repeat average better than the perturbed twin
    truth_ds = summary["truth_metrics"]
    assert (truth_ds["correlation_to_average"].values > ds["correlation_to_average"].values - 1e-9).mean() >= 0.6
    ratio = written["ratio_to_truth"]["natural_movie"]["correlation_to_average"]
    assert ratio == pytest.approx(nm["median"]["correlation_to_average"]
                                  / written["truth"]["stimulus_types"]["natural_movie"]["median"]
                                  ["correlation_to_average"])
    # the range of the predictions, relative to the truth's (1 = no compression)
    sd_ratio = written["ratio_to_truth"]["natural_movie"]["prediction_sd"]
    assert sd_ratio == pytest.approx(np.median(ds["prediction_sd"].values[:, 0])
                                     / np.median(truth_ds["prediction_sd"].values[:, 0]))
    assert sd_ratio > 0


def test_truth_scores_one_on_its_own_noise_free_responses(tmp_path):
    truth = FakeModel(*_params(0))
    # repeats identical only if behaviour is too: constant running, no spike noise
    path = write_recording(_recording(truth, noise=False, running_varies=False), tmp_path / f"{RID}.h5")
    ds = ev.evaluate(truth, [path], None, progress=False)["metrics"]
    for name in ("single_trial_correlation", "correlation_to_average", "oracle", "cc_max", "feve"):
        assert np.allclose(ds[name].values, 1.0, atol=1e-5), name


def test_every_prediction_call_has_one_batch_shape_and_the_trial_behaviour(setup):
    truth, twin, path = setup
    predicted = ev.predict_test_trials(twin, path, batch_size=5)
    assert {c[0] for c in twin.calls} == {(5, T, H, W)}  # 18 test trials padded to 4 x 5
    assert predicted["prediction"].shape == (18, T, N)
    assert "running" in twin.calls[0][1] and twin.calls[0][1]["running"].shape == (5, T)
    # the recorded running enters the prediction: without it the score changes
    no_beh = ev.predict_test_trials(twin, path, batch_size=5, use_behaviour=False)
    assert not np.allclose(no_beh["prediction"], predicted["prediction"])


def test_burn_in_and_padding_frames_are_not_scored(setup):
    truth, twin, path = setup
    good = ev.evaluate(twin, [path], progress=False)["metrics"]
    twin.burn_in_garbage = True
    bad = ev.evaluate(twin, [path], progress=False)["metrics"]
    assert np.allclose(good["single_trial_correlation"], bad["single_trial_correlation"])
    valid = ev.predict_test_trials(twin, path)["valid"]
    assert not valid[:, :BURN_IN].any() and (valid.sum(1) < T - BURN_IN).sum() == 1


def test_units_are_matched_by_unit_id_not_position(setup):
    truth, twin, path = setup
    reordered = FakeModel(twin.w, twin.b, unit_ids=np.arange(N)[::-1])
    a = ev.evaluate(twin, [path], progress=False)["metrics"]
    b = ev.evaluate(reordered, [path], progress=False)["metrics"]
    b = b.sortby("unit_id")
    assert np.allclose(a["cc_abs"].values, b["cc_abs"].values)
    assert a["area"].values.tolist() == b["area"].values.tolist()


def test_recording_the_model_does_not_know_is_an_input_error_and_writes_nothing(setup, tmp_path):
    truth, twin, path = setup
    other = FakeModel(twin.w, twin.b, rid="m9-1-1")
    with pytest.raises(InputError, match="recording_id"):
        ev.evaluate(other, [path], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    wrong_shape = FakeModel(twin.w, twin.b)
    wrong_shape.image_shape = (H + 1, W)
    with pytest.raises(InputError, match="stimulus"):
        ev.evaluate(wrong_shape, [path], None, progress=False)


def test_cli_evaluates_a_run_against_the_truth(setup, tmp_path, monkeypatch, capsys):
    import twin.model
    import twin.simulate
    from twin.cli import main

    truth, twin_model, path = setup
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setattr(twin.model, "load_model", lambda d: twin_model, raising=False)
    monkeypatch.setattr(twin.simulate, "load_truth_model", lambda d: truth, raising=False)
    sim = tmp_path / "sim"
    (sim / "recordings").mkdir(parents=True)
    path.rename(sim / "recordings" / path.name)
    code = main(["evaluate", str(run_dir), "--out", str(tmp_path / "e"), "--truth", str(sim)])
    assert code == 0
    assert "natural_movie" in capsys.readouterr().out
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["ratio_to_truth"]["gabor"]["correlation_to_average"] is not None
    assert main(["evaluate", str(tmp_path / "nothing"), "--out", str(tmp_path / "f")]) == 2

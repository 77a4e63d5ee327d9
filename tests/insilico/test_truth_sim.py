"""End to end on the tiny simulated mouse: the battery on the planted neurons recovers them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY = Path(__file__).resolve().parents[2] / "experiments" / "insilico" / "tiny.toml"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from twin.cli import main

    out = tmp_path_factory.mktemp("truth") / "sim"
    assert main(["simulate", "--preset", "tiny", "--seed", "3", "--quiet", str(out)]) == 0
    return out


@pytest.mark.slow
def test_battery_on_planted_neurons_recovers_orientation_rf_and_cell_class(sim, tmp_path, capsys):
    from twin.cli import main
    from twin.insilico.score import score_battery

    out = tmp_path / "ins"
    assert main(["insilico", str(TINY), "--truth", str(sim), "--out", str(out), "--quiet", "--score", str(sim),
                 "--set", 'experiments=["tuning", "rf", "profiles"]', "--set", "rf.grad_samples=1",
                 "--set", "similarity.n_clips=8", "--set", "similarity.n_frames=40"]) == 0
    printed = capsys.readouterr().out
    assert "quality bar" in printed and "ori_error_median_deg" in printed and (out / "score.json").is_file()
    s = score_battery(out, sim, truth_battery_dir=out)
    assert s["ori_error_median_deg"] < 15
    assert s["simple_complex_auc"] >= 0.85
    assert s["rf_within_radius"] >= 0.8
    assert s["noise_ori_error_median_deg"] < 15 and s["noise_gosi_spearman"] > 0.99   # same battery on both sides
    # diagnostics: the same battery on both sides gives the same numbers on both sides
    gp = s["gosi_vs_planted"]
    assert {"rf_sigma_deg", "sf_cpd", "phase_invariance", "norm_sigma"} <= set(gp)
    assert all(d["model"] == d["truth"] for d in gp.values())
    assert s["first_pc_share"]["model"] == s["first_pc_share"]["truth"] and 0 < s["first_pc_share"]["model"] < 1
    assert s["signal_corr_mean"]["model"] == s["signal_corr_mean"]["truth"]
    assert "gOSI vs planted" in printed and "first_pc_share" in printed
    # the noise score reads the noise gOSI: shuffling it on the truth side breaks only that score
    from twin.insilico.common import load_dataset

    shuffled = load_dataset(out / "tuning.h5")
    rng = np.random.default_rng(0)
    shuffled["noise_gosi"] = ("unit", rng.permutation(shuffled["noise_gosi"].values))
    (tmp_path / "shuffled").mkdir()
    shuffled.to_netcdf(tmp_path / "shuffled" / "tuning.h5", engine="h5netcdf")
    s_shuf = score_battery(out, sim, truth_battery_dir=tmp_path / "shuffled")
    assert s_shuf["gosi_spearman"] > 0.99 and abs(s_shuf["noise_gosi_spearman"]) < 0.5
    # a "model" whose gOSI is the planted RF size follows it perfectly; the truth side is unchanged
    import pandas as pd

    units = pd.read_parquet(sim / "truth" / "units.parquet")
    units["recording_id"] = units["recording_id"].astype(str)
    fake = load_dataset(out / "tuning.h5")
    key = pd.DataFrame({"recording_id": fake["recording_id"].values.astype(str), "unit_id": fake["unit_id"].values})
    fake["gosi"] = ("unit", key.merge(units, on=["recording_id", "unit_id"], how="left")["rf_sigma_deg"].values)
    (tmp_path / "fake").mkdir()
    fake.to_netcdf(tmp_path / "fake" / "tuning.h5", engine="h5netcdf")
    s_fake = score_battery(tmp_path / "fake", sim, truth_battery_dir=out)
    assert s_fake["gosi_vs_planted"]["rf_sigma_deg"]["model"] == pytest.approx(1.0)
    assert s_fake["gosi_vs_planted"]["rf_sigma_deg"]["truth"] == gp["rf_sigma_deg"]["truth"]
    # other natural movies than the simulator's own (short: 4 clips) battery: pairwise signal
    # correlations still agree clearly beyond chance
    s_sim = score_battery(out, sim)
    assert s_sim["signal_corr_r"] >= 0.5


@pytest.mark.slow
@pytest.mark.parametrize("response", ["rate", "observed"])
def test_planted_neurons_fast_path_answers_as_the_truth_model(sim, response):
    from twin.insilico.common import unit_table
    from twin.insilico.engine import own_responses, plans, predict_all
    from twin.simulate import load_truth_model

    m = load_truth_model(sim, response)
    units = unit_table(m, m.recording_ids())
    h, w = m.image_shape
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, m.burn_in + 3, h, w)).astype(np.float32)
    ref = np.concatenate([np.asarray(m.predict(x, r)) for r in m.recording_ids()], -1)
    np.testing.assert_allclose(predict_all(m, units, x), ref, rtol=1e-4, atol=1e-6)
    fam = plans(m, units, "unit", chunk=1)           # one neuron per group; bipartite ones apart
    assert sum((p.rows >= 0).sum() for p in fam) == len(units) and all(p.rows.shape[1] == 1 for p in fam)
    imgs = rng.uniform(0, 255, (len(units), 1, h, w)).astype(np.float32)
    got = own_responses(m, units, imgs, n_frames=m.burn_in + 2, batch=16)[:, 0]
    for row in range(0, len(units), 7):
        clip = np.broadcast_to(imgs[row][:, None], (1, m.burn_in + 2, h, w))
        r = np.asarray(m.predict(clip, units["recording_id"][row]))[0, m.burn_in:, units["index"][row]].mean()
        assert np.isclose(got[row], r, rtol=1e-4, atol=1e-6)


def test_observed_truth_is_the_expected_observation_of_the_planted_rate(sim):
    from twin.errors import InputError
    from twin.simulate import load_truth_model
    from twin.simulate.config import ObservationConfig
    from twin.simulate.observation import expected_observation
    from twin.simulate.truth import read_params

    rate, obs = load_truth_model(sim), load_truth_model(sim, "observed")
    rid = rate.recording_ids()[0]
    h, w = rate.image_shape
    x = np.random.default_rng(1).uniform(0, 255, (2, 12, h, w)).astype(np.float32)
    r = np.asarray(rate.predict(x, rid))
    want = expected_observation(r, rate.units(rid)["noise_sd"].to_numpy(), rate.frame_rate,
                                ObservationConfig(**read_params(sim)["config"]["observation"]))
    np.testing.assert_allclose(np.asarray(obs.predict(x, rid)), want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(want, r, rtol=0.05)
    with pytest.raises(InputError, match="truth response"):
        load_truth_model(sim, "spikes")


@pytest.mark.slow
def test_truth_batteries_observed_and_rate_and_refuse_to_mix_models(sim, tmp_path):
    import json

    from twin.errors import InputError
    from twin.insilico.battery import run_battery, run_truth_batteries
    from twin.insilico.common import load_dataset
    from twin.insilico.config import load_insilico_config
    from twin.insilico.score import score_battery
    from twin.simulate import load_truth_model

    cfg = load_insilico_config(TINY, ['experiments=["tuning"]'])
    truth, rate = run_truth_batteries(cfg, sim, tmp_path, "observed", progress=False)
    assert (truth, rate) == (tmp_path / "truth", tmp_path / "truth_rate")
    assert json.loads((truth / "config.json").read_text())["model"] == "planted neurons: observed"
    assert json.loads((rate / "config.json").read_text())["model"] == "planted neurons: rate"
    g_obs, g_rate = (load_dataset(d / "tuning.h5")["gosi"].values for d in (truth, rate))
    # the same neurons, answering through the imaging pipeline's floor: less selective, same ranking mostly
    assert np.median(g_obs) < np.median(g_rate) and np.corrcoef(g_obs, g_rate)[0, 1] > 0.5
    s = score_battery(rate, sim, truth, rate_battery_dir=rate)
    assert s["truth_model"] == "planted neurons: observed" and s["gosi_spearman_rate"] == pytest.approx(1.0)
    assert s["gosi_spearman"] < 1.0
    # a folder written for one model is never completed with another's
    with pytest.raises(InputError, match="planted neurons: observed"):
        run_battery(cfg, load_truth_model(sim, "rate"), truth, progress=False, model_tag="planted neurons: rate")
    assert run_truth_batteries(cfg, sim, tmp_path / "r", "rate", progress=False) == (tmp_path / "r" / "truth", None)

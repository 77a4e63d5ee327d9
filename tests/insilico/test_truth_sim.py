"""End to end on the tiny simulated mouse: the battery on the planted neurons recovers them."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = Path(__file__).resolve().parents[2] / "experiments" / "insilico" / "tiny.toml"


@pytest.mark.slow
def test_battery_on_planted_neurons_recovers_orientation_rf_and_cell_class(tmp_path):
    from twin.cli import main
    from twin.insilico.score import score_battery

    sim = tmp_path / "sim"
    assert main(["simulate", "--preset", "tiny", "--seed", "3", "--quiet", str(sim)]) == 0
    out = tmp_path / "ins"
    assert main(["insilico", str(TINY), "--truth", str(sim), "--out", str(out), "--quiet",
                 "--set", 'experiments=["tuning", "rf", "profiles"]', "--set", "rf.grad_samples=1",
                 "--set", "similarity.n_clips=8", "--set", "similarity.n_frames=40"]) == 0
    s = score_battery(out, sim, truth_battery_dir=out)
    assert s["ori_error_median_deg"] < 15
    assert s["simple_complex_auc"] >= 0.85
    assert s["rf_within_radius"] >= 0.8
    # other natural movies than the simulator's own (short: 4 clips) battery: pairwise signal
    # correlations still agree clearly beyond chance
    s_sim = score_battery(out, sim)
    assert s_sim["signal_corr_r"] >= 0.5

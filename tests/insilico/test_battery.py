"""The battery runner, profiles, CLI and scoring."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from twin.config import load_config

TINY = Path(__file__).resolve().parents[2] / "experiments" / "insilico" / "tiny.toml"


def _small_cfg(**kw):
    from twin.insilico.config import (BipartiteConfig, InsilicoConfig, MEIConfig, RFConfig, SimilarityConfig,
                                      TuningConfig, VEIConfig)

    return InsilicoConfig(seed=1, progress=False,
                          tuning=TuningConfig(n_directions=8, n_frames=10, sf_list=(0.04,), tf_list=(2.0,),
                                              n_phases=1, noise_repeats=1, n_permutations=10),
                          rf=RFConfig(n_clips=2, n_frames=20, grad_samples=1),
                          mei=MEIConfig(n_steps=10, n_frames=5, n_random=2),
                          vei=VEIConfig(k=2, n_steps=10), bipartite=BipartiteConfig(n_sizes=3, n_textures=1,
                                                                                    n_sweep_directions=2),
                          similarity=SimilarityConfig(n_clips=2, n_frames=10, batch=2), **kw)


@pytest.fixture(scope="module")
def battery(fake, tmp_path_factory):
    from twin.insilico.battery import run_battery

    out = tmp_path_factory.mktemp("ins") / "b"
    return run_battery(_small_cfg(), fake, out)


def test_battery_writes_every_experiment_and_a_profile(battery):
    for name in ("tuning", "rf", "mei", "vei", "bipartite", "profiles"):
        assert (battery / f"{name}.h5").is_file()
    assert (battery / "summary.json").is_file() and (battery / "provenance.json").is_file()


def test_profile_round_trip_and_pair_lookup_by_root_id(battery, fake):
    from twin.similarity import available_kinds, index_by_root_id, load_profiles, pair_similarity

    p = load_profiles(battery / "profiles.h5")
    assert set(available_kinds(p)) >= {"signal_correlation", "rf_distance", "ori_difference", "mei_similarity",
                                       "vei_similarity"}
    for v in ("gosi", "gdsi", "pref_dir", "phase_invariance", "bipartite_index", "vei_diversity"):
        assert v in p
    roots = fake.units("fake-1-1")["pt_root_id"].to_numpy()
    i = index_by_root_id(p, roots[[0, 3]])
    assert list(i) == [0, 3]
    s = pair_similarity(p, np.array([0, 0]), np.array([0, 3]))
    assert np.isclose(s["signal_correlation"][0], 1.0) and np.isclose(s["rf_distance"][0], 0.0)
    assert np.isclose(s["rf_distance"][1], np.hypot(*(p["rf_center"].values[0] - p["rf_center"].values[3])))


def test_rerun_skips_finished_experiments(battery, fake):
    from twin.insilico.battery import run_battery

    before = {f.name: f.stat().st_mtime_ns for f in battery.glob("*.h5")}
    (battery / "vei.h5").unlink()
    run_battery(_small_cfg(), fake, battery)
    after = {f.name: f.stat().st_mtime_ns for f in battery.glob("*.h5")}
    assert after["tuning.h5"] == before["tuning.h5"] and after["mei.h5"] == before["mei.h5"]
    assert (battery / "vei.h5").is_file()


def test_same_seed_gives_identical_profiles(battery, fake, tmp_path):
    from twin.insilico.battery import run_battery
    from twin.insilico.common import load_dataset

    cfg = dataclasses.replace(_small_cfg(), experiments=("tuning", "profiles"))
    out = run_battery(cfg, fake, tmp_path / "again")
    a, b = load_dataset(battery / "tuning.h5"), load_dataset(out / "tuning.h5")
    np.testing.assert_array_equal(a["gosi_p"].values, b["gosi_p"].values)


def test_tiny_and_demo_configs_validate():
    from twin.insilico.config import InsilicoConfig, load_insilico_config

    for name in ("tiny", "demo"):
        cfg = load_insilico_config(TINY.with_name(f"{name}.toml"))
        assert isinstance(cfg, InsilicoConfig)
    assert load_config(TINY, InsilicoConfig, ["mei.n_steps=7"]).mei.n_steps == 7


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    from twin.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('experiments = ["tuning", "nonsense"]\n')
    assert main(["insilico", str(bad), "--truth", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "experiments" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_resuming_with_a_different_config_is_refused(battery, fake):
    from twin.errors import InputError
    from twin.insilico.battery import run_battery

    cfg = dataclasses.replace(_small_cfg(), seed=99)
    with pytest.raises(InputError, match="different config"):
        run_battery(cfg, fake, battery)


def test_evaluate_metrics_are_aligned_by_unit_into_the_profile(fake_units):
    import xarray as xr

    from twin.insilico.profiles import metric_columns

    n = 3   # evaluated units 3, 1, 2 of the scan (other order, one missing), two stimulus types
    m = xr.Dataset({"cc_norm": (("unit", "stimulus_type"), np.array([[0.3, 0.0], [0.1, 0.0], [0.2, 0.0]]))},
                   coords={"recording_id": ("unit", np.array(["fake-1-1"] * n, object)),
                           "unit_id": ("unit", np.array([3, 1, 2])),
                           "stimulus_type": ["natural_movie", "drifting_grating"]})
    cols = metric_columns(fake_units.iloc[:4], m)
    np.testing.assert_allclose(cols["cc_norm"][:3], [0.1, 0.2, 0.3])
    assert np.isnan(cols["cc_norm"][3])

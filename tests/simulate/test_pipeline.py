"""Determinism, the CLI's errors, the connectome hand-off, and the importer round trip."""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from twin.cli import main
from twin.simulate import preset, simulate

SMALL = ["population.neurons_per_scan=6", "population.n_scans=1", "trials.n_train=2", "trials.n_test_clips=1",
         "trials.n_repeats=2", "profile_clips=2", "calibration_clips=1", "stimulus.clip_s=1.0"]


def _files(d):
    return sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file())


@pytest.mark.slow
def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path, tiny_sim):
    again = tmp_path / "again"
    assert main(["simulate", "--preset", "tiny", "--seed", "3", "--quiet", str(again)]) == 0
    assert _files(again) == _files(tiny_sim)
    for f in (again / "recordings").glob("*.h5"):
        with xr.open_dataset(f) as a, xr.open_dataset(tiny_sim / "recordings" / f.name) as b:
            a_, b_ = a.load(), b.load()
            a_.attrs.pop("provenance"), b_.attrs.pop("provenance")
            xr.testing.assert_identical(a_, b_)
    for name in ("truth/units.parquet",) + tuple(str(p) for p in _files(again) if p.suffix == ".parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(again / name), pd.read_parquet(tiny_sim / name))
    for f in ["truth/profiles.h5"] + [f"truth/test_responses/{p.name}" for p in (again / "recordings").glob("*.h5")]:
        with xr.open_dataset(again / f) as a, xr.open_dataset(tiny_sim / f) as b:
            xr.testing.assert_identical(a.load(), b.load())
    other = tmp_path / "other"
    simulate(preset("tiny", seed=4), other, progress=False)
    with xr.open_dataset(next((other / "recordings").glob("*.h5"))) as a, \
            xr.open_dataset(next((tiny_sim / "recordings").glob("*.h5"))) as b:
        assert not np.array_equal(a.response.values, b.response.values)


def test_cli_reports_an_unknown_config_key_in_one_line_and_exits_2(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('preset = "tiny"\n[population]\nneurons_per_scann = 3\n')
    assert main(["simulate", "--config", str(cfg), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "population.neurons_per_scann" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_rejects_bad_values_and_non_empty_output_folders(tmp_path, capsys):
    assert main(["simulate", "--preset", "tiny", "--set", "stimulus.frame_rate=-1", str(tmp_path / "o")]) == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    assert main(["simulate", "--preset", "tiny", str(tmp_path / "full")]) == 2
    assert (tmp_path / "full" / "x").read_text() == "keep"


def test_toml_presets_match_the_code_presets():
    from pathlib import Path

    from twin.simulate.config import load_sim_config

    root = Path(__file__).resolve().parents[2] / "experiments" / "simulate"
    for name in ("tiny", "default", "large"):
        assert load_sim_config(root / f"{name}.toml") == preset(name)


def test_connectome_generator_gets_every_neuron_and_the_true_similarity(tmp_path, monkeypatch):
    calls = {}

    @dataclasses.dataclass(frozen=True)
    class ConnectomeConfig:  # the fields the tiny preset sets
        base_density: float = 1.0
        proofread_fraction: float = 0.3
        coregistered_fraction: float = 0.8
        lateral_scale: float = 1.0
        long_range_probability: float = 0.3
        long_range_branches: int = 4

    def simulate_connectome(neurons, similarity, config, seed):
        calls.update(neurons=neurons, similarity=similarity, config=config, seed=seed)
        return {"synapses_pni_2": pd.DataFrame({"id": [1], "pre_pt_root_id": neurons.pt_root_id[:1].to_numpy(),
                                                "post_pt_root_id": neurons.pt_root_id[1:2].to_numpy(),
                                                "size": [100]}),
                "proofreading_status_and_strategy": pd.DataFrame(
                    {"pt_root_id": neurons.pt_root_id[:2].to_numpy(), "status_axon": ["extended", "non"]})}

    fake = types.ModuleType("twin.simulate.connectome")
    fake.ConnectomeConfig = ConnectomeConfig
    fake.simulate_connectome = simulate_connectome
    monkeypatch.setitem(sys.modules, "twin.simulate.connectome", fake)
    out = simulate(preset("tiny", SMALL + ["connectome.base_density=2.5"]), tmp_path / "sim", progress=False)
    n = calls["neurons"]
    assert len(n) == 6 and n.pt_root_id.is_unique and calls["similarity"].shape == (6, 6)
    need = {"pt_root_id", "nucleus_id", "recording_id", "session", "scan_idx", "unit_id", "area", "layer",
            "cortical_x", "cortical_y", "cortical_z", "excitatory", "cell_class", "phase_invariance"}
    assert need <= set(n.columns)
    from twin.simulate.config import PRESETS
    assert calls["config"] == ConnectomeConfig(**{**PRESETS["tiny"]["connectome"], "base_density": 2.5})
    assert np.allclose(np.diag(calls["similarity"]), 1)
    assert pd.read_parquet(out / "connectome" / "synapses_pni_2.parquet").shape[0] == 1
    units = pd.read_parquet(out / "truth" / "units.parquet")
    assert units.has_proofread_axon.tolist() == [True] + [False] * 5


def test_sensorium_export_imports_back_like_user_data(tmp_path):
    sens = pytest.importorskip("twin.data.sensorium")
    if not hasattr(sens, "write_sensorium_folder"):
        pytest.skip("the Sensorium exporter is not there yet")
    out = simulate(preset("tiny", SMALL + ["sensorium=true"]), tmp_path / "sim", progress=False)
    folder = next((out / "sensorium").iterdir())
    reader = getattr(sens, "read_sensorium_folder", None) or getattr(sens, "import_sensorium", None)
    if reader is None:
        pytest.skip("no Sensorium reader to round-trip with")
    back = reader(folder)
    ds = back if isinstance(back, xr.Dataset) else back[0]
    with xr.open_dataset(next((out / "recordings").glob("*.h5"))) as orig:
        train = orig.tier.values.astype(str) == "train"
        assert ds.sizes["unit"] == orig.sizes["unit"]
        assert (ds.tier.values.astype(str) == "train").sum() == train.sum()


@pytest.mark.slow
def test_an_interrupted_simulation_resumes_from_finished_scans_with_identical_numbers(tmp_path, monkeypatch):
    import twin.simulate.mouse as sim

    cfg = preset("tiny", SMALL + ["population.n_scans=2"])
    real = sim._simulate_scan
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sim, "_simulate_scan", flaky)
    with pytest.raises(KeyboardInterrupt):
        sim.simulate(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists() and (tmp_path / ".run.partial").is_dir()
    calls.clear()
    monkeypatch.setattr(sim, "_simulate_scan", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    sim.simulate(cfg, tmp_path / "run", progress=False)
    assert len(calls) == 1  # only the unfinished scan ran again
    assert not (tmp_path / ".run.partial").exists()
    monkeypatch.setattr(sim, "_simulate_scan", real)
    sim.simulate(cfg, tmp_path / "fresh", progress=False)
    for f in (tmp_path / "fresh" / "recordings").glob("*.h5"):
        with xr.open_dataset(f) as a, xr.open_dataset(tmp_path / "run" / "recordings" / f.name) as b:
            np.testing.assert_array_equal(a.response.values, b.response.values)

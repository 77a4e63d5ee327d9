"""Pipeline files resolve into stage configs whose hashes change exactly where a setting does."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.errors import InputError
from twin.pipeline import run_pipeline
from twin.pipeline.config import load_pipeline
from twin.pipeline.stages import build_stages

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, train_extra: str = "", pipe_extra: str = "") -> Path:
    (tmp_path / "train.toml").write_text(f"[train]\nsteps = 3\n{train_extra}")
    p = tmp_path / "pipe.toml"
    p.write_text(f'seed = 3\nstages = ["train", "evaluate", "report"]\n{pipe_extra}\n'
                 '[data]\nsource = "simulate"\npreset = "tiny"\n[train]\nconfig = "train.toml"\n')
    return p


def _keys(tmp_path, p):
    res = run_pipeline(p, tmp_path / "out", dry_run=True, progress=False)
    return {k: v["key"] for k, v in res.items()}


def test_name_defaults_to_the_file_stem_and_seed_reaches_every_stage(tmp_path):
    cfg, base = load_pipeline(_write(tmp_path))
    assert cfg.name == "pipe" and base == tmp_path.resolve()
    stages = {s.name: s for s in build_stages(cfg, base)}
    assert list(stages) == ["simulate", "train", "evaluate", "report"]
    assert stages["simulate"].section["seed"] == 3 and stages["train"].section["seed"] == 3
    assert "recordings" not in stages["train"].section.get("data", {})  # filled in at run time


def test_editing_the_train_config_file_changes_train_and_downstream_keys_only(tmp_path):
    before = _keys(tmp_path, _write(tmp_path))
    after = _keys(tmp_path, _write(tmp_path, "lr = 0.5\n"))
    assert before["simulate"] == after["simulate"]
    assert all(before[k] != after[k] for k in ("train", "evaluate", "report"))


def test_a_simulator_override_changes_every_key(tmp_path):
    before = _keys(tmp_path, _write(tmp_path))
    p = _write(tmp_path)
    p.write_text(p.read_text().replace('preset = "tiny"', 'preset = "tiny"\nset = ["trials.n_train=4"]'))
    after = _keys(tmp_path, p)
    assert all(before[k] != after[k] for k in before)


def test_unknown_keys_and_stages_are_one_line_errors(tmp_path):
    p = _write(tmp_path, pipe_extra="colour = 1")
    with pytest.raises(InputError, match="colour"):
        load_pipeline(p)
    p = _write(tmp_path)
    p.write_text(p.read_text().replace('"report"]', '"repot"]'))
    with pytest.raises(InputError, match="stages"):
        load_pipeline(p)
    with pytest.raises(InputError, match="insilico.truth_response"):
        load_pipeline(_write(tmp_path), ['insilico.truth_response="spikes"'])
    p = _write(tmp_path)
    p.write_text(p.read_text().replace('config = "train.toml"', 'config = "nope.toml"'))
    with pytest.raises(InputError, match="train.config"):
        build_stages(*load_pipeline(p))


@pytest.mark.parametrize("name", ["demo", "tiny"])
def test_shipped_pipelines_resolve(name):
    cfg, base = load_pipeline(REPO / "experiments" / "pipelines" / f"{name}.toml")
    for c in (cfg.train.config, cfg.insilico.config, cfg.analyze.config):
        assert (base / c).is_file(), c
    names = [s.name for s in build_stages(cfg, base)]
    assert names == ["simulate", "train", "evaluate", "insilico", "analyze", "report"]


def test_run_cli_help_describes_every_option(capsys):
    from twin.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for opt in ("--out", "--set", "--force", "--rerun", "--until", "--dry-run", "--quiet"):
        assert opt in out

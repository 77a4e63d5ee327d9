"""`twin train` command line: registration, user errors as one line with exit status 2."""

from __future__ import annotations

import pytest

from twin.cli import main


def test_train_subcommand_is_registered_with_its_options(capsys):
    try:
        main(["train", "--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for opt in ("--out", "--from", "--freeze", "--seeds", "--set", "--force"):
        assert opt in out


def test_missing_config_file_is_a_one_line_error_with_exit_2(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.toml" in err[0]
    assert not (tmp_path / "run").exists()


def test_unknown_config_key_and_missing_recordings_are_input_errors(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nstepz = 3\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "train.stepz" in capsys.readouterr().err
    cfg.write_text(f'[data]\nrecordings = ["{tmp_path / "none"}"]\n')
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "data.recordings" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bad_seeds_and_freeze_values_are_input_errors(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("seed = 0\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "r"), "--seeds", "a,b"]) == 2
    assert main(["train", str(cfg), "--out", str(tmp_path / "r"), "--freeze", "everything"]) == 2


@pytest.mark.parametrize("toml, key, word", [
    ("[model.readout]\npooling = 1\n", "model.readout.pooling", "points"),
    ("[model.readout]\nmask = 4\n", "model.readout.mask", "odd"),
    ("[model.readout]\nsurround = 0.5\n", "model.readout.surround", "> 1"),
    ("[model.readout]\nsurround = 2.0\nmask = 3\n", "model.readout.surround", "mask"),
    ("[model.core]\ngru_hidden_kernel = 2\n", "model.core.gru_hidden_kernel", "odd"),
])
def test_a_bad_model_size_is_a_one_line_error_naming_the_key(tmp_path, capsys, toml, key, word):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0] and word in err[0] and "c.toml" in err[0]
    assert not (tmp_path / "run").exists()

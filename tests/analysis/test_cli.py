"""`twin analyze`: one-line errors with exit 2, refusal to overwrite, the summary table."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.cli import main

from .conftest import small_edges

TINY = str(Path(__file__).resolve().parents[2] / "experiments/analyze/tiny.toml")


def _one_line_error(capsys, argv, match):
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and "error:" in lines[0], err
    assert match in lines[0]


@pytest.mark.parametrize("extra, match", [
    ([], "connectome"),                                        # tiny.toml names no connectome
    (["--set", "connectome=/no/such/folder"], "no such file"),
    (["--set", "n_bins=1"], "n_bins"),
    (["--set", "bogus=1"], "bogus"),
    (["--set", "use_r=sometimes"], "use_r"),
])
def test_bad_input_is_one_error_line_and_exit_2(capsys, tmp_path, extra, match):
    _one_line_error(capsys, ["analyze", TINY, "--out", str(tmp_path / "o"), *extra], match)


def test_missing_config_is_one_error_line(capsys, tmp_path):
    _one_line_error(capsys, ["analyze", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")], "no such file")


def test_refuses_a_non_empty_out_dir_without_force(capsys, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    _one_line_error(capsys, ["analyze", TINY, "--out", str(tmp_path), "--set", f"connectome={tmp_path}"], "--force")
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_runs_and_prints_a_summary_table(capsys, tmp_path, monkeypatch):
    import twin.analysis.run as run

    monkeypatch.setattr(run, "load_edges", lambda cfg, progress=False: small_edges(2))
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "old.txt").write_text("x")
    code = main(["analyze", TINY, "--out", str(tmp_path / "o"), "--force", "--quiet",
                 "--set", f"connectome={tmp_path}"])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "o" / "results.json").is_file()
    assert "synaptic_scale/signal_correlation/V1->V1" in out and "estimate" in out

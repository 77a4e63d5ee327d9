"""The data commands: `twin import sensorium|nwb`, `twin info [--json]`, and their bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from twin.cli import main
from twin.data.recording import write_recording

sys.path.insert(0, str(Path(__file__).parent))
from data.conftest import tiny_recording  # noqa: E402
from data.nwb_fixture import write_nwb  # noqa: E402
from data.sensorium_fixture import make_2023  # noqa: E402


def _run(capsys, argv):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_clean_error_line(code, err):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "error:" in lines[0], err


def test_import_sensorium_then_info_json_reports_the_summary(tmp_path, capsys):
    out = tmp_path / "r.h5"
    code, stdout, _ = _run(capsys, ["import", "sensorium", str(make_2023(tmp_path)), str(out)])
    assert code == 0 and out.is_file() and str(out) in stdout
    code, stdout, _ = _run(capsys, ["info", str(out), "--json"])
    s = json.loads(stdout)
    assert code == 0
    assert s["format_version"] == "1.0" and s["recording_id"] == "29156-11-10"
    assert (s["n_units"], s["n_trials"], s["n_time"], s["frame_rate"]) == (5, 12, 8, 30.0)
    assert s["tiers"] == {"test": 6, "train": 5, "validation": 1}
    assert s["stimulus_types"] == {"natural_movie": 12} and s["sessions"] == [11] and s["areas"] == {"V1": 5}


def test_info_prints_a_human_summary(tmp_path, capsys):
    path = write_recording(tiny_recording(), tmp_path / "r.h5")
    code, stdout, _ = _run(capsys, ["info", str(path)])
    assert code == 0
    assert "m1-2-3" in stdout and "train 2" in stdout and "10 Hz" in stdout and "natural_movie 6" in stdout


def test_import_nwb_with_options(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = write_nwb(tmp_path / "s.nwb")
        code, _, err = _run(capsys, ["import", "nwb", str(src), str(tmp_path / "r.h5"), "--frame-rate", "10",
                                     "--animal-id", "m5", "--scan-idx", "7"])
    assert code == 0, err
    _, stdout, _ = _run(capsys, ["info", str(tmp_path / "r.h5"), "--json"])
    s = json.loads(stdout)
    assert s["recording_id"] == "m5-4-7" and s["frame_rate"] == 10.0


def _sensorium_case(kind, tmp_path):
    src = make_2023(tmp_path / "in")
    if kind == "missing folder":
        shutil.rmtree(src)
    elif kind == "wrong shape":
        np.save(src / "data" / "responses" / "1.npy", np.zeros((5, 3), np.float32))
    elif kind == "NaN responses":
        np.save(src / "data" / "responses" / "1.npy", np.full((5, 8), np.nan, np.float32))
    elif kind == "unit ids mismatched":
        np.save(src / "meta" / "neurons" / "layer.npy", np.array(["L4"] * 9))
    elif kind == "empty tiers":
        np.save(src / "meta" / "trials" / "tiers.npy", np.array(["oracle"] * 12))
    return ["import", "sensorium", str(src)]


@pytest.mark.parametrize("kind", ["missing folder", "wrong shape", "NaN responses", "unit ids mismatched",
                                  "empty tiers"])
def test_bad_sensorium_input_gives_one_line_exit_2_and_no_output(tmp_path, capsys, kind):
    out = tmp_path / "out" / "r.h5"
    code, _, err = _run(capsys, _sensorium_case(kind, tmp_path) + [str(out)])
    _one_clean_error_line(code, err)
    assert code == 2 and not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))


def test_nwb_without_responses_gives_one_line_and_no_output(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = write_nwb(tmp_path / "s.nwb", with_responses=False)
        code, _, err = _run(capsys, ["import", "nwb", str(src), str(tmp_path / "r.h5")])
    _one_clean_error_line(code, err)
    assert "RoiResponseSeries" in err and not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("kind", ["truncated", "not hdf5", "missing"])
def test_info_on_a_bad_file_gives_one_line(tmp_path, capsys, kind):
    path = tmp_path / "x.h5"
    if kind == "truncated":
        good = write_recording(tiny_recording(), tmp_path / "good.h5")
        path.write_bytes(good.read_bytes()[:2000])
    elif kind == "not hdf5":
        path.write_text("hello")
    code, _, err = _run(capsys, ["info", str(path), "--json"])
    _one_clean_error_line(code, err)


@pytest.mark.slow
def test_console_script_reports_bad_input_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("twin")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "twin.cli"]
    (tmp_path / "x.h5").write_text("hello")
    res = subprocess.run(cmd + ["info", str(tmp_path / "x.h5")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1

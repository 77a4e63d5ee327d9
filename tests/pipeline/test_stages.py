"""Real stages that need no model: bring-your-own Recordings -> report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from twin.data.recording import make_recording, write_recording
from twin.errors import InputError
from twin.pipeline import run_pipeline


def _recording(path: Path, n: int = 5, nt: int = 4, t: int = 6) -> Path:
    rng = np.random.default_rng(0)
    ds = make_recording(
        stimulus=rng.integers(0, 255, (nt, t, 4, 6)).astype(np.uint8), response=rng.random((nt, t, n), np.float32),
        running=np.zeros((nt, t), np.float32), pupil=np.ones((nt, t), np.float32),
        eye_position=np.zeros((nt, t, 2), np.float32),
        units={"unit_id": np.arange(n), "area": np.array(["V1"] * n, object), "layer": np.array(["L4"] * n, object),
               "cortical_x": np.zeros(n), "cortical_y": np.zeros(n), "cortical_z": np.zeros(n)},
        trials={"tier": np.array(["train", "train", "validation", "test"], object),
                "stimulus_type": np.array(["natural_movie"] * nt, object),
                "clip_id": np.array([f"c{i}" for i in range(nt)], object), "repeat": np.zeros(nt, np.int64)},
        frame_rate=10.0, animal_id="7", session=1, scan_idx=2)
    write_recording(ds, path)
    return path


def _pipeline(tmp_path: Path, paths: list[str]) -> Path:
    p = tmp_path / "own.toml"
    p.write_text('name = "own"\nstages = ["report"]\n[data]\nsource = "recordings"\n'
                 f"paths = {json.dumps(paths)}\n[report]\nbootstrap = 10\n")
    return p


def test_own_recordings_flow_into_the_report_and_a_changed_file_reruns(tmp_path):
    rec = _recording(tmp_path / "data" / "scan.h5")
    p = _pipeline(tmp_path, ["data"])
    res = run_pipeline(p, tmp_path / "out", progress=False)
    assert [r["action"] for r in res.values()] == ["ran", "ran"]
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    assert report["sections"]["data"]["n_units"] == 5
    assert report["sections"]["data"]["scans"][0]["recording_id"] == "7-1-2"
    assert report["sections"]["quality"]["status"] == "missing"
    assert run_pipeline(p, tmp_path / "out", progress=False)["report"]["action"] == "cached"
    _recording(rec, n=6)  # the user's data changed: everything re-runs
    res = run_pipeline(p, tmp_path / "out", progress=False)
    assert [r["action"] for r in res.values()] == ["ran", "ran"]


def test_missing_data_paths_are_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="data.paths"):
        run_pipeline(_pipeline(tmp_path, ["nowhere"]), tmp_path / "out", progress=False)

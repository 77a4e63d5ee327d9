"""The whole pipeline on the tiny synthetic mouse, with the real stages."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "experiments" / "pipelines" / "tiny.toml"


@pytest.mark.slow
def test_tiny_pipeline_runs_end_to_end_then_is_fully_cached(tmp_path, capsys):
    from twin.cli import main

    out = tmp_path / "tiny"
    assert main(["run", str(TINY), "--out", str(out), "--quiet"]) == 0
    for stage in ("simulate", "train", "evaluate", "insilico", "analyze", "report"):
        assert (out / "manifests" / f"{stage}.json").is_file(), stage
    html = (out / "report" / "report.html").read_text()
    HTMLParser().feed(html)
    data = json.loads((out / "report" / "report.json").read_text())
    for sec in ("data", "training", "quality", "recovery", "slopes", "verdicts", "provenance"):
        assert data["sections"][sec]["status"] == "ok", (sec, data["sections"][sec].get("note"))
    # the planted neurons' batteries: observed activity (the yardstick) and tuning on their rates
    assert json.loads((out / "insilico" / "truth" / "config.json").read_text())["model"] == "planted neurons: observed"
    assert (out / "insilico" / "truth_rate" / "tuning.h5").is_file()
    rec = data["sections"]["recovery"]
    assert rec["gosi_yardstick"] == "planted neurons: observed" and -1 <= rec["gosi_spearman_rate"] <= 1
    capsys.readouterr()
    assert main(["run", str(TINY), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count(": cached") == 6

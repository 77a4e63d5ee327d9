"""experiments/analyze/calibration.py --quick: runs, writes JSON, and its numbers are sane."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "experiments/analyze/calibration.py"


def test_quick_calibration_reports_coverage_null_rate_and_power(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("calibration", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--scenarios", "poisson_ri", "--out", str(tmp_path / "c.json")]) == 0
    res = json.loads((tmp_path / "c.json").read_text())["scenarios"]["poisson_ri"]
    assert 0.75 <= res["overall_cluster"]["coverage"] <= 1.0      # 10 seeds: loose bounds
    assert res["overall_cluster"]["null_rate"] <= 0.2
    assert res["projections"]["V1->V1"]["cluster"]["power_signal_correlation"] >= 0.8
    assert "coverage" in capsys.readouterr().out

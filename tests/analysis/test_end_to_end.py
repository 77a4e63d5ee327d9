"""analyze() from CAVE tables (twin.connectome.build_edge_table) to results, and `twin analyze`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from twin.analysis import AnalysisConfig, analyze
from twin.cli import main

from .connectome_fixture import write_connectome

pytest.importorskip("twin.connectome.edges")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_connectome(tmp_path_factory.mktemp("conn"), beta=3.0)


def test_analyze_builds_the_edge_table_and_recovers_the_planted_slope(inputs, tmp_path):
    conn, prof, met = inputs
    cfg = AnalysisConfig(connectome=str(conn), profiles=str(prof), metrics=str(met), n_boot=20, n_permutations=20,
                         min_pre=2, min_synapses=5, by_area_layer=False, use_r="never")
    res = analyze(cfg, tmp_path)
    edges = pd.read_parquet(tmp_path / "edges.parquet")
    assert len(edges) == 24 * 59 and not edges["quality_ok"].all()      # 3 neurons fail CC_max
    assert res["summary"]["n_pairs_quality_ok"] == int(edges["quality_ok"].sum())
    syn = [r for r in res["tests"] if r["family"] == "synaptic_scale" and r["measure"] == "signal_correlation"
           and r["level"] == "projection"]
    assert {r["projection"] for r in syn} == {"V1->V1", "HVA->HVA", "V1->HVA", "HVA->V1"}
    est = np.array([r["estimate"] for r in syn if r["included"]])
    assert len(est) >= 3 and 1.5 < np.mean(est) < 4.5
    assert sum(r["ci_low"] < 3.0 < r["ci_high"] for r in syn if r["included"]) >= len(est) - 1
    assert set(res["provenance"]["inputs"]) == {str(conn), str(prof), str(met)}


def test_cli_end_to_end_writes_results_and_a_summary(inputs, tmp_path, capsys):
    conn, prof, _ = inputs
    tiny = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "experiments/analyze/tiny.toml")
    code = main(["analyze", tiny, "--out", str(tmp_path / "o"), "--quiet", "--set", f"connectome={conn}",
                 "--set", f"profiles={prof}"])
    assert code == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert any(r["family"] == "invariance" for r in res["tests"])
    assert "synaptic_scale/signal_correlation/V1->V1" in capsys.readouterr().out


def test_cli_edges_only_streams_the_table_and_analyze_reads_it_back(inputs, tmp_path, capsys):
    conn, prof, met = inputs
    tiny = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "experiments/analyze/tiny.toml")
    common = ["--quiet", "--set", f"connectome={conn}", "--set", f"profiles={prof}", "--set", f"metrics={met}"]
    assert main(["analyze", tiny, "--out", str(tmp_path / "e"), "--edges-only", *common]) == 0
    assert "wrote" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "e").iterdir()] == ["edges.parquet"]
    assert main(["analyze", tiny, "--out", str(tmp_path / "from_file"), *common,
                 "--set", f"edges={tmp_path / 'e' / 'edges.parquet'}"]) == 0
    assert main(["analyze", tiny, "--out", str(tmp_path / "built"), *common]) == 0
    a = json.loads((tmp_path / "from_file" / "results.json").read_text())
    b = json.loads((tmp_path / "built" / "results.json").read_text())
    assert [r["estimate"] for r in a["tests"]] == [r["estimate"] for r in b["tests"]]
    assert str(tmp_path / "e" / "edges.parquet") in a["provenance"]["inputs"]

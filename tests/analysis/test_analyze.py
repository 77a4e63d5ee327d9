"""analyze(): the files it writes, results.json's contract fields, and what the report reads."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.analysis import AnalysisConfig, analyze
from twin.analysis.config import load_analysis_config
from twin.analysis.glmm_r import r_available
from twin.analysis.records import FIELDS

ROOT = Path(__file__).resolve().parents[2]
FAST = AnalysisConfig(n_boot=20, n_permutations=20, n_bins=4, use_r="never")


@pytest.fixture(scope="module")
def result(edges, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze")
    return out, analyze(FAST, out, edges=edges)


def test_writes_edges_binned_and_strict_json_results(result, edges):
    out, res = result
    assert json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == res
    assert len(pd.read_parquet(out / "edges.parquet")) == len(edges)
    binned = pd.read_parquet(out / "binned.parquet")
    assert {"measure", "projection", "synapse_density", "connection_probability_lo"} <= set(binned.columns)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_results_json_has_every_contract_field_and_family(result):
    _, res = result
    assert res["tests"] and {"provenance", "summary", "measures"} <= set(res)
    for r in res["tests"]:
        assert set(FIELDS) <= set(r), r["name"]
        assert r["included"] or r["reason"]
        assert (r["p_adj"] is not None) == (r["included"] and r["p"] is not None)
    fams = {r["family"] for r in res["tests"]}
    assert {"synaptic_scale", "axonal_scale", "synapse_size", "per_pre_mean", "permutation", "invariance"} <= fams
    assert res["provenance"]["config"]["n_boot"] == 20


def test_planted_like_to_like_slopes_are_recovered_and_nulls_are_not_significant(result):
    from .conftest import BETA

    _, res = result
    syn = {(r["measure"], r["projection"]): r for r in res["tests"]
           if r["family"] == "synaptic_scale" and r.get("level") == "projection"}
    included = [p for p in BETA if syn[("signal_correlation", p)]["included"]]
    assert len(included) >= 3  # HVA->V1 of this table has one neuron with 60% of the Ld: excluded
    for proj in included:
        r = syn[("signal_correlation", proj)]
        assert abs(r["estimate"] - BETA[proj]) < 3 * r["se"], proj
    assert syn[("signal_correlation", "V1->V1")]["p"] < 0.01  # the largest slope and sample
    assert all(r["p_adj"] > 0.05 for (m, _), r in syn.items() if m in ("rf_distance", "ori_difference")
               and r["included"])
    al = [r for r in res["tests"] if r.get("level") == "area_layer"]
    assert al and any(not r["included"] for r in al)  # small area x layer groups fail the rules


def test_the_pooled_slope_is_one_common_slope_with_a_narrower_interval(result):
    from .conftest import BETA

    _, res = result
    syn = [r for r in res["tests"] if r["family"] == "synaptic_scale" and r["measure"] == "signal_correlation"]
    proj = [r for r in syn if r["level"] == "projection" and r["included"]]
    pooled = next(r for r in syn if r["level"] == "pooled")
    assert pooled["projection"] == "all" and pooled["included"]
    assert sorted(pooled["projections"]) == sorted(r["projection"] for r in proj)
    assert min(BETA[r["projection"]] for r in proj) - 0.3 < pooled["estimate"] < max(BETA.values()) + 0.3
    assert all(pooled["ci_high"] - pooled["ci_low"] < r["ci_high"] - r["ci_low"] for r in proj)
    assert pooled["p"] < 0.01 and pooled["p_adj"] is not None
    assert pooled["n_pairs"] == sum(r["n_pairs"] for r in proj)
    assert pooled["n_synapses"] == sum(r["n_synapses"] for r in proj)
    # counted as the projections count them (neurons with Ld > 0 and synapses); a neuron can
    # project to both areas, so the pooled count lies between the largest and the sum
    assert max(r["n_pre"] for r in proj) <= pooled["n_pre"] <= sum(r["n_pre"] for r in proj)


def test_the_pooled_slope_keeps_its_level_under_the_null():
    from twin.analysis.scales import synaptic_scale

    from .conftest import small_edges

    ps = []
    for seed in range(40):
        e = small_edges(100 + seed, beta={}, other_measures=False, sd_pre=0.5)
        r = next(r for r in synaptic_scale(e, ["signal_correlation"], min_pre=2, min_synapses=5)
                 if r["level"] == "pooled")
        ps.append(r["p"])
    assert np.mean(np.asarray(ps) < 0.05) <= 0.15          # 2 expected of 40; P(> 6) < 0.5%


def test_a_group_dominated_by_one_neuron_is_reported_excluded(edges, tmp_path):
    d = edges.copy()
    first = d["pre_pt_root_id"][d["projection"] == "HVA->V1"].iloc[0]
    d.loc[(d["pre_pt_root_id"] == first) & (d["population"] == "adp"), "n_synapses"] = 5
    res = analyze(FAST.__class__(n_boot=0, n_permutations=0, use_r="never", axonal=False, by_area_layer=False),
                  tmp_path, edges=d)
    r = next(r for r in res["tests"] if r["name"] == "synaptic_scale/signal_correlation/HVA->V1")
    assert not r["included"] and "of the synapses" in r["reason"] and r["estimate"] is None


def test_the_report_reads_the_slopes_and_invariance_tests(result):
    from twin.report.sections_connectivity import _is_invariance, _is_synaptic, normalise_tests

    _, res = result
    tests = normalise_tests(res)
    syn = [t for t in tests if _is_synaptic(t) and not _is_invariance(t)]
    assert {t["projection"] for t in syn} >= {"V1->V1", "HVA->HVA", "V1->HVA", "HVA->V1"}
    assert any(_is_invariance(t) and "mei" in t["name"] for t in tests)


def test_experiment_configs_load_with_the_published_rules():
    demo = load_analysis_config(ROOT / "experiments/analyze/demo.toml")
    tiny = load_analysis_config(ROOT / "experiments/analyze/tiny.toml")
    assert (demo.cc_max, demo.cc_abs, demo.min_pre, demo.min_synapses, demo.max_share) == (0.4, 0.2, 5, 30, 0.5)
    assert demo.n_boot == 1000 and tiny.n_boot < 100 and tiny.use_r == "never"


def _fake_rscript(folder: Path) -> None:
    """An `Rscript` stand-in: `-e` succeeds (glmmTMB "installed"); a script call writes slopes 1.5."""
    exe = folder / "Rscript"
    exe.write_text(f"""#!{sys.executable}
import csv, json, sys
args = sys.argv[1:]
if args[0] == "-e":
    sys.exit(0)
_, data, out, measures = args
projs = sorted({{r["projection"] for r in csv.DictReader(open(data))}})
rows = [{{"measure": m, "projection": p, "estimate": 1.5, "se": 0.25, "p": 0.001}}
        for m in measures.split(",") for p in projs]
json.dump(rows, open(out, "w"))
""")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_glmm_records_come_back_from_rscript_json(edges, tmp_path, monkeypatch):
    _fake_rscript(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    cfg = AnalysisConfig(n_boot=0, n_permutations=0, axonal=False, invariance=False, by_area_layer=False,
                         measures=("signal_correlation",), use_r="always")
    res = analyze(cfg, tmp_path / "out", edges=edges)
    glmm = [r for r in res["tests"] if r["family"] == "synaptic_scale_glmm"]
    fe = [r for r in res["tests"] if r["family"] == "synaptic_scale" and r["included"] and r["level"] == "projection"]
    assert res["glmm_r"]["used"] and len(glmm) == len(fe) >= 3
    assert all(r["estimate"] == 1.5 and r["ci_low"] == pytest.approx(1.5 - 1.96 * 0.25, abs=1e-3) for r in glmm)


@pytest.mark.skipif(not r_available(), reason="Rscript with glmmTMB is not installed")
def test_glmmtmb_slopes_agree_with_the_fixed_intercept_slopes(edges, tmp_path):
    cfg = AnalysisConfig(n_boot=0, n_permutations=0, axonal=False, invariance=False, by_area_layer=False,
                         measures=("signal_correlation",), use_r="always")
    res = analyze(cfg, tmp_path, edges=edges)
    fe = {r["projection"]: r for r in res["tests"] if r["family"] == "synaptic_scale" and r["level"] == "projection"}
    for r in (r for r in res["tests"] if r["family"] == "synaptic_scale_glmm"):
        assert abs(r["estimate"] - fe[r["projection"]]["estimate"]) < 0.5 * (r["ci_high"] - r["ci_low"])


def test_use_r_always_without_r_is_a_clear_error(edges, tmp_path, monkeypatch):
    from twin.errors import TwinError

    monkeypatch.setenv("PATH", str(tmp_path))  # no Rscript here
    cfg = AnalysisConfig(n_boot=0, n_permutations=0, axonal=False, invariance=False, use_r="always")
    with pytest.raises(TwinError, match="glmmTMB"):
        analyze(cfg, tmp_path / "out", edges=edges)
    assert not (tmp_path / "out" / "results.json").exists()

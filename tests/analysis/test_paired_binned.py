"""Per-neuron paired tests, synapse size vs similarity and the bootstrap-binned trends."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from twin.analysis.binned import binned_table, binned_trend
from twin.analysis.paired import paired_t, per_pre_means, projection_tests, size_vs_measure


def test_per_pre_paired_test_matches_a_hand_example():
    # neuron 1: connected 0.5, ADP mean 0.2; neuron 2: 0.4 vs 0.3; neuron 3: 0.3 vs 0.25; neuron 4 has no ADP
    pre = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3, 4])
    x = np.array([0.5, 0.1, 0.3, 0.4, 0.3, 0.3, 0.3, 0.2, 0.3, 0.9])
    conn = np.array([1, 0, 0, 1, 0, 0, 1, 0, 0, 1], bool)
    c, a = per_pre_means(pre, x, conn)
    np.testing.assert_allclose(c, [0.5, 0.4, 0.3])
    np.testing.assert_allclose(a, [0.2, 0.3, 0.25])
    t = paired_t(c, a)
    d = np.array([0.3, 0.1, 0.05])
    assert np.isclose(t["estimate"], d.mean())
    assert np.isclose(t["p"], stats.ttest_rel(c, a).pvalue)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert np.isclose(t["ci_low"], d.mean() - half) and np.isclose(t["ci_high"], d.mean() + half)


def test_connected_partners_are_more_similar_under_a_planted_like_to_like_rule(edges):
    recs = [r for r in projection_tests(edges, ["signal_correlation", "rf_distance"], min_synapses=30)
            if r["family"] == "per_pre_mean" and r["projection"] == "V1->V1"]
    sc = next(r for r in recs if r["measure"] == "signal_correlation")
    assert sc["included"] and sc["estimate"] > 0 and sc["p"] < 0.05


def test_synapse_size_slope_is_found_after_accounting_for_ld():
    rng = np.random.default_rng(0)
    n = 600
    pre, x, ld = rng.integers(0, 20, n), rng.normal(0, 0.2, n), rng.lognormal(3, 1, n)
    size = 100 + 50 * x + 30 * np.log(ld) + rng.normal(0, 10, n)
    r = size_vs_measure(size, x, ld, pre)
    assert r["ci_low"] < 50 < r["ci_high"] and r["p"] < 1e-6


def test_binned_density_is_total_synapses_over_total_ld_per_bin():
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.8, 0.9, 1.0, 1.1])
    syn = np.array([0, 1, 0, 0, 2, 1, 0, 3])
    ld = np.array([1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 2.0, 2.0])
    t = binned_trend(x, syn, ld, np.arange(8) % 3, n_bins=2, n_boot=0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(t["synapse_density"], [1 / 10, 6 / 6])
    np.testing.assert_allclose(t["connection_probability"], [1 / 4, 3 / 4])


def test_bootstrap_bins_are_deterministic_per_seed(edges):
    a = binned_table(edges, ["signal_correlation"], n_bins=5, n_boot=50, seed=3)
    b = binned_table(edges, ["signal_correlation"], n_bins=5, n_boot=50, seed=3)
    c = binned_table(edges, ["signal_correlation"], n_bins=5, n_boot=50, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["synapse_density_lo"], c["synapse_density_lo"])
    assert (a["synapse_density_lo"] <= a["synapse_density"]).all()
    assert (a["synapse_density"] <= a["synapse_density_hi"]).all()


def test_binned_density_rises_with_similarity_under_a_planted_slope(edges):
    t = binned_table(edges, ["signal_correlation"], n_bins=5, n_boot=20, seed=0)
    v1 = t[t["projection"] == "V1->V1"]
    assert v1["synapse_density"].iloc[-1] > 1.3 * v1["synapse_density"].iloc[0]

"""Invariance hypotheses: MEI/VEI similarity, post vs pre invariance, invariance vs out-degree."""

from __future__ import annotations

from twin.analysis.invariance import degree_tests, mei_vei_tests, post_vs_pre_tests

from .conftest import small_edges


def _get(recs, name):
    return next(r for r in recs if r["name"] == name)


def test_detects_planted_post_more_invariant_than_pre(edges):
    r = _get(post_vs_pre_tests(edges), "invariance/phase_invariance/post_minus_pre/all")
    assert r["included"] and r["p"] < 1e-3 and 0.1 < r["estimate"] < 0.3 and r["ci_low"] > 0


def test_no_post_pre_difference_is_found_where_none_is_planted():
    r = _get(post_vs_pre_tests(small_edges(1)), "invariance/phase_invariance/post_minus_pre/all")
    assert r["ci_low"] < 0 < r["ci_high"]


def test_connected_pairs_have_more_similar_meis_than_adp_pairs(edges):
    r = _get(mei_vei_tests(edges), "invariance/mei_similarity/connected_minus_adp/all")
    assert r["p"] < 1e-3 and r["ci_low"] < 0.06 < r["ci_high"]


def test_lower_invariance_neurons_form_more_connections(edges):
    recs = degree_tests(edges)
    pois = _get(recs, "invariance/phase_invariance/out_degree_poisson/all")
    rho = _get(recs, "invariance/phase_invariance/out_degree_spearman/all")
    assert pois["estimate"] < 0 and pois["p"] < 0.05 and rho["estimate"] < 0
    other = _get(recs, "invariance/bipartite_index/out_degree_poisson/all")  # nothing planted there
    assert other["ci_low"] < 0 < other["ci_high"]


def test_too_few_neurons_are_reported_as_excluded(edges):
    few = edges[edges["pre_pt_root_id"].isin(edges["pre_pt_root_id"].unique()[:4])]
    recs = mei_vei_tests(few)
    assert recs and all(not r["included"] and "need > 5" in r["reason"] for r in recs)

"""Benjamini-Hochberg, test records, the quality filter and the published inclusion rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.analysis.inclusion import check_inclusion, iter_groups, quality_mask
from twin.analysis.records import FIELDS, adjust_bh, benjamini_hochberg, excluded, record


def test_bh_matches_a_hand_computed_example():
    # sorted p 0.005, 0.01, 0.03, 0.04 (m = 4): p*m/rank = 0.02, 0.02, 0.04, 0.04, then running min from the top
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.04, 0.03, 0.005]), [0.02, 0.04, 0.04, 0.02])


def test_bh_adjusts_within_each_family_and_skips_excluded_tests():
    recs = [record("synaptic_scale", "m", "A", estimate=1, p=0.01),
            record("synaptic_scale", "m", "B", estimate=1, p=0.04),
            record("axonal_scale", "m", "A", estimate=1, p=0.01), excluded("synaptic_scale", "m", "C", "too few")]
    adjust_bh(recs)
    assert recs[0]["p_adj"] == pytest.approx(0.02) and recs[1]["p_adj"] == pytest.approx(0.04)
    assert recs[2]["p_adj"] == pytest.approx(0.01)  # a family of one
    assert recs[3]["p_adj"] is None and recs[3]["included"] is False and recs[3]["reason"] == "too few"


def test_records_hold_every_contract_field_and_json_safe_numbers():
    r = record("invariance", "mei_similarity", "all", estimate=np.float64(0.1), ci_low=np.nan, p=np.float32(0.5),
               n_pre=np.int64(7))
    assert set(FIELDS) <= set(r)
    assert r["ci_low"] is None and isinstance(r["estimate"], float) and isinstance(r["n_pre"], int)


def _group(shares, n_syn=200, n_pairs_per_pre=50, seed=0):
    rng = np.random.default_rng(seed)
    pre = np.repeat(np.arange(len(shares)), n_pairs_per_pre)
    syn = np.zeros(len(pre))
    for i, s in enumerate(shares):
        syn[i * n_pairs_per_pre] = round(s * n_syn)
    return pre, syn, rng.uniform(1, 2, len(pre))


def test_a_group_dominated_by_one_presynaptic_neuron_is_excluded():
    inc = check_inclusion(*_group([0.6] + [0.05] * 8))
    assert not inc.included and "60% of the synapses" in inc.reason


def test_a_balanced_group_passes_and_small_groups_fail_each_rule():
    assert check_inclusion(*_group([1 / 9] * 9)).included
    few = check_inclusion(*_group([0.2] * 5))          # 5 neurons: needs > 5
    assert not few.included and "5 presynaptic neurons" in few.reason
    low = check_inclusion(*_group([1 / 9] * 9, n_syn=27))  # 27 synapses: needs > 30
    assert not low.included and "synapses (need > 30)" in low.reason
    pre, syn, ld = _group([1 / 9] * 9)
    ld[pre == 0] *= 100                                 # one neuron holds most of the Ld
    big = check_inclusion(pre, syn, ld)
    assert not big.included and "of the Ld" in big.reason


def test_quality_filter_needs_both_neurons_to_pass_and_passes_all_without_metrics():
    df = pd.DataFrame({"pre_cc_abs": [0.3, 0.3, 0.1, np.nan], "pre_cc_max": [0.5, 0.5, 0.5, 0.5],
                       "post_cc_abs": [0.3, 0.3, 0.3, 0.3], "post_cc_max": [0.5, 0.35, 0.5, 0.5]})
    assert quality_mask(df).tolist() == [True, False, False, False]
    assert quality_mask(df, cc_max=0.3).tolist() == [True, True, False, False]
    none = pd.DataFrame({c: [np.nan] * 3 for c in df.columns} | {"quality_ok": [True] * 3})
    assert quality_mask(none).all()


def test_groups_are_projections_then_area_layer_groups_of_the_chosen_layers():
    df = pd.DataFrame({"projection": ["V1->HVA", "V1->V1", "V1->V1"],
                       "area_layer_projection": ["V1 L2/3->HVA L4", "V1 L6->V1 L2/3", "V1 L2/3->V1 L5"]})
    g = iter_groups(df, by_area_layer=True)
    assert [(lvl, lab) for lvl, lab, _ in g] == [("projection", "V1->V1"), ("projection", "V1->HVA"),
                                                 ("area_layer", "V1 L2/3->HVA L4"), ("area_layer", "V1 L2/3->V1 L5")]
    assert g[0][2].tolist() == [False, True, True]

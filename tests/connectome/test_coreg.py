"""twin.connectome.coreg: proofread selection, best-match resolution, unit <-> root id maps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin.connectome.coreg import (
    coregistered_neurons, layer_from_cell_type, lookup_root_ids, lookup_units, proofread_root_ids,
    resolve_coregistration)
from twin.connectome.tables import load_tables, validate_table


def test_proofread_axon_is_strategy_in_set_or_status_in_set(tables):
    proof = tables["proofreading_status_and_strategy"]
    assert proofread_root_ids(proof).tolist() == [101, 103]
    assert proofread_root_ids(proof, statuses=()).tolist() == [101]
    wider = ("axon_fully_extended", "axon_partially_extended", "axon_interareal")
    assert proofread_root_ids(proof, strategies=wider, statuses=()).tolist() == [101, 104]


def test_cell_imaged_in_two_fields_keeps_the_higher_score_unit(tables):
    coreg = validate_table(tables["coregistration_manual_v4"], "coregistration")
    out, counts = resolve_coregistration(coreg)
    row = out.set_index("pt_root_id").loc[104]
    assert (row.scan_idx, row.unit_id, row.field) == (7, 4, 1)
    assert counts["n_multi_field"] == 1


def test_unit_matched_to_two_root_ids_keeps_the_best_and_counts_the_conflict(tables):
    coreg = validate_table(tables["coregistration_manual_v4"], "coregistration")
    out, counts = resolve_coregistration(coreg)
    assert out["pt_root_id"].tolist() == [101, 102, 103, 104, 105]          # 106 lost unit (4,7,2); 0 dropped
    assert counts == {"n_rows": 8, "n_unmatched": 1, "n_unit_conflicts": 1, "n_multi_field": 1, "n_neurons": 5}
    assert not out.duplicated(["session", "scan_idx", "unit_id"]).any()


def test_equal_scores_are_broken_by_lower_residual(tables):
    coreg = validate_table(tables["coregistration_manual_v4"], "coregistration")
    coreg.loc[coreg.pt_root_id == 104, "score"] = 0.9   # tie: the (4,8,5) row has residual 1.0 < 3.0
    out, _ = resolve_coregistration(coreg)
    assert out.set_index("pt_root_id").loc[104, "unit_id"] == 5


def test_neurons_carry_nucleus_area_type_layer_and_axon_flag(tables):
    n = coregistered_neurons(load_tables(tables), recording_ids={(4, 7): "17797-4-7"})
    assert n["nucleus_id"].tolist() == [11, 12, 13, 14, 15]
    assert n["area"].tolist() == ["V1", "V1", "LM", "AL", "V1"]
    assert n["area_group"].tolist() == ["V1", "V1", "HVA", "HVA", "V1"]
    assert n["layer"].tolist()[:4] == ["L2/3", "L4", "L2/3", "L5"] and pd.isna(n["layer"].iloc[4])
    assert n["proofread_axon"].tolist() == [True, False, True, False, False]
    assert set(n["recording_id"]) == {"17797-4-7"}
    assert n.attrs["coregistration"]["n_neurons"] == 5


def test_unknown_scan_gets_a_recording_id_from_animal_and_scan(tables):
    n = coregistered_neurons(load_tables(tables), animal_id=17797)
    assert n["recording_id"].iloc[0] == "17797-4-7"


def test_unit_to_root_id_and_back_round_trips(tables):
    n = coregistered_neurons(load_tables(tables))
    roots = lookup_root_ids(n, [4, 4, 4, 4], [7, 7, 8, 7], [3, 2, 5, 99])
    assert roots.tolist() == [103, 102, 0, 0]           # (4,8,5) was resolved away; 99 unknown
    units = lookup_units(n, [103, 104, 555])
    assert units["unit_id"].iloc[:2].tolist() == [3, 4] and pd.isna(units["unit_id"].iloc[2])
    assert units["nucleus_id"].iloc[0] == 13


def test_layers_follow_excitatory_cell_types_only():
    got = layer_from_cell_type(np.array(["23P", "4P", "5P-ET", "6P-CT", "BC", None], object))
    assert got.tolist() == ["L2/3", "L4", "L5", "L6", None, None]

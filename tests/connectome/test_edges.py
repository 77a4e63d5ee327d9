"""twin.connectome.edges: the 5-neuron edge table checked by hand; similarities, Ld sources, saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from twin.connectome.edges import build_edge_table, read_edge_table, save_edge_table, write_edge_table
from twin.connectome.proximity import Skeleton, proximity_table, read_skeleton_dir, write_swc
from twin.connectome.tables import load_tables
from twin.errors import InputError
from twin.similarity import index_by_root_id, pair_similarity

from .conftest import ROOTS, tiny_metrics, tiny_profiles, write_tables

PAIRS = [(101, 102), (101, 103), (101, 104), (101, 105), (103, 101), (103, 102), (103, 104), (103, 105)]


@pytest.fixture
def edges(tables):
    return build_edge_table(load_tables(tables), tiny_profiles(), tiny_metrics())


def test_pairs_are_proofread_pre_times_every_other_coregistered_post(edges):
    assert list(zip(edges.pre_pt_root_id, edges.post_pt_root_id)) == PAIRS
    assert edges["pre_unit_id"].tolist() == [1] * 4 + [3] * 4
    assert edges["post_unit_id"].tolist() == [2, 3, 4, 6, 1, 2, 4, 6]   # 104 keeps its better field
    assert set(edges["pre_recording_id"]) == {"17797-4-7"}


def test_counts_sizes_and_ld_match_the_hand_built_tables(edges):
    # autapse 101->101, synapses from non-proofread 102 and to non-co-registered 900 are left out
    assert edges["n_synapses"].tolist() == [3, 1, 0, 0, 2, 0, 0, 0]
    assert edges["synapse_size_sum"].tolist() == [60.0, 5.0, 0, 0, 16.0, 0, 0, 0]
    np.testing.assert_array_equal(edges["synapse_size_mean"], [20.0, 5.0] + [np.nan] * 2 + [8.0] + [np.nan] * 3)
    assert edges["ld_um"].tolist() == [12.0, 0.0, 3.5, 0.0, 8.0, 0.0, 0.0, 2.0]
    assert edges["pre_out_degree"].tolist() == [2] * 4 + [1] * 4


def test_populations_connected_adp_and_same_region(edges):
    assert edges["population"].tolist() == ["connected", "connected", "adp", "same_region",
                                            "connected", "same_region", "same_region", "adp"]


def test_projections_and_area_layer_labels(edges):
    assert edges["projection"].tolist() == ["V1->V1", "V1->HVA", "V1->HVA", "V1->V1",
                                            "HVA->V1", "HVA->V1", "HVA->HVA", "HVA->V1"]
    assert edges["post_area"].tolist() == ["V1", "LM", "AL", "V1", "V1", "V1", "AL", "V1"]
    # 105 is inhibitory (BC): its layer comes from the metrics' unit coords
    assert edges["post_layer"].tolist() == ["L4", "L2/3", "L5", "L6", "L2/3", "L4", "L5", "L6"]
    assert edges["area_layer_projection"].tolist()[:4] == ["V1 L2/3->V1 L4", "V1 L2/3->HVA L2/3",
                                                          "V1 L2/3->HVA L5", "V1 L2/3->V1 L6"]


def test_quality_uses_natural_movie_cc_and_fails_pairs_with_a_bad_neuron(edges):
    assert edges["post_cc_max"].tolist() == [0.8, 0.7, 0.3, 0.6, 0.9, 0.8, 0.3, 0.6]
    assert edges["quality_ok"].tolist() == [True, True, False, True, True, True, False, True]


def test_without_metrics_every_pair_passes_quality(tables):
    e = build_edge_table(load_tables(tables), tiny_profiles())
    assert e["quality_ok"].all() and e["pre_cc_abs"].isna().all()


def test_metrics_without_natural_movie_is_an_input_error(tables):
    m = tiny_metrics().assign_coords(stimulus_type=["gabor", "rdk"])
    with pytest.raises(InputError) as e:
        build_edge_table(load_tables(tables), tiny_profiles(), m)
    assert e.value.field == "stimulus_type"


def test_similarities_equal_pair_similarity_by_root_id_and_nan_when_missing(edges):
    prof = tiny_profiles()
    i = index_by_root_id(prof, edges.pre_pt_root_id.to_numpy())
    j = index_by_root_id(prof, edges.post_pt_root_id.to_numpy())
    ok = (i >= 0) & (j >= 0)
    assert ok.tolist() == [True, True, True, False, True, True, True, False]   # 105 not in the profile
    want = pair_similarity(prof, i[ok], j[ok])
    assert set(want) == {"signal_correlation", "rf_distance", "ori_difference"}
    for kind, values in want.items():
        np.testing.assert_allclose(edges[kind].to_numpy()[ok], values, rtol=1e-12)
        assert edges[kind][~ok].isna().all()
    pi = prof.phase_invariance.values
    np.testing.assert_allclose(edges["pre_phase_invariance"], pi[i])
    np.testing.assert_allclose(edges["post_phase_invariance"][ok], pi[j[ok]])
    assert "pre_bipartite_index" not in edges


def test_similarity_chunks_do_not_change_values(tables, edges):
    small = build_edge_table(load_tables(tables), tiny_profiles(), tiny_metrics(), chunk_pairs=3, batch_rows=2)
    pd.testing.assert_frame_equal(small, edges)


def _skeleton(k: int) -> Skeleton:
    """Soma at (0, 3k, 0); dendrite (type 3) along +x for 10 um; axon (type 2) along +z for 20 um."""
    rows = [(1, 1, 0.0, 3.0 * k, 0.0, 1.0, -1)]
    rows += [(2 + s, 3, 2.5 * (s + 1), 3.0 * k, 0.0, 0.5, 1 + s) for s in range(4)]
    rows += [(6 + s, 2, 0.0, 3.0 * k, 5.0 * (s + 1), 0.2, 1 if s == 0 else 5 + s) for s in range(4)]
    nodes = pd.DataFrame(rows, columns=["id", "type", "x", "y", "z", "radius", "parent"])
    return Skeleton(nodes)


def _with_skeletons(tables, folder, roots=ROOTS, proximity=False):
    t = dict(tables)
    del t["proximity"]
    write_tables(t, folder)
    for k, r in enumerate(roots):
        write_swc(_skeleton(k), folder / "skeletons" / f"{r}.swc")
    if proximity:
        skels = read_skeleton_dir(folder / "skeletons")
        proximity_table(skels, ROOTS, ROOTS).to_parquet(folder / "proximity.parquet")
    return folder


def test_ld_from_skeletons_equals_ld_from_the_proximity_table(tables, tmp_path):
    from_swc = build_edge_table(_with_skeletons(tables, tmp_path / "a"), None)
    from_table = build_edge_table(_with_skeletons(tables, tmp_path / "b", proximity=True), None)
    assert from_table.attrs["provenance"]["config"]["ld_source"] == "proximity"
    assert from_swc.attrs["provenance"]["config"]["ld_source"] == "skeletons"
    np.testing.assert_allclose(from_swc["ld_um"], from_table["ld_um"])
    # neighbours 3 um apart: the 5 dendrite pieces (2.5/3 um each) with midpoint x < 4 um lie within
    # 5 um of the other's axon; cells 6+ um apart share nothing
    near = 5 * 2.5 / 3
    np.testing.assert_allclose(from_swc["ld_um"], [near, 0, 0, 0, 0, near, near, 0])


def test_pairs_missing_a_skeleton_have_unknown_ld(tables, tmp_path):
    e = build_edge_table(_with_skeletons(tables, tmp_path, roots=ROOTS[:4]), None)
    assert e["ld_um"].isna().tolist() == [False, False, False, True] * 2
    assert e["population"].isna().tolist() == [False, False, False, True] * 2


def test_no_proximity_and_no_skeletons_is_an_input_error(tables, tmp_path):
    t = dict(tables)
    del t["proximity"]
    with pytest.raises(InputError) as e:
        build_edge_table(write_tables(t, tmp_path), None)
    assert e.value.field == "proximity"


def test_saved_edge_table_round_trips_with_provenance_in_parquet_metadata(edges, tmp_path):
    p = save_edge_table(edges, tmp_path / "edges.parquet")
    assert b"twin.provenance" in pq.read_schema(p).metadata
    back = read_edge_table(p)
    pd.testing.assert_frame_equal(back, edges)
    assert back.attrs["provenance"]["config"]["n_pre"] == 2
    assert back.attrs["coregistration"]["n_unit_conflicts"] == 1
    assert not list(tmp_path.glob(".*tmp"))


def test_profile_without_root_ids_is_an_input_error(tables):
    with pytest.raises(InputError) as e:
        build_edge_table(load_tables(tables), tiny_profiles().drop_vars("pt_root_id"))
    assert e.value.field == "pt_root_id"


def test_blocks_of_presynaptic_neurons_do_not_change_the_table(tables, edges):
    one_pre_per_block = build_edge_table(load_tables(tables), tiny_profiles(), tiny_metrics(), block_pairs=1)
    pd.testing.assert_frame_equal(one_pre_per_block, edges)


@pytest.mark.parametrize("block_pairs", [1, 1 << 20])
def test_streamed_edge_table_equals_the_in_memory_one(tables, edges, tmp_path, block_pairs):
    p = write_edge_table(load_tables(tables), tmp_path / "edges.parquet", tiny_profiles(), tiny_metrics(),
                         block_pairs=block_pairs)
    assert pq.ParquetFile(p).metadata.num_row_groups == (2 if block_pairs == 1 else 1)  # 2 presynaptic neurons
    back = read_edge_table(p)
    pd.testing.assert_frame_equal(back, edges)
    same = {k: v for k, v in back.attrs["provenance"].items() if k != "created"}
    assert same == {k: v for k, v in edges.attrs["provenance"].items() if k != "created"}
    assert back.attrs["coregistration"] == edges.attrs["coregistration"]
    assert "write" in back.attrs["timings_s"]
    assert not list(tmp_path.glob(".*tmp"))


def test_streamed_edge_table_leaves_nothing_on_bad_input(tables, tmp_path):
    with pytest.raises(InputError):
        write_edge_table(load_tables(tables), tmp_path / "edges.parquet", tiny_profiles().drop_vars("pt_root_id"))
    assert list(tmp_path.iterdir()) == []


def test_a_failure_after_blocks_were_written_keeps_the_old_file_and_no_temporary(tables, tmp_path, monkeypatch):
    import twin.connectome.edges as edges_mod

    out = tmp_path / "edges.parquet"
    out.write_bytes(b"old table")
    real, calls = edges_mod._block, []

    def second_block_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(edges_mod, "_block", second_block_fails)
    with pytest.raises(RuntimeError, match="disk full"):
        write_edge_table(load_tables(tables), out, tiny_profiles(), tiny_metrics(), block_pairs=1)
    assert len(calls) == 2                                    # the first block had been written
    assert out.read_bytes() == b"old table"
    assert [p.name for p in tmp_path.iterdir()] == ["edges.parquet"]

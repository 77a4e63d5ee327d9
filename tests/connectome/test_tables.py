"""twin.connectome.tables: every format and position layout loads the same; bad input names file+column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.connectome.tables import ConnectomeTables, load_tables
from twin.errors import InputError

from .conftest import write_tables

SMALL = ("nuclei", "coregistration", "cell_types", "areas", "proofreading")


def _same(a: ConnectomeTables, b: ConnectomeTables) -> None:
    for role in SMALL:
        x, y = getattr(a, role), getattr(b, role)
        pd.testing.assert_frame_equal(x[sorted(x.columns)], y[sorted(y.columns)], check_dtype=False)
        assert x["pt_root_id"].dtype == np.int64


def test_vector_and_split_position_columns_load_identically(tables, tmp_path):
    vec = load_tables(write_tables(tables, tmp_path / "vec"))
    split = load_tables(write_tables(tables, tmp_path / "split", split=True))
    _same(vec, split)
    assert {"pt_position_x", "pt_position_y", "pt_position_z"} <= set(vec.nuclei.columns)
    assert "pt_position" not in vec.nuclei.columns
    np.testing.assert_array_equal(vec.nuclei["pt_position_y"], 2 * np.arange(6))


@pytest.mark.parametrize("ext,split", [("feather", False), ("csv", False), ("csv", True)])
def test_feather_and_csv_files_load_like_parquet(tables, tmp_path, ext, split):
    ref = load_tables(write_tables(tables, tmp_path / "ref"))
    other = load_tables(write_tables(tables, tmp_path / ext, ext=ext, split=split))
    _same(ref, other)
    assert isinstance(other.synapses, Path) and other.synapses.suffix == f".{ext}"


def test_dataframes_and_explicit_paths_load_like_a_folder(tables, tmp_path):
    ref = load_tables(write_tables(tables, tmp_path / "ref"))
    from_frames = load_tables(tables)
    _same(ref, from_frames)
    assert isinstance(from_frames.synapses, pd.DataFrame)
    paths = {name: tmp_path / "ref" / f"{name}.parquet" for name in tables}
    _same(ref, load_tables(paths))


def test_synapse_table_is_kept_as_a_path_not_loaded(tables, tmp_path):
    t = load_tables(write_tables(tables, tmp_path))
    assert t.synapses == tmp_path / "synapses_pni_2.parquet"
    assert t.proximity == tmp_path / "proximity.parquet"


def test_missing_table_names_the_expected_file(tables, tmp_path):
    write_tables(tables, tmp_path)
    (tmp_path / "nucleus_detection_v0.parquet").unlink()
    with pytest.raises(InputError) as e:
        load_tables(tmp_path)
    assert "nucleus_detection_v0" in str(e.value) and "missing" in str(e.value)


def test_missing_column_names_file_and_column(tables, tmp_path):
    tables["coregistration_manual_v4"] = tables["coregistration_manual_v4"].drop(columns=["score"])
    write_tables(tables, tmp_path)
    with pytest.raises(InputError) as e:
        load_tables(tmp_path)
    assert e.value.path.endswith("coregistration_manual_v4.parquet") and e.value.field == "score"


def test_missing_position_column_is_reported_with_both_layouts(tables, tmp_path):
    tables["nucleus_detection_v0"] = tables["nucleus_detection_v0"].drop(columns=["pt_position"])
    with pytest.raises(InputError) as e:
        load_tables(write_tables(tables, tmp_path))
    assert e.value.field == "pt_position" and "pt_position_x" in e.value.expected


def test_missing_synapse_column_is_found_from_the_schema(tables, tmp_path):
    tables["synapses_pni_2"] = tables["synapses_pni_2"].drop(columns=["size"])
    with pytest.raises(InputError) as e:
        load_tables(write_tables(tables, tmp_path))
    assert e.value.path.endswith("synapses_pni_2.parquet") and e.value.field == "size"


@pytest.mark.parametrize("table,column,value", [
    ("coregistration_manual_v4", "session", "four"),
    ("nucleus_detection_v0", "pt_root_id", 1.5),
    ("nucleus_functional_area_assignment", "tag", 3),
])
def test_wrong_dtype_names_file_and_column(tables, tmp_path, table, column, value):
    tables[table][column] = value
    write_tables(tables, tmp_path)
    with pytest.raises(InputError) as e:
        load_tables(tmp_path)
    assert e.value.path.endswith(f"{table}.parquet") and e.value.field == column


def test_root_ids_with_gaps_are_rejected_in_csv(tables, tmp_path):
    tables["aibs_metamodel_celltypes_v661"].loc[2, "pt_root_id"] = None
    write_tables(tables, tmp_path, ext="csv")
    with pytest.raises(InputError) as e:
        load_tables(tmp_path)
    assert e.value.field == "pt_root_id" and "aibs_metamodel_celltypes_v661.csv" in e.value.path


def test_a_non_parquet_file_with_parquet_name_is_an_input_error(tables, tmp_path):
    write_tables(tables, tmp_path)
    tables["proofreading_status_and_strategy"].to_csv(tmp_path / "proofreading_status_and_strategy.parquet")
    with pytest.raises(InputError) as e:
        load_tables(tmp_path)
    assert e.value.path.endswith("proofreading_status_and_strategy.parquet") and e.value.field == "file"


def test_unknown_extension_is_an_input_error(tables, tmp_path):
    p = tmp_path / "nuclei.txt"
    p.write_text("id\n1\n")
    with pytest.raises(InputError) as e:
        load_tables({**tables, "nucleus_detection_v0": p})
    assert e.value.field == "file extension"


def test_duplicate_nucleus_id_is_an_input_error(tables, tmp_path):
    tables["nucleus_detection_v0"].loc[1, "id"] = 11
    write_tables(tables, tmp_path)
    with pytest.raises(InputError) as e:
        load_tables(tmp_path)
    assert e.value.path.endswith("nucleus_detection_v0.parquet") and e.value.field == "id" and "11" in str(e.value)


def test_bad_position_vectors_are_input_errors(tables):
    tables["nucleus_detection_v0"]["pt_position"] = pd.Series([np.array([1, 2])] * 6, dtype=object)
    with pytest.raises(InputError) as e:
        load_tables(tables)
    assert e.value.field == "pt_position" and "3-vectors" in e.value.expected



def test_ragged_position_vectors_are_input_errors(tables):
    tables["nucleus_detection_v0"]["pt_position"] = pd.Series([np.array([1, 2, 3])] * 5 + [np.array([1, 2])],
                                                              dtype=object)
    with pytest.raises(InputError) as e:
        load_tables(tables)
    assert e.value.field == "pt_position"

"""twin.connectome.synapses: streamed counts equal a pandas groupby on the whole table, for every
source kind, any batch size; only the three needed columns are read; memory does not scale."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from twin.connectome.synapses import scanner, synapse_counts
from twin.errors import InputError

PRE_IDS = np.arange(10**17, 10**17 + 12, dtype=np.int64)   # realistic 18-digit root ids
POST_IDS = np.arange(10**17 + 5, 10**17 + 30, dtype=np.int64)


def random_synapses(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.arange(10**17, 10**17 + 60, dtype=np.int64)
    return pd.DataFrame({"id": np.arange(n, dtype=np.int64), "pre_pt_root_id": rng.choice(ids, n),
                         "post_pt_root_id": rng.choice(ids, n), "size": rng.integers(1, 5000, n),
                         "ctr_pt_position_x": rng.integers(0, 10**5, n), "ctr_pt_position_y": rng.integers(0, 10**5, n),
                         "ctr_pt_position_z": rng.integers(0, 10**4, n)})


def expected(df: pd.DataFrame, pre=PRE_IDS, post=POST_IDS) -> pd.DataFrame:
    sel = df[df.pre_pt_root_id.isin(pre) & df.post_pt_root_id.isin(post)]
    g = sel.groupby(["pre_pt_root_id", "post_pt_root_id"], as_index=False).agg(
        n_synapses=("size", "size"), synapse_size_sum=("size", "sum"))
    g["n_synapses"] = g["n_synapses"].astype(np.int64)
    g["synapse_size_sum"] = g["synapse_size_sum"].astype(np.float64)
    return g.reset_index(drop=True)


@pytest.fixture(scope="module")
def syn() -> pd.DataFrame:
    return random_synapses()


def test_parquet_with_many_row_groups_and_small_batches_equals_groupby(syn, tmp_path):
    p = tmp_path / "syn.parquet"
    pq.write_table(pa.Table.from_pandas(syn, preserve_index=False), p, row_group_size=500)
    assert pq.ParquetFile(p).num_row_groups == 40
    for batch_rows in (97, 5000):
        pd.testing.assert_frame_equal(synapse_counts(p, PRE_IDS, POST_IDS, batch_rows=batch_rows), expected(syn))


def test_folder_of_parquet_files_equals_groupby(syn, tmp_path):
    d = tmp_path / "synapses_pni_2"
    d.mkdir()
    for k, part in enumerate(np.array_split(np.arange(len(syn)), 7)):
        syn.iloc[part].to_parquet(d / f"part-{k}.parquet")
    pd.testing.assert_frame_equal(synapse_counts(d, PRE_IDS, POST_IDS, batch_rows=300), expected(syn))


@pytest.mark.parametrize("ext", ["csv", "feather"])
def test_csv_and_feather_equal_groupby(syn, tmp_path, ext):
    p = tmp_path / f"syn.{ext}"
    syn.to_csv(p, index=False) if ext == "csv" else syn.to_feather(p)
    pd.testing.assert_frame_equal(synapse_counts(p, PRE_IDS, POST_IDS, batch_rows=1000), expected(syn))


def test_dataframe_source_equals_groupby_and_none_means_all_ids(syn):
    pd.testing.assert_frame_equal(synapse_counts(syn, PRE_IDS, POST_IDS, batch_rows=333), expected(syn))
    ids = np.unique(syn[["pre_pt_root_id", "post_pt_root_id"]].to_numpy())
    pd.testing.assert_frame_equal(synapse_counts(syn, batch_rows=1000), expected(syn, ids, ids))


def test_no_matching_rows_gives_an_empty_typed_table(syn):
    out = synapse_counts(syn, [1, 2], [3])
    assert len(out) == 0 and out["n_synapses"].dtype == np.int64


def test_scanner_projects_only_the_three_needed_columns(syn, tmp_path):
    p = tmp_path / "syn.parquet"
    syn.to_parquet(p)
    s = scanner(p, PRE_IDS, POST_IDS)
    assert s.projected_schema.names == ["pre_pt_root_id", "post_pt_root_id", "size"]


def test_missing_or_non_integer_root_id_column_is_an_input_error(syn, tmp_path):
    p = tmp_path / "syn.parquet"
    syn.drop(columns=["post_pt_root_id"]).to_parquet(p)
    with pytest.raises(InputError) as e:
        synapse_counts(p, PRE_IDS, POST_IDS)
    assert e.value.field == "post_pt_root_id" and e.value.path == str(p)
    bad = syn.assign(pre_pt_root_id=syn.pre_pt_root_id.astype(str))
    with pytest.raises(InputError) as e:
        synapse_counts(bad, PRE_IDS, POST_IDS)
    assert e.value.field == "pre_pt_root_id"


_PEAK = textwrap.dedent("""
    import json, sys
    import numpy as np, pyarrow as pa
    from twin.connectome.synapses import synapse_counts
    out = synapse_counts(sys.argv[1], np.arange(0, 200), np.arange(0, 2000), batch_rows=int(sys.argv[2]))
    print(json.dumps({"peak": pa.default_memory_pool().max_memory(), "n": int(out.n_synapses.sum())}))
""")


def test_peak_arrow_memory_is_bounded_by_the_batch_not_the_table(tmp_path):
    n, group = 2_000_000, 20_000
    rng = np.random.default_rng(1)
    p = tmp_path / "big.parquet"
    cols = {c: rng.integers(0, 20_000, n) for c in ("pre_pt_root_id", "post_pt_root_id")}
    cols.update({c: rng.integers(0, 10**6, n) for c in ("id", "size", "x", "y", "z")})
    table = pa.table(cols)
    pq.write_table(table, p, row_group_size=group)
    want = int(((cols["pre_pt_root_id"] < 200) & (cols["post_pt_root_id"] < 2000)).sum())
    res = subprocess.run([sys.executable, "-c", _PEAK, str(p), str(group)], capture_output=True, text=True)
    # (once, 2026-12-05, the child died with SIGABRT in a full `make test` and passed on every rerun:
    # show its stderr if it happens again)
    assert res.returncode == 0, f"child exited {res.returncode}: {res.stderr[-3000:]}"
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["n"] == want
    assert got["peak"] < 0.1 * table.nbytes, (got["peak"], table.nbytes)  # table: 112 MB; peak ~3 MB

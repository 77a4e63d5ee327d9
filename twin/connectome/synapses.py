"""Synapse counts per (pre, post) pair from synapse tables too big to load.

The MICrONS synapse table has ~337 million rows. :func:`synapse_counts` reads it through
``pyarrow.dataset``: only three columns (``pre_pt_root_id, post_pt_root_id, size``), rows
filtered at read time by ``isin`` on the wanted root ids inside pyarrow's C++ scanner, streamed
as record batches and aggregated per batch. Memory is bounded by the batch size times the
read-ahead plus the number of distinct pairs found, never by the table (parquet pre-buffering,
which would hold a whole file's column chunks, is switched off). Parquet files or folders,
feather/arrow IPC, CSV and DataFrames go through the same path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from twin.errors import InputError

PRE, POST, SIZE = "pre_pt_root_id", "post_pt_root_id", "size"
COLUMNS = ("pre_pt_root_id", "post_pt_root_id", "n_synapses", "synapse_size_sum")
BATCH_ROWS = 1 << 20
READAHEAD = 2  # batches (and files) read ahead by the scanner: bounds memory at ~3 batches


def as_dataset(source, role_columns: Iterable[str] = (PRE, POST, SIZE)):
    """A ``pyarrow.dataset.Dataset`` over ``source`` (path to a file or folder, a DataFrame, a
    pyarrow Table or Dataset), after checking that it has ``role_columns`` with usable types."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from twin.connectome.tables import open_dataset

    if isinstance(source, ds.Dataset):
        dset, where = source, "<dataset>"
    elif isinstance(source, pd.DataFrame):
        where = "<synapse DataFrame>"
        missing = [c for c in role_columns if c not in source.columns]
        if missing:
            raise InputError(where, missing[0], f"a column '{missing[0]}'", "missing")
        try:
            table = pa.Table.from_pandas(source[list(role_columns)], preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InputError(where, "columns", "numeric root id and size columns", str(e)) from None
        dset = ds.dataset(table)
    elif isinstance(source, pa.Table):
        dset, where = ds.dataset(source), "<arrow table>"
    else:
        where = str(source)
        dset = open_dataset(Path(source))
    schema = dset.schema
    for c in role_columns:
        if c not in schema.names:
            raise InputError(where, c, f"a column '{c}'", "missing")
        t = schema.field(c).type
        numeric = c in (SIZE, "ld_um")
        ok = pa.types.is_integer(t) or (numeric and pa.types.is_floating(t))
        if not ok:
            raise InputError(where, c, "numbers" if numeric else "integer root ids", str(t))
    return dset


def _ids(ids: Iterable[int] | None) -> np.ndarray | None:
    if ids is None:
        return None
    return np.unique(np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), np.int64))


def _id_filter(dset, column: str, ids: np.ndarray | None):
    import pyarrow as pa
    import pyarrow.compute as pc

    if ids is None:
        return None
    t = dset.schema.field(column).type
    return pc.field(column).isin(pa.array(ids, pa.int64()).cast(t, safe=False))


def scanner(source, pre_ids: Iterable[int] | None, post_ids: Iterable[int] | None,
            columns: Iterable[str] = (PRE, POST, SIZE), *, batch_rows: int = BATCH_ROWS,
            readahead: int = READAHEAD):
    """A ``pyarrow.dataset.Scanner`` yielding only ``columns`` of rows whose pre root id is in
    ``pre_ids`` and post root id in ``post_ids`` (None = any), in batches of <= ``batch_rows``."""
    import pyarrow.dataset as ds

    columns = list(columns)
    dset = as_dataset(source, columns)
    filters = [f for f in (_id_filter(dset, PRE, _ids(pre_ids)), _id_filter(dset, POST, _ids(post_ids)))
               if f is not None]
    expr = None
    for f in filters:
        expr = f if expr is None else expr & f
    kw = {}
    if isinstance(getattr(dset, "format", None), ds.ParquetFileFormat):
        # pre-buffering would cache every row group of a file until the file is done: memory ~ table
        kw["fragment_scan_options"] = ds.ParquetFragmentScanOptions(pre_buffer=False)
    return dset.scanner(columns=columns, filter=expr, batch_size=int(batch_rows), batch_readahead=int(readahead),
                        fragment_readahead=int(readahead), use_threads=True, **kw)


class _PairAccumulator:
    """Sums of (count, size) per pair key, compacted so memory stays ~ the number of pairs."""

    def __init__(self, compact_every: int = 1 << 22):
        self.keys: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.sums: list[np.ndarray] = []
        self.pending = 0
        self.compact_every = compact_every

    def add(self, key: np.ndarray, size: np.ndarray) -> None:
        if len(key) == 0:
            return
        uniq, inv = np.unique(key, return_inverse=True)
        self.keys.append(uniq)
        self.counts.append(np.bincount(inv, minlength=len(uniq)).astype(np.int64))
        self.sums.append(np.bincount(inv, weights=size, minlength=len(uniq)))
        self.pending += len(uniq)
        if self.pending > self.compact_every:
            self.compact()

    def compact(self) -> None:
        if len(self.keys) <= 1:
            return
        key = np.concatenate(self.keys)
        uniq, inv = np.unique(key, return_inverse=True)
        self.keys = [uniq]
        self.counts = [np.bincount(inv, weights=np.concatenate(self.counts), minlength=len(uniq)).astype(np.int64)]
        self.sums = [np.bincount(inv, weights=np.concatenate(self.sums), minlength=len(uniq))]
        # compact again only once as many new pairs as are held have arrived
        self.compact_every = max(self.compact_every, 2 * len(uniq))
        self.pending = 0

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.compact()
        if not self.keys:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return self.keys[0], self.counts[0], self.sums[0]


def synapse_counts(source, pre_ids: Iterable[int] | None = None, post_ids: Iterable[int] | None = None, *,
                   batch_rows: int = BATCH_ROWS, readahead: int = READAHEAD, progress: bool = False
                   ) -> pd.DataFrame:
    """Number and summed size of synapses per (pre, post) root-id pair.

    Args:
      source: synapse table: parquet file or folder of parquet files, feather/arrow or CSV file,
        a DataFrame, a pyarrow Table/Dataset; needs ``pre_pt_root_id, post_pt_root_id, size``.
      pre_ids, post_ids: root ids to keep on each side (None = all; then the number of pairs,
        not the table, bounds memory).
      batch_rows: rows per record batch; readahead: batches read ahead (memory ~ their product).
    Returns:
      DataFrame ``pre_pt_root_id, post_pt_root_id`` (int64), ``n_synapses`` (int64),
      ``synapse_size_sum`` (float64, the table's size units), one row per pair with >= 1
      synapse, sorted by (pre, post).
    """
    scan = scanner(source, pre_ids, post_ids, batch_rows=batch_rows, readahead=readahead)
    acc = _PairAccumulator()
    # pair key = pre_code * SPAN + post_code, codes dense over the ids seen (exact, no hashing)
    batches = scan.to_batches()
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="synapses", unit="batch")
    pre_all, post_all = _Encoder(), _Encoder()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pre = batch.column(PRE).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        post = batch.column(POST).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        size = batch.column(SIZE).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        ok = np.isfinite(size)
        if not ok.all():  # a synapse without a size still counts, with size 0 in the sum
            size = np.where(ok, size, 0.0)
        acc.add(pre_all.encode(pre) * _Encoder.SPAN + post_all.encode(post), size)
    key, count, total = acc.result()
    out = pd.DataFrame({PRE: pre_all.decode(key // _Encoder.SPAN), POST: post_all.decode(key % _Encoder.SPAN),
                        "n_synapses": count, "synapse_size_sum": total.astype(np.float64)})
    return out.sort_values([PRE, POST], kind="stable").reset_index(drop=True)


class _Encoder:
    """Dense codes 0..n-1 for int64 ids in order of first appearance (so pair keys fit int64)."""
    SPAN = 1 << 31

    def __init__(self):
        self.ids = np.zeros(0, np.int64)        # id of each code
        self.sorted_ids = np.zeros(0, np.int64)
        self.sorted_codes = np.zeros(0, np.int64)

    def encode(self, x: np.ndarray) -> np.ndarray:
        new = np.setdiff1d(np.unique(x), self.sorted_ids, assume_unique=True)
        if len(new):
            codes = np.arange(len(self.ids), len(self.ids) + len(new))
            if codes[-1] >= self.SPAN:
                raise ValueError("more than 2^31 distinct root ids on one side")
            self.ids = np.concatenate([self.ids, new])
            order = np.argsort(self.ids, kind="stable")
            self.sorted_ids, self.sorted_codes = self.ids[order], order.astype(np.int64)
        return self.sorted_codes[np.searchsorted(self.sorted_ids, x)]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.ids[codes.astype(np.int64)]


def read_filtered(source, pre_ids: Iterable[int] | None, post_ids: Iterable[int] | None,
                  columns: Iterable[str], *, batch_rows: int = BATCH_ROWS) -> pd.DataFrame:
    """The rows of a pair table (e.g. proximity) with pre in ``pre_ids`` and post in
    ``post_ids``, only ``columns``; for tables whose filtered rows fit in memory."""
    table = scanner(source, pre_ids, post_ids, columns, batch_rows=batch_rows).to_table()
    return table.to_pandas()

"""The edge table: one row per (presynaptic, postsynaptic) pair of co-registered neurons.

``build_edge_table`` joins the pieces the like-to-like analysis needs (Ding et al., Nature
2025): pairs (pre = co-registered with a proofread axon, post = every co-registered neuron, pre
!= post), synapse counts and summed sizes (streamed from the synapse table), axon-dendrite
proximity Ld (``proximity`` table, else computed from ``skeletons/*.swc``), areas, layers,
projections, the twin's quality per neuron (metrics.h5) and every pairwise similarity the
functional profile holds (``twin.similarity.pair_similarity``, matched by ``pt_root_id``).
Columns are listed in docs/INTERFACES.md ("Edge table"). String columns are pandas
Categoricals so that 10^7 pairs stay ~1.5 GB in memory.

Pairs are built in blocks of whole presynaptic neurons (~``block_pairs`` pairs each) from
per-neuron arrays and the sparse per-pair inputs (pairs with synapses, pairs with an Ld row):
``build_edge_table`` copies the blocks into one DataFrame, ``write_edge_table`` streams them to
parquet so that its memory is one block, not pre x post.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from twin.connectome.coreg import PROOFREAD_STATUSES, PROOFREAD_STRATEGIES, coregistered_neurons
from twin.connectome.synapses import BATCH_ROWS, read_filtered, synapse_counts
from twin.connectome.tables import ConnectomeTables, load_tables
from twin.errors import InputError

PROJECTIONS = ("V1->V1", "HVA->HVA", "V1->HVA", "HVA->V1")
POPULATIONS = ("connected", "adp", "same_region")
AREAS = ("V1", "LM", "RL", "AL")
LAYERS = ("L2/3", "L4", "L5", "L6")
INVARIANCE = ("phase_invariance", "bipartite_index", "vei_diversity")
CC_ABS_MIN, CC_MAX_MIN = 0.2, 0.4
IN_DOMAIN = "natural_movie"
PROVENANCE_KEY = b"twin.provenance"
ATTRS_KEY = b"twin.attrs"
SIM_CHUNK = 1 << 14  # pairs per pair_similarity gather: (chunk, features) float64 temporaries stay small


def _open_profiles(profiles):
    if profiles is None:
        return None
    if isinstance(profiles, (str, os.PathLike)):
        from twin.similarity import load_profiles
        prof, where = load_profiles(profiles), profiles
    else:
        prof, where = profiles, None
    if "unit" not in prof.dims or "pt_root_id" not in prof.variables or prof["pt_root_id"].dims != ("unit",):
        raise InputError(where, "pt_root_id", "a profile with dim 'unit' and a unit coordinate pt_root_id", "missing")
    return prof


def _open_metrics(metrics):
    if metrics is None or not isinstance(metrics, (str, os.PathLike)):
        return metrics
    from twin.evaluate import open_metrics
    return open_metrics(metrics)


def _unit_coords(ds) -> pd.DataFrame | None:
    """(recording_id, session, scan_idx, unit_id, pt_root_id, area, layer) of a Dataset's units."""
    if ds is None or "unit" not in ds.dims:
        return None
    df = pd.DataFrame({c: np.asarray(ds[c].values) for c in ("recording_id", "session", "scan_idx", "unit_id",
                                                             "pt_root_id", "area", "layer")
                       if c in ds.variables and ds[c].dims == ("unit",)})
    if "recording_id" in df and not {"session", "scan_idx"} <= set(df.columns):
        parts = df["recording_id"].astype(str).str.rsplit("-", n=2, expand=True)
        if parts.shape[1] == 3:
            df["session"] = pd.to_numeric(parts[1], errors="coerce")
            df["scan_idx"] = pd.to_numeric(parts[2], errors="coerce")
    return df


def _recording_map(*frames: pd.DataFrame | None) -> dict[tuple[int, int], str]:
    out: dict[tuple[int, int], str] = {}
    for df in frames:
        if df is None or not {"recording_id", "session", "scan_idx"} <= set(df.columns):
            continue
        for r, s, k in df[["recording_id", "session", "scan_idx"]].dropna().drop_duplicates().itertuples(index=False):
            out.setdefault((int(s), int(k)), str(r))
    return out


def _lookup(df: pd.DataFrame | None, neurons: pd.DataFrame, name: str) -> np.ndarray:
    """Per neuron, ``df[name]`` of the row with the same (recording_id, unit_id), else None."""
    out = np.full(len(neurons), None, object)
    if df is None or name not in df or not {"recording_id", "unit_id"} <= set(df.columns):
        return out
    df = df.drop_duplicates(["recording_id", "unit_id"])
    key = pd.MultiIndex.from_arrays([df["recording_id"].astype(str), df["unit_id"].astype(np.int64)])
    pos = key.get_indexer(pd.MultiIndex.from_arrays([neurons["recording_id"].astype(str),
                                                     neurons["unit_id"].astype(np.int64)]))
    vals = df[name].to_numpy(object)
    out[pos >= 0] = vals[pos[pos >= 0]]
    return out


def _fill(current: np.ndarray, *candidates: np.ndarray) -> np.ndarray:
    out = np.asarray(current, object).copy()
    for c in candidates:
        missing = pd.isna(out)
        out[missing] = c[missing]
    return np.where(pd.isna(out), None, out).astype(object)


def _quality(metrics, neurons: pd.DataFrame, where) -> dict[str, np.ndarray]:
    """Per neuron cc_abs, cc_max (natural_movie entries; NaN if unknown)."""
    out = {}
    if metrics is None:
        return {k: np.full(len(neurons), np.nan) for k in ("cc_abs", "cc_max")}
    coords = _unit_coords(metrics)
    for name in ("cc_abs", "cc_max"):
        if name not in metrics:
            raise InputError(where, name, "a per-unit variable of twin evaluate's metrics.h5", "missing")
        da = metrics[name]
        if "stimulus_type" in da.dims:
            types = [str(t) for t in da["stimulus_type"].values]
            if IN_DOMAIN not in types:
                raise InputError(where, "stimulus_type", f"entries for '{IN_DOMAIN}'", types)
            da = da.isel(stimulus_type=types.index(IN_DOMAIN))
        coords[name] = np.asarray(da.values, np.float64)
        out[name] = pd.to_numeric(pd.Series(_lookup(coords, neurons, name)), errors="coerce").to_numpy(np.float64)
    return out


def _ld_pairs(tables: ConnectomeTables, pre: np.ndarray, post: np.ndarray, radius_um: float
              ) -> tuple[pd.DataFrame, np.ndarray | None, str]:
    """(Ld rows, root ids that have a skeleton or None if all are known, source name)."""
    cols = ["pre_pt_root_id", "post_pt_root_id", "ld_um"]
    if tables.proximity is not None:
        df = read_filtered(tables.proximity, pre, post, cols)
        return df.drop_duplicates(cols[:2]), None, "proximity"
    if tables.skeleton_dir is not None:
        from twin.connectome.proximity import proximity_table, read_skeleton_dir
        skels = read_skeleton_dir(tables.skeleton_dir, tables.skeleton_units, np.union1d(pre, post))
        return proximity_table(skels, pre, post, radius_um), np.array(sorted(skels), np.int64), "skeletons"
    raise InputError(tables.root, "proximity", "a proximity table or a skeletons/ folder of SWC files", "neither")


def _categorical(codes: np.ndarray, categories) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int32), categories=list(categories))


def _codes(values: np.ndarray, categories) -> np.ndarray:
    idx = {c: k for k, c in enumerate(categories)}
    return np.array([idx.get(v, -1) for v in values], np.int32)


BLOCK_PAIRS = 1 << 20  # pairs per block of presynaptic neurons: per-pair temporaries stay ~100 MB


@dataclass
class _Plan:
    """Everything the edge table needs that is per neuron or per connected pair, not per pair."""
    roots: np.ndarray            # co-registered root ids, sorted
    pre_n: np.ndarray            # positions (in roots) of the presynaptic neurons
    codes: dict[str, np.ndarray]  # per neuron: recording, area, layer, group, area x layer codes
    categories: dict[str, list]   # per categorical column
    unit_id: np.ndarray
    syn_key: np.ndarray          # sorted pre_rank * n_post + post position of pairs with synapses
    syn_n: np.ndarray
    syn_size: np.ndarray
    ld_key: np.ndarray           # sorted keys of pairs with an Ld row
    ld_val: np.ndarray
    has_skeleton: np.ndarray | None  # per neuron, when Ld comes from skeletons
    out_degree: np.ndarray       # per neuron position
    quality: dict[str, np.ndarray]
    passes: np.ndarray
    prof: Any
    pidx: np.ndarray             # per neuron, its unit in the profile (-1: none)
    kinds: list[str]
    invariance: dict[str, np.ndarray]  # per neuron
    attrs: dict[str, Any]
    timings: dict[str, float]


def _pair_keys(roots: np.ndarray, pre_rank: np.ndarray, pre_ids: np.ndarray, post_ids: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Grid key (pre rank * n_post + post position) of each root-id pair; mask of pairs in the grid."""
    n_post = len(roots)
    if n_post == 0:
        return np.zeros(0, np.int64), np.zeros(len(pre_ids), bool)
    a = np.minimum(np.searchsorted(roots, pre_ids), n_post - 1)
    b = np.minimum(np.searchsorted(roots, post_ids), n_post - 1)
    ok = (roots[a] == pre_ids) & (roots[b] == post_ids) & (pre_rank[a] >= 0) & (a != b)
    return pre_rank[a[ok]] * n_post + b[ok], ok


def _plan(connectome, profiles, metrics, proofread_strategies, proofread_statuses, radius_um: float,
          batch_rows: int, progress: bool) -> _Plan:
    from twin.provenance import provenance
    from twin.similarity import available_kinds, index_by_root_id

    t0, timings = time.perf_counter(), {}

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        t0 = now

    tables = connectome if isinstance(connectome, ConnectomeTables) else load_tables(connectome)
    prof, met = _open_profiles(profiles), _open_metrics(metrics)
    prof_units, met_units = _unit_coords(prof), _unit_coords(met)
    neurons = coregistered_neurons(tables, strategies=tuple(proofread_strategies),
                                   statuses=tuple(proofread_statuses),
                                   recording_ids=_recording_map(prof_units, met_units))
    roots = neurons["pt_root_id"].to_numpy(np.int64)          # sorted
    pidx = index_by_root_id(prof, roots) if prof is not None else np.full(len(roots), -1)
    from_prof = {}
    for name in ("area", "layer"):
        v = np.full(len(roots), None, object)
        if prof_units is not None and name in prof_units:
            v[pidx >= 0] = prof_units[name].to_numpy(object)[pidx[pidx >= 0]]
        from_prof[name] = v
    area = _fill(neurons["area"].to_numpy(object), from_prof["area"], _lookup(met_units, neurons, "area"))
    layer = _fill(neurons["layer"].to_numpy(object), from_prof["layer"], _lookup(met_units, neurons, "layer"))
    group = np.where(area == "V1", "V1", np.where(np.isin(area, AREAS[1:]), "HVA", None)).astype(object)
    lap("neurons")

    pre_n = np.flatnonzero(neurons["proofread_axon"].to_numpy(bool))   # neuron positions
    n_post = len(roots)
    pre_rank = np.full(n_post, -1, np.int64)
    pre_rank[pre_n] = np.arange(len(pre_n))
    pre_roots = roots[pre_n]
    syn = synapse_counts(tables.synapses, pre_roots, roots, batch_rows=batch_rows, progress=progress)
    syn_key, ok = _pair_keys(roots, pre_rank, syn["pre_pt_root_id"].to_numpy(np.int64),
                             syn["post_pt_root_id"].to_numpy(np.int64))
    order = np.argsort(syn_key, kind="stable")
    syn_key = syn_key[order]
    syn_n = syn["n_synapses"].to_numpy(np.int64)[ok][order]
    syn_size = syn["synapse_size_sum"].to_numpy(np.float64)[ok][order]
    out_degree = np.bincount(pre_n[syn_key // max(n_post, 1)], minlength=n_post) if len(syn_key) else \
        np.zeros(n_post, np.int64)
    del syn
    lap("synapses")

    ld_rows, with_skeleton, ld_source = _ld_pairs(tables, pre_roots, roots, radius_um)
    ld_key, ok = _pair_keys(roots, pre_rank, ld_rows["pre_pt_root_id"].to_numpy(np.int64),
                            ld_rows["post_pt_root_id"].to_numpy(np.int64))
    order = np.argsort(ld_key, kind="stable")
    ld_key, ld_val = ld_key[order], ld_rows["ld_um"].to_numpy(np.float64)[ok][order]
    has_skeleton = np.isin(roots, with_skeleton) if with_skeleton is not None else None
    del ld_rows
    lap("ld")

    group_c, layer_c = _codes(group, ("V1", "HVA")), _codes(layer, LAYERS)
    al_cats = [f"{g} {l}" for g in ("V1", "HVA") for l in LAYERS]
    rec_cats = sorted(set(neurons["recording_id"]))
    codes = {"recording": _codes(neurons["recording_id"].to_numpy(object), rec_cats), "area": _codes(area, AREAS),
             "layer": layer_c, "group": group_c,
             "area_layer": np.where((group_c >= 0) & (layer_c >= 0), group_c * len(LAYERS) + layer_c, -1)}
    categories = {"pre_recording_id": rec_cats, "post_recording_id": rec_cats, "pre_area": list(AREAS),
                  "post_area": list(AREAS), "pre_layer": list(LAYERS), "post_layer": list(LAYERS),
                  "projection": list(PROJECTIONS),
                  "area_layer_projection": [f"{x}->{y}" for x in al_cats for y in al_cats],
                  "population": list(POPULATIONS)}
    q = _quality(met, neurons, metrics)
    passes = (q["cc_max"] > CC_MAX_MIN) & (q["cc_abs"] > CC_ABS_MIN) if met is not None else np.ones(n_post, bool)
    kinds, invariance = [], {}
    if prof is not None:
        kinds = list(available_kinds(prof))
        for name in INVARIANCE:
            if name in prof and prof[name].dims == ("unit",):
                v = np.asarray(prof[name].values, np.float64)
                invariance[name] = np.where(pidx >= 0, v[np.maximum(pidx, 0)], np.nan)

    settings = {"proofread_strategies": list(proofread_strategies), "proofread_statuses": list(proofread_statuses),
                "radius_um": radius_um, "ld_source": ld_source, "n_pre": int(len(pre_n)), "n_post": int(n_post),
                "coregistration": neurons.attrs.get("coregistration", {})}
    inputs = tables.input_paths() + [Path(p) for p in (profiles, metrics) if isinstance(p, (str, os.PathLike))]
    attrs = {"provenance": provenance(settings, inputs), "coregistration": settings["coregistration"]}
    lap("provenance")
    return _Plan(roots=roots, pre_n=pre_n, codes=codes, categories=categories,
                 unit_id=neurons["unit_id"].to_numpy(np.int64), syn_key=syn_key, syn_n=syn_n, syn_size=syn_size,
                 ld_key=ld_key, ld_val=ld_val, has_skeleton=has_skeleton, out_degree=out_degree, quality=q,
                 passes=passes, prof=prof, pidx=pidx, kinds=kinds, invariance=invariance, attrs=attrs,
                 timings=timings)


def _sparse(keys: np.ndarray, values: np.ndarray, grid_key: np.ndarray, fill, dtype) -> np.ndarray:
    """Per grid row, the value of the sorted ``keys`` entry with its key, else ``fill``."""
    out = np.full(len(grid_key), fill, dtype)
    if len(grid_key):
        lo, hi = np.searchsorted(keys, [grid_key[0], grid_key[-1] + 1])
        out[np.searchsorted(grid_key, keys[lo:hi])] = values[lo:hi]
    return out


def _block(plan: _Plan, r0: int, r1: int, chunk_pairs: int) -> dict[str, np.ndarray]:
    """Columns (categoricals as int32 codes) of the pairs whose presynaptic rank is in [r0, r1)."""
    from twin.similarity import pair_similarity

    t0 = time.perf_counter()
    n_post = len(plan.roots)
    ranks = np.arange(r0, r1, dtype=np.int64)
    pre_pos = np.repeat(plan.pre_n[r0:r1], n_post)
    post_pos = np.tile(np.arange(n_post), len(ranks))
    keep = pre_pos != post_pos
    grid_key = (np.repeat(ranks, n_post) * n_post + post_pos)[keep]     # ascending
    pre_pos, post_pos = pre_pos[keep], post_pos[keep]
    del keep
    n_syn = _sparse(plan.syn_key, plan.syn_n, grid_key, 0, np.int64)
    size_sum = _sparse(plan.syn_key, plan.syn_size, grid_key, 0.0, np.float64)
    ld = _sparse(plan.ld_key, plan.ld_val, grid_key, 0.0, np.float64)
    del grid_key
    if plan.has_skeleton is not None:  # pairs missing a skeleton have unknown Ld
        ld[~(plan.has_skeleton[pre_pos] & plan.has_skeleton[post_pos])] = np.nan
    c = plan.codes
    a, b = c["group"][pre_pos], c["group"][post_pos]
    proj_code = np.array([[0, 2], [3, 1]], np.int32)  # [pre group, post group] -> PROJECTIONS index
    projection = np.where((a >= 0) & (b >= 0), proj_code[np.maximum(a, 0), np.maximum(b, 0)], -1)
    a, b = c["area_layer"][pre_pos], c["area_layer"][post_pos]
    n_al = 2 * len(LAYERS)
    cols = {"pre_pt_root_id": plan.roots[pre_pos], "post_pt_root_id": plan.roots[post_pos],
            "pre_recording_id": c["recording"][pre_pos], "pre_unit_id": plan.unit_id[pre_pos],
            "post_recording_id": c["recording"][post_pos], "post_unit_id": plan.unit_id[post_pos],
            "pre_area": c["area"][pre_pos], "post_area": c["area"][post_pos],
            "pre_layer": c["layer"][pre_pos], "post_layer": c["layer"][post_pos],
            "projection": projection, "area_layer_projection": np.where((a >= 0) & (b >= 0), a * n_al + b, -1),
            "population": np.where(n_syn > 0, 0, np.where(ld > 0, 1, np.where(ld == 0, 2, -1))),
            "n_synapses": n_syn, "synapse_size_sum": size_sum,
            "synapse_size_mean": np.where(n_syn > 0, size_sum / np.maximum(n_syn, 1), np.nan), "ld_um": ld}
    del a, b, projection
    for side, pos in (("pre", pre_pos), ("post", post_pos)):
        cols[f"{side}_cc_abs"] = plan.quality["cc_abs"][pos]
        cols[f"{side}_cc_max"] = plan.quality["cc_max"][pos]
    cols["quality_ok"] = plan.passes[pre_pos] & plan.passes[post_pos]
    t1 = time.perf_counter()
    plan.timings["labels"] = round(plan.timings.get("labels", 0.0) + t1 - t0, 3)
    if plan.kinds:
        n = len(pre_pos)
        sims = {k: np.full(n, np.nan) for k in plan.kinds}
        i_all, j_all = plan.pidx[pre_pos], plan.pidx[post_pos]
        for s in range(0, n, chunk_pairs):
            i, j = i_all[s:s + chunk_pairs], j_all[s:s + chunk_pairs]
            valid = (i >= 0) & (j >= 0)
            if valid.any():
                sim = pair_similarity(plan.prof, i[valid], j[valid], plan.kinds, chunk=SIM_CHUNK)
                for k in plan.kinds:
                    sims[k][s:s + chunk_pairs][valid] = sim[k]
        cols.update(sims)
    for name, per in plan.invariance.items():
        cols[f"pre_{name}"], cols[f"post_{name}"] = per[pre_pos], per[post_pos]
    cols["pre_out_degree"] = plan.out_degree[pre_pos].astype(np.int64)
    plan.timings["similarity"] = round(plan.timings.get("similarity", 0.0) + time.perf_counter() - t1, 3)
    return cols


def _frame(plan: _Plan, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame of ``cols``, emptying it (code columns become Categoricals)."""
    df = pd.DataFrame(copy=False, data={
        name: (_categorical(cols.pop(name), plan.categories[name]) if name in plan.categories else cols.pop(name))
        for name in list(cols)})
    df.attrs = {**plan.attrs, "timings_s": dict(plan.timings)}
    return df


def _blocks(plan: _Plan, block_pairs: int, chunk_pairs: int, progress: bool) -> Iterator[dict[str, np.ndarray]]:
    """Column blocks of whole presynaptic neurons, ~``block_pairs`` pairs each (one block if none)."""
    n_pre, n_post = len(plan.pre_n), len(plan.roots)
    step = max(1, block_pairs // max(n_post, 1))
    starts = range(0, max(n_pre, 1), step)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="edge table", unit="block")
    for r0 in starts:
        yield _block(plan, r0, min(r0 + step, n_pre), chunk_pairs)


def build_edge_table(connectome: str | os.PathLike | ConnectomeTables, profiles: Any = None, metrics: Any = None,
                     *, proofread_strategies: Iterable[str] = PROOFREAD_STRATEGIES,
                     proofread_statuses: Iterable[str] = PROOFREAD_STATUSES, radius_um: float = 5.0,
                     batch_rows: int = BATCH_ROWS, chunk_pairs: int = 1 << 20, block_pairs: int = BLOCK_PAIRS,
                     progress: bool = False) -> pd.DataFrame:
    """One row per (pre, post) pair of co-registered neurons (pre has a proofread axon), in memory.

    Args:
      connectome: folder of CAVE tables or a loaded :class:`ConnectomeTables`.
      profiles: functional profile (path to profiles.h5 or xr.Dataset, dim ``unit``) or None
        (no similarity columns). Matched by ``pt_root_id``; neurons missing from it get NaN.
      metrics: twin evaluate's metrics.h5 (path or Dataset) for the quality filter, or None.
      proofread_strategies, proofread_statuses: what counts as a proofread axon.
      radius_um: Ld ball radius when Ld is computed from skeletons (um).
      batch_rows: synapse-table rows per streamed batch; chunk_pairs: pairs per similarity chunk;
      block_pairs: pairs per block of presynaptic neurons (bounds the per-pair temporaries; each
        block is copied into preallocated columns, so the peak is the table plus one block).
    Returns:
      DataFrame sorted by (pre, post) with the contract's columns; ``attrs`` hold
      ``provenance``, ``coregistration`` counts and ``timings_s`` per stage.
    See :func:`write_edge_table` to stream the table to parquet without holding it.
    """
    plan = _plan(connectome, profiles, metrics, proofread_strategies, proofread_statuses, radius_um, batch_rows,
                 progress)
    n_pre = len(plan.pre_n)
    total = n_pre * len(plan.roots) - n_pre      # every pre is also a post; no self pairs
    cols: dict[str, np.ndarray] = {}
    s = 0
    for block in _blocks(plan, block_pairs, chunk_pairs, progress):
        m = len(block["pre_pt_root_id"])
        for name in list(block):
            v = block.pop(name)
            # filled in place: the freed blocks' memory is reused, so the peak is the table + one block
            cols.setdefault(name, np.empty(total, v.dtype))[s:s + m] = v
        s += m
    assert s == total, (s, total)
    return _frame(plan, cols)


def write_edge_table(connectome: str | os.PathLike | ConnectomeTables, path: str | os.PathLike,
                     profiles: Any = None, metrics: Any = None, *,
                     proofread_strategies: Iterable[str] = PROOFREAD_STRATEGIES,
                     proofread_statuses: Iterable[str] = PROOFREAD_STATUSES, radius_um: float = 5.0,
                     batch_rows: int = BATCH_ROWS, chunk_pairs: int = 1 << 20, block_pairs: int = BLOCK_PAIRS,
                     progress: bool = False) -> Path:
    """Build the edge table block by block of presynaptic neurons and stream it to parquet.

    Same table as :func:`build_edge_table` (read it back with :func:`read_edge_table`), but
    only one block of ~``block_pairs`` pairs is held at a time, so memory is bounded by the
    block and the per-neuron / connected-pair inputs, not by pre x post. Written to a temporary
    sibling and renamed on success. Returns ``path``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from twin.io import atomic_path

    plan = _plan(connectome, profiles, metrics, proofread_strategies, proofread_statuses, radius_um, batch_rows,
                 progress)
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = None
        try:
            for cols in _blocks(plan, block_pairs, chunk_pairs, progress):
                df = _frame(plan, cols)
                df.attrs = {}
                table = pa.Table.from_pandas(df, preserve_index=False)
                del df
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                t0 = time.perf_counter()
                writer.write_table(table)
                plan.timings["write"] = round(plan.timings.get("write", 0.0) + time.perf_counter() - t0, 3)
                del table
            writer.add_key_value_metadata(_file_metadata({**plan.attrs, "timings_s": plan.timings}))
        finally:
            if writer is not None:
                writer.close()
    return path


def _file_metadata(attrs: dict[str, Any], provenance: dict | None = None) -> dict[bytes, bytes]:
    """Parquet key-value metadata of an edge table: provenance (``provenance`` or
    ``attrs["provenance"]``) and the other attrs, as JSON (:func:`read_edge_table` reads them)."""
    prov = provenance if provenance is not None else attrs.get("provenance", {})
    extra = {k: v for k, v in attrs.items() if k != "provenance"}
    return {PROVENANCE_KEY: json.dumps(prov, default=str).encode(),
            ATTRS_KEY: json.dumps(extra, default=str).encode()}


def save_edge_table(df: pd.DataFrame, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write the edge table to parquet atomically; provenance (``provenance`` or
    ``df.attrs["provenance"]``) goes into the parquet metadata under ``twin.provenance``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from twin.io import atomic_path

    plain = df.copy(deep=False)
    plain.attrs = {}
    table = pa.Table.from_pandas(plain, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **_file_metadata(df.attrs, provenance)})
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_edge_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read an edge table written by :func:`save_edge_table` or :func:`write_edge_table`
    (provenance and the other attrs back in ``attrs``)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "an edge table (parquet) written by twin", "no such file")
    try:
        pf = pq.ParquetFile(path)
        table = pf.read()
    except Exception as e:
        raise InputError(path, "file", "a readable parquet file", f"{type(e).__name__}: {e}") from None
    # both writers' metadata ends up in the file's key-value metadata (save_edge_table's through the
    # Arrow schema, write_edge_table's added after the last block)
    meta = pf.metadata.metadata or {}
    df = table.to_pandas()
    df.attrs = {**json.loads(meta.get(ATTRS_KEY, b"{}")),
                "provenance": json.loads(meta.get(PROVENANCE_KEY, b"{}"))}
    return df

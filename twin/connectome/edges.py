"""The edge table: one row per (presynaptic, postsynaptic) pair of co-registered neurons.

``build_edge_table`` joins the pieces the like-to-like analysis needs (Ding et al., Nature
2025): pairs (pre = co-registered with a proofread axon, post = every co-registered neuron, pre
!= post), synapse counts and summed sizes (streamed from the synapse table), axon-dendrite
proximity Ld (``proximity`` table, else computed from ``skeletons/*.swc``), areas, layers,
projections, the twin's quality per neuron (metrics.h5) and every pairwise similarity the
functional profile holds (``twin.similarity.pair_similarity``, matched by ``pt_root_id``).
Columns are listed in docs/CONNECTOME_CONTRACT.md ("Edge table"). String columns are pandas
Categoricals so that 10^7 pairs stay ~2 GB.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

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


def build_edge_table(connectome: str | os.PathLike | ConnectomeTables, profiles: Any = None, metrics: Any = None,
                     *, proofread_strategies: Iterable[str] = PROOFREAD_STRATEGIES,
                     proofread_statuses: Iterable[str] = PROOFREAD_STATUSES, radius_um: float = 5.0,
                     batch_rows: int = BATCH_ROWS, chunk_pairs: int = 1 << 20, progress: bool = False
                     ) -> pd.DataFrame:
    """One row per (pre, post) pair of co-registered neurons (pre has a proofread axon).

    Args:
      connectome: folder of CAVE tables or a loaded :class:`ConnectomeTables`.
      profiles: functional profile (path to profiles.h5 or xr.Dataset, dim ``unit``) or None
        (no similarity columns). Matched by ``pt_root_id``; neurons missing from it get NaN.
      metrics: twin evaluate's metrics.h5 (path or Dataset) for the quality filter, or None.
      proofread_strategies, proofread_statuses: what counts as a proofread axon.
      radius_um: Ld ball radius when Ld is computed from skeletons (um).
      batch_rows: synapse-table rows per streamed batch; chunk_pairs: pairs per similarity chunk.
    Returns:
      DataFrame sorted by (pre, post) with the contract's columns; ``attrs`` hold
      ``provenance``, ``coregistration`` counts and ``timings_s`` per stage.
    """
    from twin.provenance import provenance
    from twin.similarity import available_kinds, index_by_root_id, pair_similarity

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
    n_pre, n_post = len(pre_n), len(roots)
    pre_pos = np.repeat(pre_n, n_post)
    post_pos = np.tile(np.arange(n_post), n_pre)
    keep = pre_pos != post_pos
    pre_pos, post_pos = pre_pos[keep], post_pos[keep]
    grid_key = np.repeat(np.arange(n_pre, dtype=np.int64), n_post)[keep] * n_post + post_pos  # ascending
    n = len(pre_pos)
    pre_rank = np.full(n_post, -1, np.int64)
    pre_rank[pre_n] = np.arange(n_pre)

    def rows_of(pre_ids: np.ndarray, post_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of each (pre, post) root-id pair in the grid; mask of pairs that are in it."""
        a = np.searchsorted(roots, pre_ids)
        b = np.searchsorted(roots, post_ids)
        a, b = np.minimum(a, n_post - 1), np.minimum(b, n_post - 1)
        ok = (roots[a] == pre_ids) & (roots[b] == post_ids) & (pre_rank[a] >= 0) & (a != b)
        k = pre_rank[a] * n_post + b
        r = np.searchsorted(grid_key, k[ok])
        return r, ok

    pre_roots = roots[pre_n]
    syn = synapse_counts(tables.synapses, pre_roots, roots, batch_rows=batch_rows, progress=progress)
    n_syn = np.zeros(n, np.int64)
    size_sum = np.zeros(n, np.float64)
    r, ok = rows_of(syn["pre_pt_root_id"].to_numpy(np.int64), syn["post_pt_root_id"].to_numpy(np.int64))
    n_syn[r] = syn["n_synapses"].to_numpy(np.int64)[ok]
    size_sum[r] = syn["synapse_size_sum"].to_numpy(np.float64)[ok]
    lap("synapses")

    ld_rows, with_skeleton, ld_source = _ld_pairs(tables, pre_roots, roots, radius_um)
    ld = np.zeros(n, np.float64)
    if with_skeleton is not None:  # pairs missing a skeleton have unknown Ld
        has = np.isin(roots, with_skeleton)
        ld[~(has[pre_pos] & has[post_pos])] = np.nan
    r, ok = rows_of(ld_rows["pre_pt_root_id"].to_numpy(np.int64), ld_rows["post_pt_root_id"].to_numpy(np.int64))
    ld[r] = ld_rows["ld_um"].to_numpy(np.float64)[ok]
    lap("ld")

    area_c, layer_c = _codes(area, AREAS), _codes(layer, LAYERS)
    group_c = _codes(group, ("V1", "HVA"))
    rec_cats = sorted(set(neurons["recording_id"]))
    rec_c = _codes(neurons["recording_id"].to_numpy(object), rec_cats)
    unit_id = neurons["unit_id"].to_numpy(np.int64)
    proj_code = np.array([[0, 2], [3, 1]], np.int32)  # [pre group, post group] -> PROJECTIONS index
    a, b = group_c[pre_pos], group_c[post_pos]
    both = (a >= 0) & (b >= 0)
    projection = np.where(both, proj_code[np.maximum(a, 0), np.maximum(b, 0)], -1)
    al_cats = [f"{g} {l}" for g in ("V1", "HVA") for l in LAYERS]
    al_c = np.where((group_c >= 0) & (layer_c >= 0), group_c * len(LAYERS) + layer_c, -1)
    a, b = al_c[pre_pos], al_c[post_pos]
    alp = np.where((a >= 0) & (b >= 0), a * len(al_cats) + b, -1)
    population = np.where(n_syn > 0, 0, np.where(ld > 0, 1, np.where(ld == 0, 2, -1)))
    out_degree = np.bincount(pre_pos[n_syn > 0], minlength=n_post)

    df = pd.DataFrame(copy=False, data={
        "pre_pt_root_id": roots[pre_pos], "post_pt_root_id": roots[post_pos],
        "pre_recording_id": _categorical(rec_c[pre_pos], rec_cats), "pre_unit_id": unit_id[pre_pos],
        "post_recording_id": _categorical(rec_c[post_pos], rec_cats), "post_unit_id": unit_id[post_pos],
        "pre_area": _categorical(area_c[pre_pos], AREAS), "post_area": _categorical(area_c[post_pos], AREAS),
        "pre_layer": _categorical(layer_c[pre_pos], LAYERS), "post_layer": _categorical(layer_c[post_pos], LAYERS),
        "projection": _categorical(projection, PROJECTIONS),
        "area_layer_projection": _categorical(alp, [f"{x}->{y}" for x in al_cats for y in al_cats]),
        "population": _categorical(population, POPULATIONS),
        "n_synapses": n_syn, "synapse_size_sum": size_sum,
        "synapse_size_mean": np.where(n_syn > 0, size_sum / np.maximum(n_syn, 1), np.nan), "ld_um": ld,
    })
    df["area_layer_projection"] = df["area_layer_projection"].cat.remove_unused_categories()
    del projection, alp, population, n_syn, size_sum, ld

    q = _quality(met, neurons, metrics)
    for side, pos in (("pre", pre_pos), ("post", post_pos)):
        df[f"{side}_cc_abs"] = q["cc_abs"][pos]
        df[f"{side}_cc_max"] = q["cc_max"][pos]
    passes = (q["cc_max"] > CC_MAX_MIN) & (q["cc_abs"] > CC_ABS_MIN) if met is not None else np.ones(n_post, bool)
    df["quality_ok"] = passes[pre_pos] & passes[post_pos]
    lap("labels")

    if prof is not None:
        kinds = available_kinds(prof)
        cols = {k: np.full(n, np.nan) for k in kinds}
        i_all, j_all = pidx[pre_pos], pidx[post_pos]
        chunks = range(0, n, chunk_pairs)
        if progress:
            from tqdm.auto import tqdm
            chunks = tqdm(chunks, desc="similarity", unit="chunk")
        for s in chunks:
            i, j = i_all[s:s + chunk_pairs], j_all[s:s + chunk_pairs]
            valid = (i >= 0) & (j >= 0)
            if valid.any():
                sim = pair_similarity(prof, i[valid], j[valid], kinds, chunk=SIM_CHUNK)
                for k in kinds:
                    cols[k][s:s + chunk_pairs][valid] = sim[k]
        for k in kinds:
            df[k] = cols[k]
        for name in INVARIANCE:
            if name in prof and prof[name].dims == ("unit",):
                v = np.asarray(prof[name].values, np.float64)
                per = np.where(pidx >= 0, v[np.maximum(pidx, 0)], np.nan)
                df[f"pre_{name}"], df[f"post_{name}"] = per[pre_pos], per[post_pos]
    df["pre_out_degree"] = out_degree[pre_pos].astype(np.int64)
    lap("similarity")

    settings = {"proofread_strategies": list(proofread_strategies), "proofread_statuses": list(proofread_statuses),
                "radius_um": radius_um, "ld_source": ld_source, "n_pre": int(n_pre), "n_post": int(n_post),
                "coregistration": neurons.attrs.get("coregistration", {})}
    inputs = tables.input_paths() + [Path(p) for p in (profiles, metrics) if isinstance(p, (str, os.PathLike))]
    df.attrs["provenance"] = provenance(settings, inputs)
    lap("provenance")
    df.attrs["coregistration"] = settings["coregistration"]
    df.attrs["timings_s"] = timings
    return df


def save_edge_table(df: pd.DataFrame, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write the edge table to parquet atomically; provenance (``provenance`` or
    ``df.attrs["provenance"]``) goes into the parquet metadata under ``twin.provenance``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from twin.io import atomic_path

    prov = provenance if provenance is not None else df.attrs.get("provenance", {})
    extra = {k: v for k, v in df.attrs.items() if k != "provenance"}
    plain = df.copy(deep=False)
    plain.attrs = {}
    table = pa.Table.from_pandas(plain, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, default=str).encode()
    meta[b"twin.attrs"] = json.dumps(extra, default=str).encode()
    table = table.replace_schema_metadata(meta)
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_edge_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read an edge table written by :func:`save_edge_table` (provenance back in ``attrs``)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "an edge table (parquet) written by twin", "no such file")
    try:
        table = pq.read_table(path)
    except Exception as e:
        raise InputError(path, "file", "a readable parquet file", f"{type(e).__name__}: {e}") from None
    meta = table.schema.metadata or {}
    df = table.to_pandas()
    df.attrs = {**json.loads(meta.get(b"twin.attrs", b"{}")),
                "provenance": json.loads(meta.get(PROVENANCE_KEY, b"{}"))}
    return df

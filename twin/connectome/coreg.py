"""Co-registration: which EM cell is which imaged unit, which axons are proofread, area and type.

``coregistration_manual_v4`` matches functional units ``(session, scan_idx, unit_id)`` to EM
cells (``pt_root_id``; its nucleus id comes from ``nucleus_detection_v0``). Two kinds of
ambiguity are resolved here, both by one documented rule, **the best match wins**: highest
``score``, then lowest ``residual`` (um between the functional and EM centroids), then lowest
``(session, scan_idx, field, unit_id)`` so that ties break deterministically:

- a unit matched to several root ids keeps its best row (each dropped root id is a *conflict*);
- a cell imaged in several fields or scans (one root id, several units) keeps its best unit.

The result has one row per root id and one root id per unit.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from twin.errors import InputError

PROOFREAD_STRATEGIES = ("axon_fully_extended", "axon_partially_extended")
PROOFREAD_STATUSES = ("clean", "extended")
HVAS = ("LM", "RL", "AL")
#: excitatory cell type (aibs_metamodel_celltypes_v661) -> layer
LAYER_OF_TYPE = {"23P": "L2/3", "4P": "L4", "5P-IT": "L5", "5P-ET": "L5", "5P-NP": "L5", "5P-PT": "L5",
                 "6P-IT": "L6", "6P-CT": "L6", "6P-U": "L6"}
UNIT_KEY = ("session", "scan_idx", "unit_id")


def proofread_root_ids(proofreading: pd.DataFrame, strategies: Iterable[str] = PROOFREAD_STRATEGIES,
                       statuses: Iterable[str] = PROOFREAD_STATUSES) -> np.ndarray:
    """Sorted unique root ids whose axon is proofread: ``strategy_axon`` in ``strategies`` or
    ``status_axon`` in ``statuses`` (pass ``statuses=()`` to use the strategy alone)."""
    strat = proofreading["strategy_axon"].astype(object).isin(list(strategies))
    stat = proofreading["status_axon"].astype(object).isin(list(statuses))
    ids = proofreading["pt_root_id"].to_numpy(np.int64)[(strat | stat).to_numpy()]
    return np.unique(ids[ids != 0])


def _best_first(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["score", "residual", "session", "scan_idx", "field", "unit_id", "pt_root_id"],
                          ascending=[False, True, True, True, True, True, True], kind="stable",
                          na_position="last")


def resolve_coregistration(coreg: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per root id and per unit from a validated co-registration table.

    Rows with ``pt_root_id == 0`` (no EM match) are dropped. Returns the resolved rows (sorted by
    root id) and counts: ``n_rows``, ``n_unmatched`` (root id 0), ``n_unit_conflicts`` (rows
    dropped because their unit matched a better root id), ``n_multi_field`` (rows dropped
    because their cell was imaged again with a better match), ``n_neurons``.
    """
    n_rows = len(coreg)
    df = coreg[coreg["pt_root_id"] != 0]
    n_unmatched = n_rows - len(df)
    df = _best_first(df)
    # a unit listed twice with the same root id is the same match, not a conflict
    df = df.drop_duplicates(["pt_root_id", *UNIT_KEY])
    by_unit = df.drop_duplicates(list(UNIT_KEY), keep="first")
    n_unit_conflicts = len(df) - len(by_unit)
    by_root = by_unit.drop_duplicates("pt_root_id", keep="first")
    n_multi = len(by_unit) - len(by_root)
    out = by_root.sort_values("pt_root_id", kind="stable").reset_index(drop=True)
    counts = {"n_rows": int(n_rows), "n_unmatched": int(n_unmatched), "n_unit_conflicts": int(n_unit_conflicts),
              "n_multi_field": int(n_multi), "n_neurons": int(len(out))}
    return out, counts


def area_group(area: np.ndarray) -> np.ndarray:
    """"V1" for V1, "HVA" for LM/RL/AL, None otherwise (object array)."""
    a = np.asarray(area, object)
    return np.where(a == "V1", "V1", np.where(np.isin(a, HVAS), "HVA", None)).astype(object)


def layer_from_cell_type(cell_type: np.ndarray) -> np.ndarray:
    """Layer of excitatory cell types (23P -> L2/3, 4P -> L4, 5P-* -> L5, 6P-* -> L6); None for
    inhibitory, non-neuronal or unknown types (their layer must come from elsewhere)."""
    out = np.full(len(cell_type), None, object)
    for k, t in enumerate(np.asarray(cell_type, object)):
        if isinstance(t, str):
            out[k] = LAYER_OF_TYPE.get(t) or ("L5" if t.startswith("5P") else "L6" if t.startswith("6P") else None)
    return out


def _one_per_root(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    d = df[df["pt_root_id"] != 0]
    return d.drop_duplicates("pt_root_id", keep="first").set_index("pt_root_id")[cols]


def coregistered_neurons(tables, *, strategies: Iterable[str] = PROOFREAD_STRATEGIES,
                         statuses: Iterable[str] = PROOFREAD_STATUSES,
                         recording_ids: Mapping[tuple[int, int], str] | None = None,
                         animal_id: str | int | None = None) -> pd.DataFrame:
    """The co-registered neurons with everything the edge table needs, one row per root id.

    Args:
      tables: a :class:`twin.connectome.tables.ConnectomeTables`.
      strategies, statuses: what counts as a proofread axon (see :func:`proofread_root_ids`).
      recording_ids: ``(session, scan_idx) -> recording_id`` (e.g. from the profile's or the
        metrics' unit coords); scans not in it get ``"<animal_id>-<session>-<scan_idx>"``
        (``animal_id`` "unknown" if not given).
    Returns:
      DataFrame sorted by ``pt_root_id`` with columns pt_root_id, nucleus_id (0 if unknown),
      session, scan_idx, unit_id, field, residual, score, recording_id, area (V1/LM/RL/AL or
      None), area_group (V1/HVA/None), classification_system, cell_type, layer (from the
      excitatory cell type, else None), proofread_axon (bool). ``attrs["coregistration"]`` holds
      the counts of :func:`resolve_coregistration`.
    """
    neurons, counts = resolve_coregistration(tables.coregistration)
    roots = neurons["pt_root_id"].to_numpy(np.int64)
    nuc = _one_per_root(tables.nuclei, ["id"])["id"]
    neurons["nucleus_id"] = nuc.reindex(roots).fillna(0).to_numpy(np.int64)
    areas = _one_per_root(tables.areas, ["tag"])["tag"].reindex(roots).to_numpy(object)
    neurons["area"] = np.where(pd.isna(areas), None, areas).astype(object)
    neurons["area_group"] = area_group(neurons["area"].to_numpy(object))
    types = _one_per_root(tables.cell_types, ["classification_system", "cell_type"]).reindex(roots)
    for c in ("classification_system", "cell_type"):
        v = types[c].to_numpy(object)
        neurons[c] = np.where(pd.isna(v), None, v).astype(object)
    neurons["layer"] = layer_from_cell_type(neurons["cell_type"].to_numpy(object))
    neurons["proofread_axon"] = np.isin(roots, proofread_root_ids(tables.proofreading, strategies, statuses))
    rec = dict(recording_ids or {})
    animal = "unknown" if animal_id is None else animal_id
    neurons["recording_id"] = [rec.get((int(s), int(k)), f"{animal}-{int(s)}-{int(k)}")
                               for s, k in zip(neurons["session"], neurons["scan_idx"])]
    keep = ["pt_root_id", "nucleus_id", "session", "scan_idx", "unit_id", "field", "residual", "score",
            "recording_id", "area", "area_group", "classification_system", "cell_type", "layer", "proofread_axon"]
    out = neurons[keep].reset_index(drop=True)
    out.attrs["coregistration"] = counts
    return out


def lookup_root_ids(neurons: pd.DataFrame, session, scan_idx, unit_id) -> np.ndarray:
    """Root id of each unit ``(session[k], scan_idx[k], unit_id[k])`` (0 if not co-registered).
    ``neurons`` from :func:`coregistered_neurons`; arrays of equal length."""
    key = pd.MultiIndex.from_frame(neurons[list(UNIT_KEY)].astype(np.int64))
    want = pd.MultiIndex.from_arrays([np.asarray(session, np.int64), np.asarray(scan_idx, np.int64),
                                      np.asarray(unit_id, np.int64)])
    pos = key.get_indexer(want)
    roots = neurons["pt_root_id"].to_numpy(np.int64)
    return np.where(pos >= 0, roots[np.maximum(pos, 0)], 0)


def lookup_units(neurons: pd.DataFrame, root_ids) -> pd.DataFrame:
    """The unit (session, scan_idx, unit_id, recording_id, nucleus_id) of each root id; rows of
    unknown root ids are missing values. Index: the given root ids, in order."""
    root_ids = np.asarray(root_ids, np.int64)
    if neurons["pt_root_id"].duplicated().any():
        raise InputError(None, "pt_root_id", "one row per root id (use coregistered_neurons)", "duplicates")
    return neurons.set_index("pt_root_id")[["session", "scan_idx", "unit_id", "recording_id", "nucleus_id"]] \
        .reindex(root_ids)

"""twin.connectome: CAVE tables, co-registration, synapse counts, axon-dendrite proximity and the
edge table of the like-to-like analysis.

Public API (imported lazily, so ``import twin.connectome`` loads no pandas/pyarrow):

    load_tables(source, *, names=None, skeleton_units="um") -> ConnectomeTables
    coregistered_neurons(tables, *, strategies, statuses, recording_ids, animal_id) -> DataFrame
    proofread_root_ids(proofreading, strategies, statuses) -> ndarray
    resolve_coregistration(coreg) -> (DataFrame, counts)
    synapse_counts(source, pre_ids, post_ids, *, batch_rows, readahead, progress) -> DataFrame
    build_edge_table(connectome, profiles, metrics=None, *, ...) -> DataFrame
    write_edge_table(connectome, path, profiles, metrics=None, *, block_pairs, ...) -> Path  (streamed)
    save_edge_table(df, path, provenance=None) -> Path;  read_edge_table(path) -> DataFrame
    proximity_table, read_swc, write_swc, read_skeleton_dir, Skeleton   (twin.connectome.proximity)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConnectomeTables": "tables", "load_tables": "tables", "validate_table": "tables", "TABLES": "tables",
    "coregistered_neurons": "coreg", "proofread_root_ids": "coreg", "resolve_coregistration": "coreg",
    "lookup_root_ids": "coreg", "lookup_units": "coreg",
    "PROOFREAD_STRATEGIES": "coreg", "PROOFREAD_STATUSES": "coreg",
    "synapse_counts": "synapses",
    "build_edge_table": "edges", "write_edge_table": "edges", "save_edge_table": "edges", "read_edge_table": "edges",
    "PROJECTIONS": "edges", "POPULATIONS": "edges",
    "Skeleton": "proximity", "proximity_table": "proximity", "read_swc": "proximity", "write_swc": "proximity",
    "read_skeleton_dir": "proximity", "cut_edges": "proximity",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'twin.connectome' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"twin.connectome.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""Load and validate the CAVE tables the connectome analysis needs.

Tables arrive as a folder holding one file per table (``<table name>.parquet``, ``.feather``,
``.arrow`` or ``.csv``; the synapse table may also be a folder of parquet files), as explicit
file paths, or as pandas DataFrames (what ``caveclient`` returns). Each small table is read
whole and checked: required columns (FORMATS.md), dtypes, unique ids. The synapse table can hold
hundreds of millions of rows, so it is never loaded: only its schema is checked here and
:func:`twin.connectome.synapses.synapse_counts` streams it.

Positions (voxels of 4 x 4 x 40 nm) may be one column of 3-vectors (``pt_position``: lists,
arrays or strings like ``"[1 2 3]"``) or split columns ``pt_position_x/_y/_z``; both are
normalised to the split form, float64.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Union

import numpy as np
import pandas as pd

from twin.errors import InputError

#: role -> default CAVE table name
TABLES = {"synapses": "synapses_pni_2", "nuclei": "nucleus_detection_v0",
          "coregistration": "coregistration_manual_v4", "cell_types": "aibs_metamodel_celltypes_v661",
          "areas": "nucleus_functional_area_assignment", "proofreading": "proofreading_status_and_strategy"}
PROXIMITY = "proximity"

#: role -> {column: kind}; kinds: "int" (integer ids), "number", "str", "position" (3-vector)
REQUIRED: dict[str, dict[str, str]] = {
    "synapses": {"id": "int", "pre_pt_root_id": "int", "post_pt_root_id": "int", "size": "number",
                 "ctr_pt_position": "position"},
    "nuclei": {"id": "int", "pt_root_id": "int", "pt_position": "position"},
    "coregistration": {"id": "int", "pt_root_id": "int", "pt_position": "position", "session": "int",
                       "scan_idx": "int", "unit_id": "int", "field": "int", "residual": "number",
                       "score": "number"},
    "cell_types": {"pt_root_id": "int", "classification_system": "str", "cell_type": "str"},
    "areas": {"target_id": "int", "pt_root_id": "int", "tag": "str", "value": "number"},
    "proofreading": {"pt_root_id": "int", "valid_id": "int", "status_dendrite": "str",
                     "status_axon": "str", "strategy_dendrite": "str", "strategy_axon": "str"},
    PROXIMITY: {"pre_pt_root_id": "int", "post_pt_root_id": "int", "ld_um": "number"},
}
#: role -> columns whose values must be unique
UNIQUE = {"nuclei": ("id",), "areas": ("target_id",)}
EXTENSIONS = (".parquet", ".feather", ".arrow", ".csv", ".csv.gz")
_AXES = ("x", "y", "z")

TableSource = Union[str, os.PathLike, pd.DataFrame]


@dataclass(frozen=True)
class ConnectomeTables:
    """The validated CAVE tables of one connectome.

    Small tables are DataFrames with positions split into ``<name>_x/_y/_z`` (float64, voxels).
    ``synapses`` stays a path (file or folder, read lazily by ``synapse_counts``) unless it was
    given as a DataFrame. ``proximity`` (pre_pt_root_id, post_pt_root_id, ld_um) and
    ``skeleton_dir`` (``<pt_root_id>.swc``) are the optional sources of Ld. ``sources`` maps
    each table name to where it came from (a path, or ``"<DataFrame>"``).
    """
    nuclei: pd.DataFrame
    coregistration: pd.DataFrame
    cell_types: pd.DataFrame
    areas: pd.DataFrame
    proofreading: pd.DataFrame
    synapses: Path | pd.DataFrame
    proximity: Path | pd.DataFrame | None = None
    skeleton_dir: Path | None = None
    skeleton_units: str = "um"
    root: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def input_paths(self) -> list[Path]:
        """Every file/folder the tables were read from (for provenance)."""
        paths = [Path(s) for s in self.sources.values() if s != "<DataFrame>"]
        if self.skeleton_dir is not None and self.proximity is None:
            paths.append(self.skeleton_dir)
        return paths


# ---------------------------------------------------------------- finding and reading files
def find_table(folder: Path, name: str) -> Path | None:
    """``folder/<name>.<ext>`` for the first extension in ``EXTENSIONS`` that exists, or the
    folder ``folder/<name>/`` (a parquet dataset); None if there is none."""
    for ext in EXTENSIONS:
        p = folder / f"{name}{ext}"
        if p.is_file():
            return p
    p = folder / name
    return p if p.is_dir() else None


def file_format(path: Path) -> str:
    """pyarrow.dataset format name of a table file or folder: parquet, feather (ipc) or csv."""
    path = Path(path)
    if path.is_dir():
        exts = {_ext(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))}
        exts.discard("")
        if len(exts) != 1:
            raise InputError(path, "files", "a folder of table files of one format (e.g. *.parquet)",
                             sorted(exts) or "no files")
        return _FORMATS[exts.pop()]
    ext = _ext(path)
    if ext not in _FORMATS:
        raise InputError(path, "file extension", "one of " + ", ".join(EXTENSIONS), ext or "none")
    return _FORMATS[ext]


_FORMATS = {".parquet": "parquet", ".feather": "ipc", ".arrow": "ipc", ".csv": "csv", ".csv.gz": "csv"}


def _ext(path: Path) -> str:
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix.lower()


def open_dataset(path: str | os.PathLike):
    """A ``pyarrow.dataset.Dataset`` over a table file or folder (reads no rows)."""
    import pyarrow.dataset as ds

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file", "an existing table file", "no such file")
    fmt = file_format(path)
    try:
        return ds.dataset(path, format=fmt)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a file of another format
        raise InputError(path, "file", f"a readable {fmt if fmt != 'ipc' else 'feather'} table",
                         f"{type(e).__name__}: {e}") from None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a whole (small) table file into a DataFrame."""
    path = Path(path)
    dset = open_dataset(path)
    try:
        return dset.to_table().to_pandas()
    except Exception as e:
        raise InputError(path, "file", "a readable table", f"{type(e).__name__}: {e}") from None


# ---------------------------------------------------------------- validation
def _kind_ok(s: pd.Series, kind: str) -> bool:
    if kind == "int":
        return pd.api.types.is_integer_dtype(s.dtype)
    if kind == "number":
        return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
    if kind == "str":
        return (pd.api.types.is_string_dtype(s.dtype) or isinstance(s.dtype, pd.CategoricalDtype)
                or s.isna().all())
    raise ValueError(kind)


_EXPECTED = {"int": "integer values (int64)", "number": "numbers", "str": "strings"}


def _split_position(df: pd.DataFrame, name: str, where: str) -> pd.DataFrame:
    """Replace a 3-vector column ``name`` by ``name_x/_y/_z`` float64 (or check the split ones)."""
    split = [f"{name}_{a}" for a in _AXES]
    if all(c in df.columns for c in split):
        for c in split:
            if not _kind_ok(df[c], "number"):
                raise InputError(where, c, "numbers (voxel coordinates)", str(df[c].dtype))
        out = df.copy()
        for c in split:
            out[c] = out[c].astype(np.float64)
        return out.drop(columns=[name], errors="ignore")
    if name not in df.columns:
        raise InputError(where, name, f"a column of 3-vectors or columns {', '.join(split)}", "missing")
    values = df[name].to_numpy(object)
    try:
        if len(values) and not isinstance(values[0], str):
            try:  # fast path: a column of equal-length arrays or lists
                xyz = np.stack([np.asarray(v, np.float64).ravel() for v in values])
            except ValueError:  # ragged vectors: report below
                xyz = np.array([_vector(v) for v in values], object)
        else:
            xyz = np.array([_vector(v) for v in values], np.float64).reshape(len(values), -1)
        if xyz.dtype == object:
            raise ValueError("ragged")
    except (TypeError, ValueError):
        raise InputError(where, name, "3-vectors of numbers", repr(values[0]) if len(values) else "?") from None
    if len(values) and xyz.shape[1] != 3:
        raise InputError(where, name, "3-vectors", f"vectors of length {xyz.shape[1]}")
    out = df.drop(columns=[name])
    for k, c in enumerate(split):
        out[c] = xyz[:, k] if len(values) else np.zeros(0)
    return out


def _vector(v) -> list[float]:
    if isinstance(v, str):
        return [float(t) for t in re.split(r"[\s,;]+", v.strip().strip("[]()").strip()) if t]
    return list(np.asarray(v, np.float64).ravel())


def validate_table(df: pd.DataFrame, role: str, where: str | os.PathLike | None = None) -> pd.DataFrame:
    """Check ``df`` against the columns of table ``role`` (see ``REQUIRED``) and return a clean copy.

    Ints become int64, strings stay objects, positions become ``<name>_x/_y/_z`` float64.
    Raises InputError(where, column, expected, got) for a missing column, a wrong dtype or a
    duplicate id.
    """
    where = str(where) if where is not None else f"<{TABLES.get(role, role)} DataFrame>"
    if not isinstance(df, pd.DataFrame):
        raise InputError(where, "table", "a pandas DataFrame", type(df).__name__)
    out = df.reset_index(drop=True)
    for col, kind in REQUIRED[role].items():
        if kind == "position":
            out = _split_position(out, col, where)
            continue
        if col not in out.columns:
            raise InputError(where, col, f"a column '{col}' of {_EXPECTED[kind]}", "missing")
        if not _kind_ok(out[col], kind):
            raise InputError(where, col, _EXPECTED[kind], str(out[col].dtype))
        if kind == "int":
            if out[col].isna().any():
                raise InputError(where, col, "integer values without gaps", "missing values")
            out[col] = out[col].astype(np.int64)
        elif kind == "str" and isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object)
    for col in UNIQUE.get(role, ()):
        dup = out[col].duplicated()
        if dup.any():
            raise InputError(where, col, "unique ids", f"duplicate id {int(out[col][dup].iloc[0])}")
    return out


def validate_schema(schema, role: str, where: str | os.PathLike) -> None:
    """Check a pyarrow schema (a big table that is not loaded) for ``role``'s columns and types."""
    import pyarrow as pa

    names = set(schema.names)
    for col, kind in REQUIRED[role].items():
        if kind == "position":
            if col not in names and not all(f"{col}_{a}" in names for a in _AXES):
                raise InputError(where, col, f"a column of 3-vectors or columns {col}_x/_y/_z", "missing")
            continue
        if col not in names:
            raise InputError(where, col, f"a column '{col}' of {_EXPECTED[kind]}", "missing")
        t = schema.field(col).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        ok = {"int": pa.types.is_integer(t),
              "number": pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t),
              "str": pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)}[kind]
        if not ok:
            raise InputError(where, col, _EXPECTED[kind], str(t))


# ---------------------------------------------------------------- the loader
def load_tables(source: str | os.PathLike | Mapping[str, TableSource], *,
                names: Mapping[str, str] | None = None, skeleton_units: str = "um") -> ConnectomeTables:
    """Load and validate the CAVE tables.

    Args:
      source: a folder holding ``<table name>.<ext>`` per table (plus optional
        ``proximity.<ext>`` and ``skeletons/``), or a mapping from table name (or role:
        synapses, nuclei, coregistration, cell_types, areas, proofreading, proximity,
        skeletons) to a file path or a DataFrame.
      names: role -> table name, to override ``TABLES`` (e.g. another materialisation's names).
      skeleton_units: "um" or "nm", the units of the SWC files.
    Raises:
      InputError naming the file (or table) and column for anything missing or malformed.
    """
    tabs = {**TABLES, **(names or {})}
    root: Path | None = None
    given: dict[str, TableSource] = {}
    skel: Path | None = None
    if isinstance(source, Mapping):
        by_name = {v: k for k, v in tabs.items()}
        for key, value in source.items():
            role = by_name.get(key, key)
            if role == "skeletons":
                skel = Path(value)
            elif role in REQUIRED:
                given[role] = value
            else:
                raise InputError(None, f"table '{key}'", "one of " + ", ".join([*tabs.values(), PROXIMITY]),
                                 "an unknown table name")
    else:
        root = Path(source)
        if not root.is_dir():
            raise InputError(root, "connectome", "a folder of CAVE table files", "no such folder")
        for role, name in [*tabs.items(), (PROXIMITY, PROXIMITY)]:
            p = find_table(root, name)
            if p is not None:
                given[role] = p
        if (root / "skeletons").is_dir():
            skel = root / "skeletons"
    for role, name in tabs.items():
        if role not in given:
            where = root / f"{name}.parquet" if root is not None else None
            raise InputError(where, f"table '{name}'", f"a {name} table (.parquet, .feather or .csv)", "missing")

    loaded: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    for role in ("nuclei", "coregistration", "cell_types", "areas", "proofreading"):
        value = given[role]
        if isinstance(value, pd.DataFrame):
            loaded[role] = validate_table(value, role, f"<{tabs[role]} DataFrame>")
            sources[tabs[role]] = "<DataFrame>"
        else:
            loaded[role] = validate_table(read_table(value), role, value)
            sources[tabs[role]] = str(value)
    synapses = _lazy(given["synapses"], "synapses", tabs["synapses"], sources)
    proximity = _lazy(given[PROXIMITY], PROXIMITY, PROXIMITY, sources) if PROXIMITY in given else None
    if skel is not None and not skel.is_dir():
        raise InputError(skel, "skeletons", "a folder of <pt_root_id>.swc files", "no such folder")
    return ConnectomeTables(synapses=synapses, proximity=proximity, skeleton_dir=skel,
                            skeleton_units=skeleton_units, root=root, sources=sources, **loaded)


def _lazy(value: TableSource, role: str, name: str, sources: dict[str, str]) -> Path | pd.DataFrame:
    """A big table: check a DataFrame's columns, or a file's schema without reading rows."""
    if isinstance(value, pd.DataFrame):
        sources[name] = "<DataFrame>"
        if role == PROXIMITY:
            return validate_table(value, role, f"<{name} DataFrame>")
        return _check_frame(value, role, name)
    path = Path(value)
    validate_schema(open_dataset(path).schema, role, path)
    sources[name] = str(path)
    return path


def _check_frame(df: pd.DataFrame, role: str, name: str) -> pd.DataFrame:
    import pyarrow as pa

    where = f"<{name} DataFrame>"
    cols = [c for c in df.columns if c in REQUIRED[role] or any(c == f"{k}_{a}" for k in REQUIRED[role] for a in _AXES)]
    try:
        schema = pa.Schema.from_pandas(df[cols].head(0), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InputError(where, "columns", "arrow-compatible columns", str(e)) from None
    validate_schema(schema, role, where)
    return df

"""A hand-built 5-neuron connectome (CAVE tables as DataFrames) and writers to files.

Neurons (root id: area, cell type, unit (session, scan, unit), axon):
  101: V1 23P (4,7,1) axon_fully_extended      102: V1 4P  (4,7,2) not proofread
  103: LM 23P (4,7,3) status_axon "extended"   104: AL 5P-IT (4,7,4) and (4,8,5): imaged twice
  105: V1 BC  (4,7,6) not proofread (inhibitory: layer comes from metrics)
Non-co-registered root ids 900, 901, 106 (106 loses the unit (4,7,2) to 102).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

ROOTS = [101, 102, 103, 104, 105]


def _vec(rows):
    return pd.Series([np.array(r, np.int64) for r in rows], dtype=object)


def tiny_tables() -> dict[str, pd.DataFrame]:
    """CAVE tables (positions as one column of 3-vectors), keyed by table name."""
    nuclei = pd.DataFrame({"id": [11, 12, 13, 14, 15, 16], "pt_root_id": [101, 102, 103, 104, 105, 106]})
    nuclei["pt_position"] = _vec([[k, 2 * k, 3 * k] for k in range(6)])
    coreg = pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6, 7, 8],
        "pt_root_id": [101, 102, 106, 103, 104, 104, 105, 0],
        "session": [4] * 8, "scan_idx": [7, 7, 7, 7, 7, 8, 7, 7],
        "unit_id": [1, 2, 2, 3, 4, 5, 6, 9], "field": [1, 1, 1, 1, 1, 2, 1, 1],
        "residual": [2.0, 1.0, 0.5, 3.0, 3.0, 1.0, 2.0, 1.0],
        "score": [0.9, 0.9, 0.2, 0.8, 0.9, 0.5, 0.7, 0.1]})
    coreg["pt_position"] = _vec([[k, k, k] for k in range(8)])
    types = pd.DataFrame({"pt_root_id": ROOTS,
                          "classification_system": ["excitatory_neuron"] * 4 + ["inhibitory_neuron"],
                          "cell_type": ["23P", "4P", "23P", "5P-IT", "BC"]})
    areas = pd.DataFrame({"target_id": [11, 12, 13, 14, 15], "pt_root_id": ROOTS,
                          "tag": ["V1", "V1", "LM", "AL", "V1"], "value": [10.0, 20, 30, 40, 50]})
    proof = pd.DataFrame({"pt_root_id": ROOTS, "valid_id": ROOTS,
                          "status_dendrite": ["extended"] * 5,
                          "status_axon": ["non", "non", "extended", "non", "non"],
                          "strategy_dendrite": ["dendrite_extended"] * 5,
                          "strategy_axon": ["axon_fully_extended", "none", "none", "axon_interareal", "none"]})
    pairs = ([(101, 102, s) for s in (10, 20, 30)] + [(101, 103, 5), (103, 101, 7), (103, 101, 9)]
             + [(102, 101, 1)] * 4 + [(101, 101, 3), (101, 900, 2), (101, 900, 2), (900, 101, 1), (901, 902, 1)])
    syn = pd.DataFrame(pairs, columns=["pre_pt_root_id", "post_pt_root_id", "size"])
    syn.insert(0, "id", np.arange(len(syn), dtype=np.int64) + 1000)
    syn["ctr_pt_position"] = _vec([[k, k + 1, k + 2] for k in range(len(syn))])
    prox = pd.DataFrame([(101, 102, 12.0), (101, 104, 3.5), (103, 101, 8.0), (103, 105, 2.0),
                         (102, 101, 5.0), (101, 900, 1.0)], columns=["pre_pt_root_id", "post_pt_root_id", "ld_um"])
    return {"nucleus_detection_v0": nuclei, "coregistration_manual_v4": coreg,
            "aibs_metamodel_celltypes_v661": types, "nucleus_functional_area_assignment": areas,
            "proofreading_status_and_strategy": proof, "synapses_pni_2": syn, "proximity": prox}


def split_positions(df: pd.DataFrame) -> pd.DataFrame:
    """The same table with every 3-vector column split into _x/_y/_z columns."""
    out = df.copy()
    for c in [c for c in df.columns if c.endswith("position")]:
        xyz = np.stack(df[c].to_numpy())
        out = out.drop(columns=[c])
        for k, a in enumerate("xyz"):
            out[f"{c}_{a}"] = xyz[:, k]
    return out


def write_tables(tables: dict[str, pd.DataFrame], folder: Path, ext: str = "parquet",
                 split: bool = False) -> Path:
    """Write each table as ``folder/<name>.<ext>`` (CSV stores 3-vectors as "[x y z]" text)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df = split_positions(df) if split else df
        p = folder / f"{name}.{ext}"
        if ext == "parquet":
            df.to_parquet(p)
        elif ext == "feather":
            df.to_feather(p)
        else:
            df.to_csv(p, index=False)
    return folder


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return tiny_tables()


def tiny_profiles(seed: int = 0) -> xr.Dataset:
    """Profiles of 101..104 (105 missing), recording 17797-4-7, plus an unrelated unit."""
    rng = np.random.default_rng(seed)
    roots = np.array([104, 101, 0, 102, 103])
    n = len(roots)
    return xr.Dataset(
        {"signal_response": (("unit", "sample"), rng.normal(size=(n, 20))),
         "rf_center": (("unit", "axis"), rng.normal(size=(n, 2))),
         "pref_ori": ("unit", rng.uniform(0, 180, n)),
         "phase_invariance": ("unit", rng.uniform(0, 1, n))},
        coords={"pt_root_id": ("unit", roots), "unit_id": ("unit", np.array([4, 1, 8, 2, 3])),
                "session": ("unit", np.full(n, 4)), "scan_idx": ("unit", np.full(n, 7)),
                "recording_id": ("unit", np.array(["17797-4-7"] * n, object))})


def tiny_metrics() -> xr.Dataset:
    """cc_abs/cc_max per unit (natural_movie; 104 fails CC_max, the gabor column is junk)."""
    unit_id = np.array([1, 2, 3, 4, 6])
    cc_max = np.array([[0.9, -1], [0.8, -1], [0.7, -1], [0.3, -1], [0.6, -1]])
    cc_abs = np.array([[0.5, -1], [0.4, -1], [0.3, -1], [0.25, -1], [0.45, -1]])
    return xr.Dataset(
        {"cc_abs": (("unit", "stimulus_type"), cc_abs), "cc_max": (("unit", "stimulus_type"), cc_max)},
        coords={"unit_id": ("unit", unit_id), "recording_id": ("unit", np.array(["17797-4-7"] * 5, object)),
                "layer": ("unit", np.array(["L2/3", "L4", "L2/3", "L5", "L6"], object)),
                "stimulus_type": ["natural_movie", "gabor"]})

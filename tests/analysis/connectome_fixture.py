"""A small CAVE-schema connectome with planted like-to-like wiring, its profiles and metrics.

60 co-registered neurons (30 V1, 30 HVA; layers from cell types), 24 with proofread axons; every
pre/post pair gets Ld > 0 with probability 0.7 (lognormal, um) and Poisson(Ld exp(a + beta *
signal correlation)) synapses, signal correlation computed from the profiles' responses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from twin.similarity import pair_similarity, save_profiles

REC = "17797-4-7"


def _vec(rows) -> pd.Series:
    return pd.Series([np.asarray(r, np.int64) for r in rows], dtype=object)


def write_connectome(root: Path, seed: int = 0, beta: float = 3.0, n: int = 60, n_pre: int = 24
                     ) -> tuple[Path, Path, Path]:
    """Write ``root/connectome/*.parquet``, ``root/profiles.h5``, ``root/metrics.h5``; return them."""
    rng = np.random.default_rng(seed)
    roots = np.arange(n, dtype=np.int64) + 1000
    area = np.where(np.arange(n) < n // 2, "V1", np.array(["LM", "RL", "AL"])[np.arange(n) % 3])
    cell_type = np.array(["23P", "4P", "5P-IT"])[rng.integers(0, 3, n)]
    pre_idx = np.r_[np.arange(n_pre // 2), n // 2 + np.arange(n_pre // 2)]
    basis = rng.normal(size=(4, 40))
    resp = rng.normal(size=(n, 4)) @ basis + 1.5 * rng.normal(size=(n, 40))
    prof = xr.Dataset({"signal_response": (("unit", "sample"), resp),
                       "phase_invariance": ("unit", rng.uniform(0, 1, n))},
                      coords={"pt_root_id": ("unit", roots), "unit_id": ("unit", np.arange(n) + 1),
                              "session": ("unit", np.full(n, 4)), "scan_idx": ("unit", np.full(n, 7)),
                              "recording_id": ("unit", np.full(n, REC, object))})
    i, j = np.meshgrid(pre_idx, np.arange(n), indexing="ij")
    i, j = i.ravel(), j.ravel()
    keep = i != j
    i, j = i[keep], j[keep]
    sc = pair_similarity(prof, i, j, ["signal_correlation"])["signal_correlation"]
    ld = np.where(rng.random(len(i)) < 0.7, rng.lognormal(2.5, 0.8, len(i)), 0.0)
    y = rng.poisson(ld * np.exp(-4.0 + beta * sc))
    pre_r, post_r = np.repeat(roots[i], y), np.repeat(roots[j], y)
    syn = pd.DataFrame({"id": np.arange(len(pre_r), dtype=np.int64) + 1, "pre_pt_root_id": pre_r,
                        "post_pt_root_id": post_r, "size": rng.lognormal(6, 0.5, len(pre_r))})
    syn["ctr_pt_position"] = _vec(np.zeros((len(syn), 3), np.int64))
    tables = {
        "synapses_pni_2": syn,
        "nucleus_detection_v0": pd.DataFrame({"id": roots + 5000, "pt_root_id": roots,
                                              "pt_position": _vec(np.zeros((n, 3)))}),
        "coregistration_manual_v4": pd.DataFrame({
            "id": np.arange(n) + 1, "pt_root_id": roots, "pt_position": _vec(np.zeros((n, 3))),
            "session": 4, "scan_idx": 7, "unit_id": np.arange(n) + 1, "field": 1, "residual": 1.0, "score": 0.9}),
        "aibs_metamodel_celltypes_v661": pd.DataFrame({"pt_root_id": roots, "cell_type": cell_type,
                                                       "classification_system": "excitatory_neuron"}),
        "nucleus_functional_area_assignment": pd.DataFrame({"target_id": roots + 5000, "pt_root_id": roots,
                                                            "tag": area, "value": 1.0}),
        "proofreading_status_and_strategy": pd.DataFrame({
            "pt_root_id": roots, "valid_id": roots, "status_dendrite": "extended",
            "status_axon": np.where(np.isin(np.arange(n), pre_idx), "extended", "non"),
            "strategy_dendrite": "dendrite_extended",
            "strategy_axon": np.where(np.isin(np.arange(n), pre_idx), "axon_fully_extended", "none")}),
        "proximity": pd.DataFrame({"pre_pt_root_id": roots[i][ld > 0], "post_pt_root_id": roots[j][ld > 0],
                                   "ld_um": ld[ld > 0]}),
    }
    folder = root / "connectome"
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(folder / f"{name}.parquet")
    save_profiles(prof, root / "profiles.h5")
    cc_max = np.where(np.arange(n) % 20 == 19, 0.3, 0.8)   # three neurons fail the quality filter
    met = xr.Dataset({"cc_abs": (("unit", "stimulus_type"), np.c_[np.full(n, 0.5), np.zeros(n)]),
                      "cc_max": (("unit", "stimulus_type"), np.c_[cc_max, np.zeros(n)]),
                      "passes_quality": (("unit", "stimulus_type"), np.c_[cc_max > 0.4, np.zeros(n, bool)])},
                     coords={"unit_id": ("unit", np.arange(n) + 1), "recording_id": ("unit", np.full(n, REC, object)),
                             "stimulus_type": ["natural_movie", "gabor"]})
    met.to_netcdf(root / "metrics.h5", engine="h5netcdf")
    return folder, root / "profiles.h5", root / "metrics.h5"

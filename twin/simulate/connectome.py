"""The synthetic mouse's connectome: CAVE-schema tables over the same neurons as the scans.

Generative model (Ding et al., Nature 2025; Ding, Tran et al., 2026):

1. **Cells.** Every imaged neuron, ``n_background_cells`` neurons that were never imaged (EM-only:
   nuclei, cell types and synapses, but no co-registration) and ``n_nonneuron_nuclei`` glia
   (nuclei and cell types only). A random ``coregistered_fraction`` of the imaged neurons is
   co-registered (``duplicate_field_fraction`` of those matched again in a neighbouring
   field); ``proofread_fraction`` of the co-registered excitatory neurons (and of the excitatory
   background cells) have a proofread axon.
2. **Geometry.** Skeletons (:mod:`twin.simulate.morphology`): somata at cortical_x/y/z (um;
   in the EM frame x and y are shrunk by ``lateral_scale`` about the imaged neurons' centre, so
   a small imaged population gets more axon-dendrite proximity per neuron; every position in
   the tables is in this frame),
   branching dendrites, local axons and, for some proofread excitatory cells, long-range axons
   into the other region (V1 <-> HVA). Unproofread axons are truncated. ``Ld`` = dendritic
   length of the post within ``radius_um`` of the pre axon, skeletons cut into
   ``max_segment_um`` pieces, exactly as :func:`twin.connectome.proximity.proximity_table`.
3. **Synapses.** For every pair with Ld > 0:
   ``n ~ Poisson(Ld * base_density * exp(beta[projection] * s + invariance_pre * p_pre
   + invariance_post * p_post + invariance_diff * |p_pre - p_post| + u_pre))``, s = true signal
   correlation (pairs with a background cell: the imaged population's mean), p = phase
   invariance, u_pre ~ N(0, pre_effect_sd) per presynaptic cell; projection from V1 vs HVA
   (LM/AL/RL). Each synapse sits on a dendrite piece of that pair (chosen by length) next to
   the nearest pre axon point; size (voxels) log-normal with median
   ``size_median_vox * exp(size_beta * s)``.

Positions are voxels of 4 x 4 x 40 nm: voxel = um * 1000 / (4, 4, 40). ``simulate_connectome``
returns the tables of docs/CONNECTOME_CONTRACT.md plus ``proximity`` (Ld for every pair whose
pre has a proofread axon) and, with ``write_skeletons``, ``skeletons`` (one long SWC table
with a ``pt_root_id`` column; :func:`write_skeleton_files` writes it as ``<pt_root_id>.swc``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from twin.connectome.proximity import SWC_COLUMNS, Skeleton, write_swc
from twin.errors import InputError
from twin.simulate.morphology import Shape, make_arbors, proximity_pairs
from twin.simulate.population import EXC_TYPES, INH_TYPES, ROOT_ID_BASE, layer_of_depth

#: Published in-silico signal-correlation slopes (log synapse density per unit), Ding et al. 2025
BETA = {"V1->V1": 2.30, "HVA->HVA": 1.04, "V1->HVA": 1.99, "HVA->V1": 1.60}
VOXEL_NM = np.array([4.0, 4.0, 40.0])
NONNEURON_TYPES = ("astrocyte", "microglia", "oligo", "OPC", "pericyte")
TABLES = ("synapses_pni_2", "nucleus_detection_v0", "coregistration_manual_v4", "aibs_metamodel_celltypes_v661",
          "nucleus_functional_area_assignment", "proofreading_status_and_strategy", "proximity")
NEED = ("pt_root_id", "nucleus_id", "session", "scan_idx", "unit_id", "area", "cortical_x", "cortical_y",
        "cortical_z", "excitatory", "cell_type", "phase_invariance")


@dataclass(frozen=True)
class ConnectomeConfig:
    """Planted connectivity rule, sampling of the EM tables, and skeleton geometry (um).

    ``beta``: log synapse density per unit of true signal correlation, per projection (missing
    keys take the published values, :data:`BETA`); ``base_density``: synapses per um of Ld at
    zero similarity and invariance (1 connected per ~34 ADP pairs with the defaults, which are
    published-like; the ``default`` preset makes a denser connectome, see
    twin/simulate/config.py)."""
    beta: dict[str, float] = field(default_factory=lambda: dict(BETA))
    base_density: float = 0.0014
    invariance_pre: float = -1.0      # log density per unit of the pre's phase invariance
    invariance_post: float = 0.0      # ... of the post's (0: connected posts are more invariant than pres;
    #                                   a post term correlates with similarity and biases like-to-like fits)
    invariance_diff: float = 0.0      # ... per unit of |p_pre - p_post|
    pre_effect_sd: float = 0.3        # per-presynaptic-cell log density s.d. (the GLMM's random intercept)
    size_median_vox: float = 2000.0   # synapse size (cleft voxels) at zero similarity
    size_log_sd: float = 0.8
    size_beta: float = 0.3            # log size per unit of similarity
    coregistered_fraction: float = 0.8
    duplicate_field_fraction: float = 0.05
    fields_per_scan: int = 4
    proofread_fraction: float = 0.3   # of co-registered excitatory cells (and excitatory background cells)
    fully_extended_fraction: float = 0.5  # the rest are axon_partially_extended
    n_background_cells: int = 200
    n_nonneuron_nuclei: int = 50
    dendrite_radius_um: float = 120.0
    dendrite_branches: int = 5
    apical_length_um: float = 250.0
    axon_descend_um: float = 250.0
    axon_radius_um: float = 250.0
    inhibitory_axon_radius_um: float = 150.0
    axon_branches: int = 16
    unproofread_axon_branches: int = 2
    long_range_probability: float = 0.3
    long_range_arbor_um: float = 150.0
    long_range_branches: int = 4
    white_matter_depth_um: float = 1000.0
    lateral_scale: float = 1.0        # EM frame: cells' (x, y) shrunk by this about the imaged neurons' centre
    node_spacing_um: float = 10.0
    tortuosity: float = 0.25
    radius_um: float = 5.0
    max_segment_um: float = 1.0
    write_skeletons: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.beta) - set(BETA))
        if unknown:
            raise InputError(None, f"connectome.beta.{unknown[0]}", f"one of {sorted(BETA)}", "an unknown key")
        object.__setattr__(self, "beta", {**BETA, **{k: float(v) for k, v in self.beta.items()}})
        checks = [(k, v > 0, "> 0") for k, v in (
            ("base_density", self.base_density), ("size_median_vox", self.size_median_vox),
            ("dendrite_radius_um", self.dendrite_radius_um), ("node_spacing_um", self.node_spacing_um),
            ("radius_um", self.radius_um), ("max_segment_um", self.max_segment_um),
            ("fields_per_scan", self.fields_per_scan), ("lateral_scale", self.lateral_scale))]
        checks += [(k, v >= 0, ">= 0") for k, v in (
            ("pre_effect_sd", self.pre_effect_sd), ("size_log_sd", self.size_log_sd),
            ("n_background_cells", self.n_background_cells), ("n_nonneuron_nuclei", self.n_nonneuron_nuclei),
            ("dendrite_branches", self.dendrite_branches), ("apical_length_um", self.apical_length_um),
            ("axon_descend_um", self.axon_descend_um), ("axon_radius_um", self.axon_radius_um),
            ("inhibitory_axon_radius_um", self.inhibitory_axon_radius_um), ("axon_branches", self.axon_branches),
            ("unproofread_axon_branches", self.unproofread_axon_branches),
            ("long_range_arbor_um", self.long_range_arbor_um), ("long_range_branches", self.long_range_branches),
            ("white_matter_depth_um", self.white_matter_depth_um), ("tortuosity", self.tortuosity))]
        checks += [(k, 0 <= v <= 1, "in [0, 1]") for k, v in (
            ("coregistered_fraction", self.coregistered_fraction),
            ("duplicate_field_fraction", self.duplicate_field_fraction),
            ("proofread_fraction", self.proofread_fraction), ("fully_extended_fraction", self.fully_extended_fraction),
            ("long_range_probability", self.long_range_probability))]
        checks += [(f"beta.{k}", math.isfinite(v), "a finite number") for k, v in self.beta.items()]
        for key, ok, expected in checks:
            if not ok:
                raise InputError(None, f"connectome.{key}", expected, getattr(self, key, self.beta.get(key[5:])))

    def shape(self) -> Shape:
        """The skeleton generator's parameters."""
        return Shape(**{f.name: getattr(self, f.name) for f in fields(Shape)})


def to_voxels(xyz_um: np.ndarray) -> np.ndarray:
    """(m, 3) um -> (m, 3) int64 voxels of 4 x 4 x 40 nm."""
    return np.rint(np.asarray(xyz_um, float) * 1000.0 / VOXEL_NM).astype(np.int64)


def _vectors(xyz_um: np.ndarray) -> list[list[int]]:
    """One column of 3-vectors (lists of int voxels), as CAVE's ``*_position`` columns."""
    return to_voxels(xyz_um).tolist()


def _unique_ids(rng: np.random.Generator, n: int, suffix: int) -> np.ndarray:
    """``n`` distinct EM-like root ids ending in ``suffix`` (imaged neurons' end in 1)."""
    return ROOT_ID_BASE + rng.choice(10 ** 9, n, replace=False).astype(np.int64) * 1000 + suffix


def _cells(neurons: pd.DataFrame, cfg: ConnectomeConfig, rng: np.random.Generator) -> pd.DataFrame:
    """All EM cells: the imaged neurons, then background neurons, then non-neuronal nuclei."""
    imaged = pd.DataFrame({"pt_root_id": neurons.pt_root_id.to_numpy(np.int64),
                           "nucleus_id": neurons.nucleus_id.to_numpy(np.int64),
                           "x": neurons.cortical_x.to_numpy(float), "y": neurons.cortical_y.to_numpy(float),
                           "z": neurons.cortical_z.to_numpy(float), "area": neurons.area.astype(str).to_numpy(object),
                           "kind": np.where(neurons.excitatory.to_numpy(bool), "excitatory_neuron",
                                            "inhibitory_neuron").astype(object),
                           "cell_type": neurons.cell_type.astype(str).to_numpy(object),
                           "phase_invariance": neurons.phase_invariance.to_numpy(float), "imaged": True})
    nb, ng = cfg.n_background_cells, cfg.n_nonneuron_nuclei
    m = nb + ng
    lo, hi = imaged[["x", "y", "z"]].min().to_numpy(), imaged[["x", "y", "z"]].max().to_numpy()
    xyz = rng.uniform(lo - [0, 0, 50], hi + [0, 0, 50], (m, 3))
    xyz[:, 2] = np.clip(xyz[:, 2], 60.0, 950.0)
    area = imaged.area.to_numpy()[cKDTree(imaged[["x", "y"]].to_numpy()).query(xyz[:, :2])[1]]
    exc = rng.uniform(size=m) < (imaged.kind == "excitatory_neuron").mean()
    kind = np.where(np.arange(m) < nb, np.where(exc, "excitatory_neuron", "inhibitory_neuron"), "nonneuron")
    layer = layer_of_depth(xyz[:, 2])
    ctype = [rng.choice(EXC_TYPES[la]) if k == "excitatory_neuron" else rng.choice(INH_TYPES)
             if k == "inhibitory_neuron" else rng.choice(NONNEURON_TYPES) for k, la in zip(kind, layer)]
    taken = set(imaged.nucleus_id)
    nuc = np.array([k for k in 700_000 + rng.choice(10 ** 6, m + len(taken), replace=False) if k not in taken][:m],
                   np.int64)
    extra = pd.DataFrame({"pt_root_id": np.r_[_unique_ids(rng, nb, 2), _unique_ids(rng, ng, 3)].astype(np.int64),
                          "nucleus_id": nuc, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "area": area,
                          "kind": kind.astype(object), "cell_type": np.array(ctype, object),
                          "phase_invariance": rng.choice(imaged.phase_invariance.to_numpy(), m), "imaged": False})
    return pd.concat([imaged, extra], ignore_index=True)


def _coregistration(neurons: pd.DataFrame, cells: pd.DataFrame, cfg: ConnectomeConfig,
                    rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """The co-registration table and which imaged neurons (n,) bool are in it."""
    n = len(neurons)
    co = np.zeros(n, bool)
    co[rng.choice(n, int(round(cfg.coregistered_fraction * n)), replace=False)] = True
    z = neurons.cortical_z.to_numpy(float)
    fld = np.ones(n, np.int64)
    for _, idx in neurons.groupby(["session", "scan_idx"]).indices.items():
        lo, hi = z[idx].min(), z[idx].max()
        fld[idx] = 1 + np.minimum((cfg.fields_per_scan * (z[idx] - lo) / max(hi - lo, 1e-9)).astype(np.int64),
                                  cfg.fields_per_scan - 1)
    rows = np.flatnonzero(co)
    dup = rng.choice(rows, int(round(cfg.duplicate_field_fraction * len(rows))), replace=False)
    alt = np.where(fld[dup] < cfg.fields_per_scan, fld[dup] + 1, np.maximum(fld[dup] - 1, 1))
    residual = np.r_[rng.gamma(2.0, 1.5, len(rows)), 2.0 + rng.gamma(2.0, 3.0, len(dup))]
    idx = np.r_[rows, dup]
    order = np.argsort(idx, kind="stable")
    idx, residual = idx[order], residual[order]
    field_ = np.r_[fld[rows], alt][order]
    t = pd.DataFrame({"id": np.arange(1, len(idx) + 1, dtype=np.int64),
                      "pt_root_id": neurons.pt_root_id.to_numpy(np.int64)[idx],
                      "pt_position": _vectors(cells[["x", "y", "z"]].to_numpy()[idx]),
                      "session": neurons.session.to_numpy(np.int64)[idx],
                      "scan_idx": neurons.scan_idx.to_numpy(np.int64)[idx],
                      "unit_id": neurons.unit_id.to_numpy(np.int64)[idx], "field": field_.astype(np.int64),
                      "residual": residual, "score": np.exp(-residual / 5.0) * rng.uniform(0.8, 1.0, len(idx))})
    return t, co


def _proofreading(cells: pd.DataFrame, co: np.ndarray, cfg: ConnectomeConfig,
                  rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """The proofreading table (every co-registered cell, plus proofread background cells) and
    which cells (all, bool) have a proofread axon."""
    exc = (cells.kind == "excitatory_neuron").to_numpy()
    co_all = np.r_[co, np.zeros(len(cells) - len(co), bool)]
    eligible = np.flatnonzero(co_all & exc)
    axon = np.zeros(len(cells), bool)
    axon[rng.choice(eligible, int(round(cfg.proofread_fraction * len(eligible))), replace=False)] = True
    axon |= ~cells.imaged.to_numpy(bool) & exc & (rng.uniform(size=len(cells)) < cfg.proofread_fraction)
    listed = np.flatnonzero(co_all | axon)
    full = rng.uniform(size=len(listed)) < cfg.fully_extended_fraction
    pr = axon[listed]
    ids = cells.pt_root_id.to_numpy(np.int64)[listed]
    t = pd.DataFrame({"pt_root_id": ids, "valid_id": ids, "status_dendrite": "clean",
                      "status_axon": np.where(pr, np.where(full, "extended", "clean"), "non").astype(object),
                      "strategy_dendrite": "dendrite_clean",
                      "strategy_axon": np.where(pr, np.where(full, "axon_fully_extended", "axon_partially_extended"),
                                                "none").astype(object)})
    return t, axon


def _area_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Area tag of every nucleus; ``value`` ~ distance to the area border (um): half the
    distance to the nearest cell of another area (NaN when only one area is present)."""
    xy, area = cells[["x", "y"]].to_numpy(), cells.area.to_numpy()
    value = np.full(len(cells), np.nan)
    for a in np.unique(area):
        other = xy[area != a]
        if len(other):
            value[area == a] = 0.5 * cKDTree(other).query(xy[area == a])[0]
    return pd.DataFrame({"target_id": cells.nucleus_id.to_numpy(np.int64),
                         "pt_root_id": cells.pt_root_id.to_numpy(np.int64), "tag": area.astype(object),
                         "value": value})


def _synapses(cells: pd.DataFrame, similarity: np.ndarray, ld: pd.DataFrame, near: pd.DataFrame,
              cfg: ConnectomeConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Poisson synapse counts for every pair with Ld > 0, placed on that pair's near pieces."""
    n_img = len(similarity)
    pre, post, ldv = ld.pre.to_numpy(), ld.post.to_numpy(), ld.ld_um.to_numpy()
    off = similarity[~np.eye(n_img, dtype=bool)]
    s = np.full(len(ld), float(off.mean()) if off.size else 0.0)
    both = (pre < n_img) & (post < n_img)
    s[both] = similarity[pre[both], post[both]]
    hva = (cells.area.to_numpy() != "V1").astype(np.int64)
    table = np.array([[cfg.beta["V1->V1"], cfg.beta["V1->HVA"]], [cfg.beta["HVA->V1"], cfg.beta["HVA->HVA"]]])
    beta = table[hva[pre], hva[post]]
    p_inv = cells.phase_invariance.to_numpy(float)
    u_pre = rng.normal(0.0, cfg.pre_effect_sd, len(cells))
    log_rate = (np.log(cfg.base_density * ldv) + beta * s + cfg.invariance_pre * p_inv[pre]
                + cfg.invariance_post * p_inv[post] + cfg.invariance_diff * np.abs(p_inv[pre] - p_inv[post])
                + u_pre[pre])
    count = rng.poisson(np.exp(log_rate))
    pair = np.repeat(np.arange(len(ld)), count)
    # place each synapse on a near piece of its pair, chosen by length
    npre, npost = near.pre.to_numpy(), near.post.to_numpy()
    start = np.flatnonzero(np.r_[True, (npre[1:] != npre[:-1]) | (npost[1:] != npost[:-1]), True])
    cum = np.cumsum(near.length.to_numpy(np.float64))
    before = np.r_[0.0, cum][start[:-1]]
    row = np.searchsorted(cum, before[pair] + rng.uniform(size=len(pair)) * ldv[pair], side="right")
    row = np.clip(row, start[pair], start[pair + 1] - 1)
    dend = near[["dend_x", "dend_y", "dend_z"]].to_numpy(float)[row] + rng.normal(0, 0.2, (len(row), 3))
    axon = near[["axon_x", "axon_y", "axon_z"]].to_numpy(float)[row]
    size = cfg.size_median_vox * np.exp(cfg.size_beta * s[pair] + cfg.size_log_sd * rng.standard_normal(len(pair)))
    root = cells.pt_root_id.to_numpy(np.int64)
    return pd.DataFrame({"id": np.arange(1, len(pair) + 1, dtype=np.int64) + 140_000_000,
                         "pre_pt_root_id": root[pre[pair]], "post_pt_root_id": root[post[pair]],
                         "size": np.maximum(np.rint(size), 1).astype(np.int64),
                         "ctr_pt_position": _vectors((dend + axon) / 2), "pre_pt_position": _vectors(axon),
                         "post_pt_position": _vectors(dend)})


def simulate_connectome(neurons: pd.DataFrame, similarity: np.ndarray, config: ConnectomeConfig,
                        seed: int) -> dict[str, pd.DataFrame]:
    """The connectome over ``neurons`` (one row per imaged neuron, columns as
    ``twin.simulate.mouse.NEURON_COLUMNS``; positions in um) given their true signal
    correlations ``similarity`` (n, n). Returns CAVE-schema tables by name (see the module
    docstring and docs/CONNECTOME_CONTRACT.md); the same ``seed`` gives identical tables."""
    missing = [c for c in NEED if c not in neurons]
    if missing:
        raise InputError(None, "neurons", f"columns {list(NEED)}", f"missing {missing}")
    similarity = np.asarray(similarity, float)
    if similarity.shape != (len(neurons), len(neurons)):
        raise InputError(None, "similarity", f"a ({len(neurons)}, {len(neurons)}) matrix", similarity.shape)
    if not neurons.pt_root_id.is_unique:
        raise InputError(None, "neurons.pt_root_id", "unique root ids", "duplicates")
    r_cells, r_co, r_pr, r_geo, r_syn = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5))
    neurons = neurons.reset_index(drop=True)
    if config.lateral_scale != 1.0:  # the EM frame: (x, y) shrunk about the imaged neurons' centre
        neurons = neurons.copy()
        for c in ("cortical_x", "cortical_y"):
            v = neurons[c].to_numpy(float)
            neurons[c] = v.mean() + config.lateral_scale * (v - v.mean())
    cells = _cells(neurons, config, r_cells)
    coreg, co = _coregistration(neurons, cells, config, r_co)
    proofreading, axon = _proofreading(cells, co, config, r_pr)
    neuron = (cells.kind != "nonneuron").to_numpy()
    skel = np.flatnonzero(neuron)  # cells with a skeleton (all neurons come first)
    soma = cells[["x", "y", "z"]].to_numpy()[skel]
    is_v1 = (cells.area.to_numpy()[skel] == "V1")
    img = cells.imaged.to_numpy(bool)[skel]
    arbors = make_arbors(soma, (cells.kind.to_numpy()[skel] == "excitatory_neuron"), is_v1, axon[skel],
                         config.shape(), r_geo, {True: soma[img & is_v1], False: soma[img & ~is_v1]})
    ld, near = proximity_pairs(arbors, config.radius_um, config.max_segment_um)
    root = cells.pt_root_id.to_numpy(np.int64)
    synapses = _synapses(cells.iloc[skel].reset_index(drop=True), similarity, ld, near, config, r_syn)
    keep = axon[skel][ld.pre.to_numpy()]
    proximity = pd.DataFrame({"pre_pt_root_id": root[skel][ld.pre.to_numpy()[keep]],
                              "post_pt_root_id": root[skel][ld.post.to_numpy()[keep]],
                              "ld_um": ld.ld_um.to_numpy()[keep]})
    out = {
        "synapses_pni_2": synapses,
        "nucleus_detection_v0": pd.DataFrame({"id": cells.nucleus_id.to_numpy(np.int64), "pt_root_id": root,
                                              "pt_position": _vectors(cells[["x", "y", "z"]].to_numpy())}),
        "coregistration_manual_v4": coreg,
        "aibs_metamodel_celltypes_v661": pd.DataFrame({"pt_root_id": root, "classification_system": cells.kind,
                                                       "cell_type": cells.cell_type}),
        "nucleus_functional_area_assignment": _area_table(cells),
        "proofreading_status_and_strategy": proofreading,
        "proximity": proximity,
    }
    if config.write_skeletons:
        out["skeletons"] = arbors.swc_table(root[skel])
    return out


def write_skeleton_files(table: pd.DataFrame, folder: str | os.PathLike) -> list[Path]:
    """Write a long SWC table (``pt_root_id`` + SWC columns, um) as ``folder/<pt_root_id>.swc``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_swc(Skeleton(g[list(SWC_COLUMNS)].reset_index(drop=True)), folder / f"{int(rid)}.swc",
                      comment=f"pt_root_id {int(rid)} (twin simulate)")
            for rid, g in table.groupby("pt_root_id", sort=False)]

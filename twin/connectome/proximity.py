"""Axon-dendrite proximity (ADP): how much of a cell's dendrite runs close to another cell's axon.

Ding et al. (Nature 2025) cut skeletons into edges of at most 1 um and measure, for each
(pre, post) pair, the dendritic length ``Ld`` of the postsynaptic skeleton lying within 5 um of
the presynaptic axon. Ld is the opportunity for synapses: the like-to-like model uses it as an
exposure offset. Here skeletons are SWC node tables (id, type, x, y, z, radius, parent; type 2 =
axon, 3 and 4 = dendrite) and the ball query runs on a KD-tree of axon points.

Units: micrometres throughout; :func:`read_swc` converts nanometre files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from twin.errors import InputError
from twin.io import atomic_path

AXON = 2
DENDRITE_TYPES = (3, 4)
SWC_COLUMNS = ("id", "type", "x", "y", "z", "radius", "parent")


@dataclass(frozen=True)
class Skeleton:
    """One neuron's skeleton as an SWC node table: ``nodes`` has columns ``SWC_COLUMNS``
    (positions in um; ``parent`` = -1 at the root)."""
    nodes: pd.DataFrame

    def segments(self, types: Iterable[int], max_len_um: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Edges whose child node has one of ``types``, cut into pieces of at most
        ``max_len_um``: returns (midpoints (m, 3) um, lengths (m,) um)."""
        return cut_edges(self.nodes, types, max_len_um)


def cut_edges(nodes: pd.DataFrame, types: Iterable[int], max_len_um: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Cut every parent->child edge (child type in ``types``) into ``ceil(len / max_len_um)``
    equal pieces; returns each piece's midpoint (m, 3) and length (m,), in the nodes' units."""
    xyz = nodes[["x", "y", "z"]].to_numpy(np.float64)
    index = pd.Series(np.arange(len(nodes)), index=nodes["id"].to_numpy())
    child = np.flatnonzero(nodes["type"].isin(list(types)).to_numpy() & (nodes["parent"].to_numpy() >= 0))
    parent_pos = index.reindex(nodes["parent"].to_numpy()[child]).to_numpy()
    ok = ~np.isnan(parent_pos)
    child, parent_pos = child[ok], parent_pos[ok].astype(np.int64)
    a, b = xyz[parent_pos], xyz[child]
    length = np.linalg.norm(b - a, axis=1)
    n = np.maximum(np.ceil(length / max_len_um).astype(np.int64), 1)
    edge = np.repeat(np.arange(len(a)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)  # piece index within its edge
    frac = ((k + 0.5) / n[edge])[:, None]
    mid = a[edge] + frac * (b[edge] - a[edge])
    return mid, (length / n)[edge]


def dendritic_length_near(axon_points: np.ndarray | cKDTree, dend_mid: np.ndarray, dend_len: np.ndarray,
                          radius_um: float = 5.0) -> float:
    """Summed length of dendrite pieces whose midpoint lies within ``radius_um`` of any axon
    point (um). ``axon_points`` (a, 3) or a prebuilt ``cKDTree`` of them."""
    tree = axon_points if isinstance(axon_points, cKDTree) else cKDTree(np.asarray(axon_points, np.float64))
    if tree.n == 0 or len(dend_mid) == 0:
        return 0.0
    d, _ = tree.query(dend_mid, k=1, distance_upper_bound=radius_um)
    return float(dend_len[np.isfinite(d)].sum())


def proximity_table(skeletons: Mapping[int, Skeleton], pre_ids: Iterable[int], post_ids: Iterable[int],
                    radius_um: float = 5.0, max_len_um: float = 1.0) -> pd.DataFrame:
    """Ld for every (pre, post) pair with a skeleton on both sides, pre != post.

    Returns a DataFrame ``pre_pt_root_id, post_pt_root_id, ld_um`` with one row per pair whose
    Ld > 0 (pairs not listed have Ld = 0). Work: one KD-tree per presynaptic axon, queried with
    the dendrite pieces of all postsynaptic cells at once."""
    post_ids = [int(p) for p in post_ids if int(p) in skeletons]
    pieces = [skeletons[p].segments(DENDRITE_TYPES, max_len_um) for p in post_ids]
    owner = np.concatenate([np.full(len(m), k, np.int64) for k, (m, _) in enumerate(pieces)]) \
        if pieces else np.zeros(0, np.int64)
    mids = np.concatenate([m for m, _ in pieces]) if pieces else np.zeros((0, 3))
    lens = np.concatenate([ln for _, ln in pieces]) if pieces else np.zeros(0)
    rows = []
    for pre in pre_ids:
        pre = int(pre)
        if pre not in skeletons:
            continue
        axon, _ = skeletons[pre].segments((AXON,), max_len_um)
        if len(axon) == 0 or len(mids) == 0:
            continue
        d, _ = cKDTree(axon).query(mids, k=1, distance_upper_bound=radius_um)
        near = np.isfinite(d)
        ld = np.bincount(owner[near], weights=lens[near], minlength=len(post_ids))
        for k in np.flatnonzero(ld > 0):
            if post_ids[k] != pre:
                rows.append((pre, post_ids[k], float(ld[k])))
    return pd.DataFrame(rows, columns=["pre_pt_root_id", "post_pt_root_id", "ld_um"]).astype(
        {"pre_pt_root_id": np.int64, "post_pt_root_id": np.int64, "ld_um": np.float64})


def read_swc(path: str | os.PathLike, units: str = "um") -> Skeleton:
    """Read an SWC file (``# comments``, then id type x y z radius parent per line). ``units``
    is ``"um"`` or ``"nm"`` (converted to um). Errors name the file and what is wrong."""
    path = Path(path)
    if units not in ("um", "nm"):
        raise InputError(path, "units", "'um' or 'nm'", units)
    if not path.is_file():
        raise InputError(path, "skeleton", "an SWC file", "missing")
    try:
        data = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError as e:
        raise InputError(path, "SWC rows", "7 numbers per line (id type x y z radius parent)", str(e)) from None
    if data.size and data.shape[1] != 7:
        raise InputError(path, "SWC rows", "7 columns (id type x y z radius parent)", f"{data.shape[1]} columns")
    nodes = pd.DataFrame(data.reshape(-1, 7), columns=list(SWC_COLUMNS))
    for c in ("id", "type", "parent"):
        nodes[c] = nodes[c].astype(np.int64)
    if units == "nm":
        nodes[["x", "y", "z", "radius"]] /= 1000.0
    return Skeleton(nodes)


def write_swc(skeleton: Skeleton, path: str | os.PathLike, comment: str = "") -> Path:
    """Write ``skeleton`` as an SWC file in um (atomically)."""
    n = skeleton.nodes
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(f"# {comment}\n# units: um\n# id type x y z radius parent\n" if comment else
                    "# units: um\n# id type x y z radius parent\n")
            for r in n.itertuples(index=False):
                f.write(f"{int(r.id)} {int(r.type)} {r.x:.3f} {r.y:.3f} {r.z:.3f} {r.radius:.3f} {int(r.parent)}\n")
    return Path(path)


def read_skeleton_dir(folder: str | os.PathLike, units: str = "um",
                      root_ids: Iterable[int] | None = None) -> dict[int, Skeleton]:
    """Skeletons named ``<pt_root_id>.swc`` in ``folder`` (only ``root_ids`` if given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "skeletons", "a folder of <pt_root_id>.swc files", "missing")
    want = None if root_ids is None else {int(r) for r in root_ids}
    out: dict[int, Skeleton] = {}
    for p in sorted(folder.glob("*.swc")):
        try:
            rid = int(p.stem)
        except ValueError:
            raise InputError(p, "file name", "<pt_root_id>.swc with an integer root id", p.name) from None
        if want is None or rid in want:
            out[rid] = read_swc(p, units)
    return out

"""Simple neuron skeletons for the synthetic connectome, and their axon-dendrite proximity (Ld).

Every cell gets a soma at its cortical position (um; x, y across the sheet, z = depth below the
pia), basal dendrites (primary branches that fork once), an apical dendrite up towards the pia
for excitatory cells, a local axon (a main axon running down plus curved collaterals that fork
once) and, for some excitatory cells, a long-range axon that runs down into the white matter,
across to a cell of the other region (V1 <-> HVA), up into the cortex and arborises there.
Branches are persistent random walks with nodes every ``node_spacing_um``.

Ld follows :mod:`twin.connectome.proximity` exactly: both skeletons are cut into pieces of at
most ``max_len_um`` with :func:`~twin.connectome.proximity.cut_edges`; a dendrite piece counts
when its midpoint is within ``radius_um`` of an axon piece midpoint. Instead of one KD-tree
query per pair, one tree holds all dendrite pieces and a ball query finds, for points every
few um along the axons, the dendrite pieces within reach (only nearby pairs are ever
compared); each candidate is then checked exactly against the nearest axon piece of its edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from twin.connectome.proximity import AXON, DENDRITE_TYPES, SWC_COLUMNS, cut_edges

SOMA, BASAL, APICAL = 1, 3, 4
NEAR = ("pre", "post", "length", "dend_x", "dend_y", "dend_z", "axon_x", "axon_y", "axon_z")


@dataclass(frozen=True)
class Shape:
    """Geometry parameters (um) of the skeleton generator (see ConnectomeConfig)."""
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
    node_spacing_um: float = 10.0
    tortuosity: float = 0.25


@dataclass(frozen=True)
class Arbors:
    """All skeletons as one node table sorted by cell: ``cell`` (m,) index of the owning cell,
    ``type`` (m,) SWC type, ``xyz`` (m, 3) um, ``radius`` (m,) um, ``parent`` (m,) global node
    index (-1 at the soma); cell c owns nodes ``start[c]:start[c + 1]``."""
    cell: np.ndarray
    type: np.ndarray
    xyz: np.ndarray
    radius: np.ndarray
    parent: np.ndarray
    start: np.ndarray

    def nodes(self, c0: int = 0, c1: int | None = None) -> pd.DataFrame:
        """SWC node table (ids = global index) of cells ``c0:c1``."""
        a, b = self.start[c0], self.start[len(self.start) - 1 if c1 is None else c1]
        return pd.DataFrame({"id": np.arange(a, b), "type": self.type[a:b], "x": self.xyz[a:b, 0],
                             "y": self.xyz[a:b, 1], "z": self.xyz[a:b, 2], "radius": self.radius[a:b],
                             "parent": self.parent[a:b]})

    def swc_table(self, root_ids: np.ndarray) -> pd.DataFrame:
        """One long SWC table: ``pt_root_id`` plus ``SWC_COLUMNS`` with ids 1..k per cell."""
        first = self.start[self.cell]
        local = np.arange(len(self.cell)) - first + 1
        parent = np.where(self.parent >= 0, self.parent - first + 1, -1)
        return pd.DataFrame({"pt_root_id": np.asarray(root_ids, np.int64)[self.cell], "id": local,
                             "type": self.type, "x": self.xyz[:, 0], "y": self.xyz[:, 1], "z": self.xyz[:, 2],
                             "radius": self.radius, "parent": parent})[["pt_root_id", *SWC_COLUMNS]]


class _Builder:
    """Accumulates families of branches; each new node's parent is the node before it in its
    branch, or ``attach`` for a branch's first node."""

    def __init__(self, soma: np.ndarray):
        n = len(soma)
        self.parts = [(np.arange(n), np.full(n, SOMA), soma, np.full(n, 6.0), np.full(n, -1))]
        self.n = n

    def add(self, cells: np.ndarray, attach: np.ndarray, path: np.ndarray, kind: int, radius: float) -> np.ndarray:
        """Add branches ``path`` (B, S, 3) of ``cells`` (B,); returns their node indices (B, S)."""
        b, s = path.shape[:2]
        idx = self.n + np.arange(b * s).reshape(b, s)
        parent = idx - 1
        parent[:, 0] = attach
        self.parts.append((np.repeat(cells, s), np.full(b * s, kind), path.reshape(-1, 3), np.full(b * s, radius),
                           parent.ravel()))
        self.n += b * s
        return idx

    def build(self, n_cells: int) -> Arbors:
        cell, typ, xyz, rad, parent = (np.concatenate(p) for p in zip(*self.parts))
        order = np.argsort(cell, kind="stable")  # parents precede children within a cell
        new = np.empty_like(order)
        new[order] = np.arange(len(order))
        parent = np.where(parent[order] >= 0, new[np.maximum(parent[order], 0)], -1)
        xyz = np.round(np.abs(xyz[order]), 3)  # reflect at the pia / volume edges; SWC precision
        return Arbors(cell[order], typ[order], xyz, rad[order], parent,
                      np.searchsorted(cell[order], np.arange(n_cells + 1)))


def _directions(n: int, rng: np.random.Generator, z_scale: float = 0.5) -> np.ndarray:
    """Random unit vectors (n, 3), flattened in depth by ``z_scale``."""
    d = rng.standard_normal((n, 3))
    d[:, 2] *= z_scale
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _walk(start: np.ndarray, direction: np.ndarray, length: np.ndarray | float, n_steps: int, wiggle: float,
          rng: np.random.Generator) -> np.ndarray:
    """Persistent random walks: (B, n_steps, 3) points from ``start`` (B, 3), ``length`` um long."""
    step = np.broadcast_to(np.asarray(length, float), (len(start),))[:, None] / n_steps
    d, p, out = direction.copy(), start.copy(), []
    for _ in range(n_steps):
        d = d + wiggle * rng.standard_normal(d.shape)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        p = p + step * d
        out.append(p)
    return np.stack(out, 1)


def _line(a: np.ndarray, b: np.ndarray, n_steps: int) -> np.ndarray:
    """Straight paths (B, n_steps, 3) from ``a`` (excluded) to ``b`` (included)."""
    f = (np.arange(1, n_steps + 1) / n_steps)[None, :, None]
    return a[:, None] + f * (b - a)[:, None]


def make_arbors(soma: np.ndarray, excitatory: np.ndarray, is_v1: np.ndarray, full_axon: np.ndarray, shape: Shape,
                rng: np.random.Generator, targets: dict[bool, np.ndarray] | None = None) -> Arbors:
    """Skeletons of every cell: ``soma`` (n, 3) um, ``excitatory``, ``is_v1`` and ``full_axon``
    (n,) bool. Cells without ``full_axon`` (axons not proofread: in EM the rest of the axon is
    split off into orphan fragments) keep the main axon and ``unproofread_axon_branches``
    collaterals and no long-range branch. ``targets[True]`` / ``targets[False]``: (k, 3) um
    positions in V1 / the HVAs that long-range axons from the other region aim for."""
    n = len(soma)
    sh, sp, w = shape, shape.node_spacing_um, shape.tortuosity
    steps = lambda length: max(int(np.ceil(length / sp)), 1)  # noqa: E731
    bld = _Builder(soma.astype(float))
    cells = np.arange(n)
    # basal dendrites: primaries (0.4 R) forking into two daughters (0.6 R)
    nb, r_d = sh.dendrite_branches, np.where(excitatory, 1.0, 0.8) * sh.dendrite_radius_um
    if nb > 0:
        c = np.repeat(cells, nb)
        path = _walk(soma[c], _directions(len(c), rng), 0.4 * r_d[c], steps(0.4 * sh.dendrite_radius_um), w, rng)
        prim = bld.add(c, c, path, BASAL, 1.0)
        c2 = np.repeat(c, 2)
        bld.add(c2, np.repeat(prim[:, -1], 2), _walk(path[:, -1].repeat(2, 0), _directions(len(c2), rng),
                                                    0.6 * r_d[c2], steps(0.6 * sh.dendrite_radius_um), w, rng),
                BASAL, 0.8)
    # apical dendrite towards the pia, with a two-branch tuft
    exc = cells[excitatory]
    if len(exc) and sh.apical_length_um > 0:
        length = np.clip(soma[exc, 2] - 20.0, 10.0, sh.apical_length_um)
        ap = _walk(soma[exc], np.tile([0.0, 0.0, -1.0], (len(exc), 1)), length, steps(sh.apical_length_um), 0.1, rng)
        idx = bld.add(exc, exc, ap, APICAL, 1.5)
        c2 = np.repeat(exc, 2)
        bld.add(c2, np.repeat(idx[:, -1], 2), _walk(ap[:, -1].repeat(2, 0), _directions(len(c2), rng, 0.2), 60.0,
                                                    steps(60.0), w, rng), APICAL, 0.8)
    # local axon: main axon down, collaterals (R) each forking once at its middle (R / 2)
    descend = np.where(excitatory, sh.axon_descend_um, 0.25 * sh.axon_descend_um)
    n_main = steps(sh.axon_descend_um)
    main_path = _walk(soma, np.tile([0.0, 0.0, 1.0], (n, 1)), descend, n_main, 0.1, rng)
    main = bld.add(cells, cells, main_path, AXON, 0.5)
    r_a = np.where(excitatory, sh.axon_radius_um, sh.inhibitory_axon_radius_um)
    na = sh.axon_branches
    if na > 0:
        c = np.repeat(cells, na)
        c = c[full_axon[c] | (np.tile(np.arange(na), n) < sh.unproofread_axon_branches)]
        k = rng.integers(0, n_main, len(c))
        s_col = steps(max(sh.axon_radius_um, sh.inhibitory_axon_radius_um))
        col_path = _walk(main_path[c, k], _directions(len(c), rng, 0.3), r_a[c], s_col, w, rng)
        col = bld.add(c, main[c, k], col_path, AXON, 0.3)
        mid = s_col // 2
        bld.add(c, col[:, mid], _walk(col_path[:, mid], _directions(len(c), rng, 0.3), 0.5 * r_a[c],
                                      max(s_col // 2, 1), w, rng), AXON, 0.3)
    # long-range axons: down to the white matter, across to a cell of the other region, up, arborise
    targets = targets or {}
    lr = cells[excitatory & full_axon & (rng.uniform(size=n) < sh.long_range_probability)]
    lr = np.array([c for c in lr if len(targets.get(not is_v1[c], ())) > 0], np.int64)
    if len(lr):
        goal = np.empty((len(lr), 3))
        for region in (True, False):
            sel = is_v1[lr] != region  # cells of the other region aim at `region`
            if sel.any():
                goal[sel] = targets[region][rng.integers(0, len(targets[region]), sel.sum())]
        goal[:, :2] += rng.normal(0, 50.0, (len(lr), 2))
        goal[:, 2] = rng.uniform(100.0, 600.0, len(lr))
        start = main_path[lr, -1]
        wm = np.maximum(sh.white_matter_depth_um, start[:, 2])
        down = np.column_stack([start[:, :2], wm])
        across = np.column_stack([goal[:, :2], wm])
        path = np.concatenate([_line(start, down, 10), _line(down, across, 40), _line(across, goal, 20)], 1)
        idx = bld.add(lr, main[lr, -1], path, AXON, 0.3)
        c = np.repeat(lr, sh.long_range_branches)
        if len(c):
            bld.add(c, np.repeat(idx[:, -1], sh.long_range_branches),
                    _walk(np.repeat(goal, sh.long_range_branches, 0), _directions(len(c), rng, 0.3),
                          sh.long_range_arbor_um, steps(sh.long_range_arbor_um), w, rng), AXON, 0.3)
    return bld.build(n)


def pieces(arbors: Arbors, types: tuple[int, ...], max_len_um: float, c0: int = 0,
           c1: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces of cells ``c0:c1`` (edges whose child has one of ``types``, cut by ``cut_edges``):
    midpoints (m, 3) um, lengths (m,) um and owning cell (m,)."""
    nodes = arbors.nodes(c0, c1)
    mid, length = cut_edges(nodes, types, max_len_um)
    # owner of each piece, in cut_edges' order (child nodes in table order, ceil(len / max) pieces each)
    a = arbors.start[c0]
    child = np.flatnonzero(nodes["type"].isin(list(types)).to_numpy() & (nodes["parent"].to_numpy() >= 0))
    edge = np.linalg.norm(arbors.xyz[a + child] - arbors.xyz[arbors.parent[a + child]], axis=1)
    owner = np.repeat(arbors.cell[a + child], np.maximum(np.ceil(edge / max_len_um).astype(np.int64), 1))
    assert len(owner) == len(mid)
    return mid, length, owner


def _edges(arbors: Arbors, types: tuple[int, ...], max_len_um: float) -> tuple[np.ndarray, ...]:
    """Every edge whose child has one of ``types``: start a (e, 3), end b (e, 3), its number of
    pieces in ``cut_edges`` (ceil(len / max_len_um), at least 1) and its cell (e,), by cell."""
    child = np.flatnonzero(np.isin(arbors.type, types) & (arbors.parent >= 0))
    a, b = arbors.xyz[arbors.parent[child]], arbors.xyz[child]
    n = np.maximum(np.ceil(np.linalg.norm(b - a, axis=1) / max_len_um).astype(np.int64), 1)
    return a, b, n, arbors.cell[child]


def proximity_pairs(arbors: Arbors, radius_um: float = 5.0, max_len_um: float = 1.0, search_step_um: float = 5.0,
                    chunk_edges: int = 25_000, workers: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ld of every (pre, post) cell pair, pre != post, with Ld > 0 (as ``proximity_table``).

    Search: points every <= ``search_step_um`` along each axon edge are matched (KD-tree ball
    query, radius ``radius_um + search_step_um / 2``, ``workers`` threads) with the dendrite
    piece midpoints, so only nearby pairs are ever compared; each
    candidate is then checked exactly against the nearest axon piece midpoint of that edge
    (pieces are equally spaced on the edge, so it is the one whose slot holds the projection).
    Returns ``(ld, near)``: ``ld`` has columns ``pre, post`` (cell indices) and ``ld_um``, sorted;
    ``near`` has one row per dendrite piece within ``radius_um`` of a pre axon: ``pre, post,
    length`` (um), ``dend_x/y/z`` (piece midpoint, um) and ``axon_x/y/z`` (nearest axon piece
    midpoint, um), float32, in ``ld``'s pair order."""
    n_cells = len(arbors.start) - 1
    _, _, n_dend, dcell = _edges(arbors, DENDRITE_TYPES, max_len_um)
    per_cell = np.r_[0, np.cumsum(np.bincount(dcell, n_dend, minlength=n_cells))].astype(np.int64)
    dmid, dlen, downer = np.empty((per_cell[-1], 3)), np.empty(per_cell[-1]), np.empty(per_cell[-1], np.int32)
    for c in range(0, n_cells, 500):  # filled in place, cells in order: no concatenated copies
        c1 = min(c + 500, n_cells)
        sl = slice(per_cell[c], per_cell[c1])
        dmid[sl], dlen[sl], downer[sl] = pieces(arbors, DENDRITE_TYPES, max_len_um, c, c1)
    dtree = cKDTree(dmid, copy_data=False)
    a, b, n_piece, owner = _edges(arbors, (AXON,), max_len_um)
    ab = b - a
    ab2 = np.maximum((ab ** 2).sum(1), 1e-300)
    m = np.maximum(np.ceil(np.sqrt(ab2) / search_step_um).astype(np.int64), 1)  # search points per edge
    reach = radius_um + search_step_um / 2
    lds, nears = [], []
    e0 = 0
    while e0 < len(a) and len(dmid):
        e1 = min(e0 + chunk_edges, len(a))
        if e1 < len(a):  # a chunk holds whole cells (edges are sorted by cell), so its pres are its own
            e1 = int(np.searchsorted(owner, owner[e1 - 1], side="right"))
        e = np.repeat(np.arange(e0, e1), m[e0:e1])
        k = np.arange(len(e)) - np.repeat(np.cumsum(m[e0:e1]) - m[e0:e1], m[e0:e1])
        e0 = e1
        hits = dtree.query_ball_point(a[e] + ((k + 0.5) / m[e])[:, None] * ab[e], reach, workers=workers)
        size = np.fromiter((len(h) for h in hits), np.int64, len(hits))
        e, j = np.repeat(e, size), np.concatenate(hits).astype(np.int64) if size.sum() else np.zeros(0, np.int64)
        del hits
        pre = owner[e]
        keep = pre != downer[j]
        e, j, pre = e[keep], j[keep], pre[keep]
        # exact: the nearest piece midpoint of edge e to dendrite piece j
        t = ((dmid[j] - a[e]) * ab[e]).sum(1) / ab2[e]
        slot = np.clip(np.floor(t * n_piece[e]), 0, n_piece[e] - 1)
        p = a[e] + ((slot + 0.5) / n_piece[e])[:, None] * ab[e]
        ok = np.sqrt(((dmid[j] - p) ** 2).sum(1)) < radius_um  # cKDTree.query's distance_upper_bound is strict
        pre, j, p = pre[ok], j[ok], p[ok]
        _, first = np.unique(pre * len(dmid) + j, return_index=True)  # each (pre, piece) once
        pre, j, p = pre[first], j[first], p[first]
        post = downer[j].astype(np.int64)
        order = np.lexsort((post, pre))
        pre, j, p, post = pre[order], j[order], p[order].astype(np.float32), post[order]
        start = np.flatnonzero(np.r_[True, (pre[1:] != pre[:-1]) | (post[1:] != post[:-1])]) if len(pre) else pre
        lds.append(pd.DataFrame({"pre": pre[start], "post": post[start],
                                 "ld_um": np.add.reduceat(dlen[j], start) if len(start) else np.zeros(0)}))
        dm = dmid[j].astype(np.float32)
        nears.append(pd.DataFrame({"pre": pre.astype(np.int32), "post": post.astype(np.int32),
                                   "length": dlen[j].astype(np.float32), "dend_x": dm[:, 0], "dend_y": dm[:, 1],
                                   "dend_z": dm[:, 2], "axon_x": p[:, 0], "axon_y": p[:, 1], "axon_z": p[:, 2]}))
    if not lds:
        return (pd.DataFrame({"pre": np.zeros(0, np.int64), "post": np.zeros(0, np.int64), "ld_um": np.zeros(0)}),
                pd.DataFrame({c: np.zeros(0, np.int32 if c in ("pre", "post") else np.float32) for c in NEAR}))
    return pd.concat(lds, ignore_index=True), pd.concat(nears, ignore_index=True)


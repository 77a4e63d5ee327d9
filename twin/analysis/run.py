"""``analyze(config, out_dir)``: build the edge table, run every test, write the results.

Writes (each atomically) into ``out_dir``:

    edges.parquet    the edge table (one row per pre/post pair; ``quality_ok`` with the config's
                     thresholds), as built by twin.connectome.build_edge_table
    binned.parquet   binned trends: connection probability and synapse density per quantile bin
                     of each measure, per projection, bootstrap intervals over presynaptic neurons
    results.json     {"tests": [records], "summary": counts, "measures": [...], "methods": {...},
                      "glmm_r": {...}, "provenance": ...}; records per twin.analysis.records
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from twin.analysis.config import AnalysisConfig, check_config
from twin.errors import InputError, TwinError
from twin.io import atomic_path, write_text_atomic

REQUIRED = ("pre_pt_root_id", "post_pt_root_id", "projection", "n_synapses", "ld_um")
METHODS = {
    "synaptic_scale": "Poisson regression of n_synapses on the measure with offset log(Ld) and one free intercept per "
                      "presynaptic neuron (conditional likelihood), pairs with Ld > 0, per projection (and area x "
                      "layer); 95% CI and p from cluster-robust (CR3 jackknife) errors over presynaptic neurons, t with "
                      "Satterthwaite df "
                      "(se_type 'model': Fisher information). Estimate: change in log synapse density per unit.",
    "axonal_scale": "Tweedie GLM (log link) of Ld on the measure, pairs without synapse, per projection; errors "
                    "clustered by presynaptic neuron.",
    "synapse_size": "OLS of a connected pair's mean synapse size on the measure and log Ld; errors clustered by "
                    "presynaptic neuron.",
    "per_pre_mean": "Per presynaptic neuron, mean measure over connected minus over ADP partners; paired t-test.",
    "permutation": "Calibration of the synaptic-scale p: score statistic with the measure shuffled among each "
                   "presynaptic neuron's partners with Ld > 0.",
    "invariance": "MEI/VEI similarity connected vs ADP (per-neuron paired t); post - pre invariance of connected "
                  "pairs (per-neuron means, one-sample t); out-degree vs invariance (Poisson, offset log total Ld; "
                  "Spearman).",
    "synaptic_scale_glmm": "R glmmTMB: n_synapses ~ 0 + projection + projection:measure + offset(log Ld) + "
                           "(1 | pre:projection), Poisson; Wald intervals.",
}


def _logger(progress: bool | Callable[[str], None]) -> Callable[[str], None]:
    if callable(progress):
        return progress
    t0 = time.time()
    if not progress:
        return lambda s: None
    return lambda s: print(f"[analyze {time.time() - t0:6.1f}s] {s}", file=sys.stderr, flush=True)


def check_inputs(config: AnalysisConfig) -> None:
    """InputError unless ``config.connectome`` is given and every given input path exists."""
    if not config.connectome:
        raise InputError(None, "connectome", "the path of a connectome folder (CAVE-schema parquet tables)", "nothing")
    for key in ("connectome", "profiles", "metrics"):
        p = getattr(config, key)
        if p and not Path(p).exists():
            raise InputError(p, key, "an existing path", "no such file or folder")


def load_edges(config: AnalysisConfig, progress: bool = False) -> pd.DataFrame:
    """The edge table of ``config.connectome`` x ``config.profiles`` (x ``config.metrics``)."""
    check_inputs(config)
    try:
        from twin.connectome import build_edge_table
    except ImportError as e:
        raise TwinError(f"analyze: twin.connectome.build_edge_table is not available ({e})") from None
    return build_edge_table(config.connectome, config.profiles or None, config.metrics or None,
                            radius_um=config.radius_um, progress=progress)


def write_edges(config: AnalysisConfig, path: str | os.PathLike, progress: bool = False) -> Path:
    """Stream the edge table of ``config``'s inputs to parquet block by block (bounded memory)."""
    from twin.connectome import write_edge_table

    check_inputs(config)
    return write_edge_table(config.connectome, path, config.profiles or None, config.metrics or None,
                            radius_um=config.radius_um, progress=progress)


def check_edges(edges: pd.DataFrame, where: str | None = None) -> None:
    """InputError when the edge table lacks a required column."""
    missing = [c for c in REQUIRED if c not in edges.columns]
    if missing:
        raise InputError(where, "edge table", f"columns {list(REQUIRED)}", f"missing {missing}")


def summarize(edges: pd.DataFrame, quality: np.ndarray) -> dict[str, Any]:
    """Counts: pairs, neurons, populations, and per projection n_pre / pairs / connected / synapses."""
    from twin.analysis.config import PROJECTIONS

    ld, syn = edges["ld_um"].to_numpy(np.float64), edges["n_synapses"].to_numpy()
    pop = np.where(syn > 0, "connected", np.where(ld > 0, "adp", "same_region"))
    out: dict[str, Any] = {"n_pairs": int(len(edges)), "n_pairs_quality_ok": int(quality.sum()),
                           "n_pre": int(edges["pre_pt_root_id"].nunique()),
                           "n_post": int(edges["post_pt_root_id"].nunique()),
                           "populations": {k: int((pop == k).sum()) for k in ("connected", "adp", "same_region")},
                           "projections": {}}
    q = edges[quality]
    qpop = pop[quality]
    for p in PROJECTIONS:
        sel = (q["projection"] == p).to_numpy()
        if not sel.any():
            continue
        conn = sel & (qpop == "connected")
        n_conn = int(conn.sum())
        out["projections"][p] = {
            "n_pre": int(q.loc[conn, "pre_pt_root_id"].nunique()), "n_pairs": int(sel.sum()),
            "n_connected": n_conn, "n_adp": int((sel & (qpop == "adp")).sum()),
            "n_synapses": int(q.loc[sel, "n_synapses"].sum()),
            "adp_per_connected": float((sel & (qpop == "adp")).sum() / n_conn) if n_conn else None}
    return out


def run_tests(edges: pd.DataFrame, config: AnalysisConfig, log: Callable[[str], None] = lambda s: None
              ) -> tuple[list[dict[str, Any]], pd.DataFrame, dict[str, Any]]:
    """Every test on an edge table: (records with p_adj, binned table, extra info for results.json)."""
    from twin.analysis.binned import binned_table
    from twin.analysis.inclusion import quality_mask
    from twin.analysis.invariance import invariance_tests
    from twin.analysis.paired import projection_tests
    from twin.analysis.records import adjust_bh
    from twin.analysis.scales import axonal_scale, synaptic_scale

    check_edges(edges)
    measures = [m for m in config.measures if m in edges.columns]
    quality = quality_mask(edges, config.cc_max, config.cc_abs)
    q = edges[quality].reset_index(drop=True)
    rules = {"min_pre": config.min_pre, "max_share": config.max_share}
    log(f"{len(q)} of {len(edges)} pairs pass the quality filter; measures {measures}")
    log("synaptic scale")
    records = synaptic_scale(q, measures, by_area_layer=config.by_area_layer, layers=config.layers,
                             min_synapses=config.min_synapses, se=config.se, n_permutations=config.n_permutations,
                             seed=config.seed, pooled=config.pooled, log=log, **rules)
    if config.axonal:
        log("axonal scale")
        records += axonal_scale(q, measures, var_power=config.tweedie_power, **rules)
    log("per-neuron means and synapse size")
    records += projection_tests(q, measures, min_synapses=config.min_synapses, **rules)
    if config.invariance:
        log("invariance")
        records += invariance_tests(q, config.min_pre)
    glmm = _glmm(q, measures, records, config, log)
    adjust_bh(records)
    log(f"binned trends ({config.n_boot} bootstrap resamples)")
    binned = binned_table(q, measures, n_bins=config.n_bins, n_boot=config.n_boot, seed=config.seed)
    info = {"measures": measures, "measures_missing": [m for m in config.measures if m not in edges.columns],
            "summary": summarize(edges, quality), "glmm_r": glmm, "methods": METHODS,
            "multiple_testing": "Benjamini-Hochberg within each family (and level: projection, area x layer, pooled), "
                                "over included tests"}
    return records, binned, info


def _glmm(q: pd.DataFrame, measures: list[str], records: list[dict[str, Any]], config: AnalysisConfig,
          log: Callable[[str], None]) -> dict[str, Any]:
    from twin.analysis.glmm_r import fit_glmm_r, r_available

    if config.use_r == "never":
        return {"used": False, "reason": "use_r = never"}
    if not r_available():
        if config.use_r == "always":
            raise TwinError("analyze: use_r = \"always\" but Rscript with the glmmTMB package is not installed")
        return {"used": False, "reason": "Rscript with glmmTMB not found"}
    included = {m: [r["projection"] for r in records if r["family"] == "synaptic_scale" and r["measure"] == m
                    and r["included"] and r.get("level") == "projection"] for m in measures}
    included = {m: ps for m, ps in included.items() if ps}
    if not included:
        return {"used": False, "reason": "no included projection"}
    log("glmmTMB (R)")
    try:
        recs = fit_glmm_r(q, list(included), included)
    except TwinError as e:
        if config.use_r == "always":
            raise
        return {"used": False, "reason": str(e)}
    records.extend(recs)
    return {"used": True, "n_tests": len(recs)}


def analyze(config: AnalysisConfig, out_dir: str | os.PathLike, progress: bool | Callable[[str], None] = False,
            edges: pd.DataFrame | None = None) -> dict[str, Any]:
    """Run the like-to-like and invariance analysis of ``config`` into ``out_dir``.

    ``edges``: an edge table to analyse instead of building one from ``config.connectome``.
    Returns the results.json content."""
    from twin.analysis.inclusion import quality_mask
    from twin.config import to_dict
    from twin.provenance import provenance

    check_config(config)
    log = _logger(progress)
    out = Path(out_dir)
    if edges is None and config.edges:
        from twin.connectome import read_edge_table
        log(f"reading the edge table {config.edges}")
        edges = read_edge_table(config.edges)
    if edges is None:
        check_inputs(config)
        log(f"building the edge table from {config.connectome}")
        edges = load_edges(config, progress=bool(progress))
    check_edges(edges, config.edges or config.connectome or None)
    edges = edges.copy()
    edges["quality_ok"] = quality_mask(edges, config.cc_max, config.cc_abs)
    records, binned, info = run_tests(edges, config, log)
    inputs = [p for p in (config.connectome, config.profiles, config.metrics, config.edges) if p and Path(p).exists()]
    results = {"tests": records, **info, "files": {"edges": "edges.parquet", "binned": "binned.parquet"},
               "provenance": provenance(to_dict(config), inputs)}
    if edges.attrs:
        results["edge_table"] = {k: v for k, v in edges.attrs.items() if k != "provenance"}
    out.mkdir(parents=True, exist_ok=True)
    _save_edges(edges, out / "edges.parquet")
    with atomic_path(out / "binned.parquet") as tmp:
        binned.to_parquet(tmp, index=False)
    results = _clean(results)
    write_text_atomic(out / "results.json", json.dumps(results, indent=1, allow_nan=False, default=_json_default))
    log(f"wrote {out}/results.json ({len(records)} tests)")
    return results


def _save_edges(edges: pd.DataFrame, path: Path) -> None:
    """Write through twin.connectome's edge-table writer (provenance in the parquet metadata)."""
    try:
        from twin.connectome import save_edge_table
    except ImportError:
        save_edge_table = None
    if save_edge_table is not None:
        save_edge_table(edges, path)
        return
    plain = edges.copy(deep=False)
    plain.attrs = {}
    with atomic_path(path) as tmp:
        plain.to_parquet(tmp, index=False)


def _clean(v: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


__all__ = ["analyze", "run_tests", "load_edges", "check_inputs", "summarize", "check_edges", "METHODS"]

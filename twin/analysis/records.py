"""One record per statistical test (the rows of results.json) and Benjamini-Hochberg adjustment.

Every record has the contract's fields: name, family, measure, projection, estimate, ci_low,
ci_high, p, p_adj, n_pre, n_pairs, n_synapses, included, reason; extra fields (se, df, level,
method, ...) follow. Excluded tests keep their counts, with estimate/p None and the reason.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

FAMILIES = ("synaptic_scale", "axonal_scale", "synapse_size", "per_pre_mean", "permutation", "invariance",
            "synaptic_scale_glmm")
FIELDS = ("name", "family", "measure", "projection", "estimate", "ci_low", "ci_high", "p", "p_adj",
          "n_pre", "n_pairs", "n_synapses", "included", "reason")


def _num(v: Any) -> Any:
    """JSON-safe scalar: numpy -> Python, NaN/inf -> None."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return v


def record(family: str, measure: str | None, projection: str | None, *, name: str | None = None,
           estimate: float | None = None, ci_low: float | None = None, ci_high: float | None = None,
           p: float | None = None, n_pre: int | None = None, n_pairs: int | None = None,
           n_synapses: int | None = None, included: bool = True, reason: str = "", **extra: Any
           ) -> dict[str, Any]:
    """A test record; ``name`` defaults to "family/measure/projection". p_adj is set later by
    :func:`adjust_bh`. An excluded record drops its estimate, interval and p."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")
    if not included:
        estimate = ci_low = ci_high = p = None
    rec = {"name": name or "/".join(str(s) for s in (family, measure, projection) if s),
           "family": family, "measure": measure, "projection": projection,
           "estimate": _num(estimate), "ci_low": _num(ci_low), "ci_high": _num(ci_high), "p": _num(p),
           "p_adj": None, "n_pre": _num(n_pre), "n_pairs": _num(n_pairs), "n_synapses": _num(n_synapses),
           "included": bool(included), "reason": reason}
    rec.update({k: _num(v) for k, v in extra.items()})
    return rec


def excluded(family: str, measure: str | None, projection: str | None, reason: str, **counts: Any
             ) -> dict[str, Any]:
    """A record for a test that was not run (or whose group failed the inclusion rules)."""
    return record(family, measure, projection, included=False, reason=reason, **counts)


def benjamini_hochberg(p: Iterable[float]) -> np.ndarray:
    """BH-adjusted p-values (step-up, monotone, capped at 1), same order as ``p`` (statsmodels)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(list(p), np.float64)
    if p.size == 0:
        return p
    return multipletests(p, method="fdr_bh")[1]


def adjust_bh(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``p_adj`` in place: BH within each (family, level) over included records with a p.

    level is "projection" or "area_layer" (the per-projection and the area x layer slopes are two
    families of hypotheses; mixing nested groups would double count). Returns ``records``."""
    fams: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        if r.get("included") and r.get("p") is not None:
            fams.setdefault((r["family"], str(r.get("level", "projection"))), []).append(i)
    for idx in fams.values():
        for i, q in zip(idx, benjamini_hochberg([records[i]["p"] for i in idx])):
            records[i]["p_adj"] = float(q)
    return records


__all__ = ["record", "excluded", "adjust_bh", "benjamini_hochberg", "FIELDS", "FAMILIES"]

"""Matplotlib figures of the report, returned as base64 PNG text (embedded as data: URIs)."""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_png_b64(fig: Any) -> str:
    """Render a matplotlib figure to PNG and return its base64 text; closes the figure."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def grouped_bars(groups: Sequence[str], series: dict[str, Sequence[float | None]], ylabel: str,
                 title: str) -> str:
    """Bars per group (x) and series (colour); None values are left out."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(groups) * max(1, len(series)) ** 0.5), 3.2))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for k, (name, vals) in enumerate(series.items()):
        v = np.array([np.nan if a is None else a for a in vals], float)
        ax.bar(x + k * width - 0.4 + width / 2, v, width, label=name)
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.axhline(0, color="k", lw=0.5)
    if len(series) > 1:
        ax.legend(fontsize=7, ncol=2)
    return to_png_b64(fig)


def scatter_truth(truth: np.ndarray, est: np.ndarray, xlabel: str, ylabel: str, title: str,
                  lim: tuple[float, float] | None = None) -> str:
    """Recovered (y) vs planted (x) with the identity line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.4, 3.2))
    ax.scatter(truth, est, s=8, alpha=0.6)
    lo, hi = lim if lim else (float(np.nanmin([truth.min(), est.min()])), float(np.nanmax([truth.max(), est.max()])))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return to_png_b64(fig)


def density_curves(panels: dict[str, dict[str, Any]], xlabel: str, title: str) -> str:
    """One panel per projection: density (synapses per um of Ld) vs similarity bin centre with
    a bootstrap band. ``panels[name] = {"x": [...], "density": [...], "lo": [...], "hi": [...]}``."""
    plt = _plt()
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 2.8), squeeze=False, sharey=False)
    for ax, (name, p) in zip(axes[0], panels.items()):
        x = np.asarray(p["x"], float)
        y = np.asarray([np.nan if v is None else v for v in p["density"]], float)
        lo = np.asarray([np.nan if v is None else v for v in p["lo"]], float)
        hi = np.asarray([np.nan if v is None else v for v in p["hi"]], float)
        ax.fill_between(x, lo, hi, alpha=0.3)
        ax.plot(x, y, "o-", ms=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
    axes[0][0].set_ylabel("synapses / um Ld")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png_b64(fig)


def forest(rows: Sequence[dict[str, Any]], title: str) -> str:
    """Estimates with CIs (horizontal bars) and published values (red crosses)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        est, lo, hi = r.get("estimate"), r.get("ci_low"), r.get("ci_high")
        if est is not None:
            ax.plot([lo if lo is not None else est, hi if hi is not None else est], [yi, yi], "-", color="C0")
            ax.plot([est], [yi], "o", color="C0")
        if r.get("published") is not None:
            ax.plot([r["published"]], [yi], "x", color="C3", ms=8)
    ax.set_yticks(y, [r["label"] for r in rows], fontsize=8)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("slope (change in log synapse density per unit)")
    ax.set_title(title + "  (o estimate with 95% CI, x published)", fontsize=9)
    return to_png_b64(fig)


def histogram(values: dict[str, np.ndarray], xlabel: str, title: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for name, v in values.items():
        v = np.asarray(v, float)
        v = v[np.isfinite(v)]
        if v.size:
            ax.hist(v, bins=20, alpha=0.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("neurons")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return to_png_b64(fig)


def line_plot(x: Sequence[float], ys: dict[str, Sequence[float]], xlabel: str, ylabel: str, title: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    for name, y in ys.items():
        ax.plot(x[:len(y)], y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return to_png_b64(fig)

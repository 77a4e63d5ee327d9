"""Sweep files (``experiments/sweeps/*.toml``) and the trials they expand into.

::

    name = "tiny_lr"
    config = "../train/tiny.toml"     # the stage config every trial starts from
    command = "train"                 # the `twin` subcommand (CONFIG --out DIR --set k=v)
    method = "grid"                   # grid: every combination; random: n_trials draws
    n_trials = 8                      # random only
    seed = 0                          # random draws; also `seed` is a normal key to sweep
    metric = "val_corr"               # val_corr: best validation correlation in metrics.jsonl;
                                      # else a dotted path into `metric_file` (JSON)
    metric_file = ""                  # e.g. "summary.json"
    mode = "max"                      # max or min
    set = []                          # overrides every trial shares

    [grid]                            # dotted key -> list of values
    "train.lr" = [0.003, 0.01]

    [space]                           # random: key -> {low, high, log} or {choices = [...]}
    "train.lr" = {low = 1e-3, high = 3e-2, log = true}

Each trial is named by a hash of its overrides, so re-running a sweep finds its finished trials.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from twin.config import apply_overrides, from_dict, read_toml
from twin.errors import InputError


@dataclass(frozen=True)
class SweepConfig:
    name: str = ""
    config: str = ""
    command: str = "train"
    argv: list[str] = field(default_factory=list)   # advanced: full argv template ({python} {config} {out})
    method: Literal["grid", "random"] = "grid"
    n_trials: int = 8
    seed: int = 0
    metric: str = "val_corr"
    metric_file: str = ""
    mode: Literal["max", "min"] = "max"
    set: list[str] = field(default_factory=list)
    timeout_s: float = 0.0                           # per trial; 0 = none
    grid: dict[str, list[Any]] = field(default_factory=dict)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_sweep(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> tuple[SweepConfig, Path]:
    """Read and validate a sweep TOML; returns the config and the folder its paths are relative to."""
    path = Path(path)
    cfg = from_dict(SweepConfig, apply_overrides(read_toml(path), list(overrides), path), path)
    if cfg.method == "grid" and not cfg.grid:
        raise InputError(path, "grid", "a [grid] table of key = [values] for method = \"grid\"", "none")
    if cfg.method == "random" and not (cfg.space or cfg.grid):
        raise InputError(path, "space", "a [space] table for method = \"random\"", "none")
    for k, v in cfg.grid.items():
        if not v:
            raise InputError(path, f"grid.{k}", "a non-empty list of values", "[]")
    for k, v in cfg.space.items():
        if "choices" not in v and not ({"low", "high"} <= set(v)):
            raise InputError(path, f"space.{k}", "{low, high[, log, int]} or {choices = [...]}", v)
        if v.get("log") and not (v.get("low", 1) > 0):
            raise InputError(path, f"space.{k}.low", "a positive number for log = true", v.get("low"))
    if not cfg.name:
        cfg = SweepConfig(**{**cfg.__dict__, "name": path.stem})
    return cfg, path.parent.resolve()


def toml_value(v: Any) -> str:
    """A value as TOML text, for a ``--set key=value`` override."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise InputError(None, "sweep value", "a number, string, bool or list", repr(v))


def trial_id(params: dict[str, Any]) -> str:
    """A stable 10-hex-digit name for a set of overrides."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]


def _draw(spec: dict[str, Any], rng: np.random.Generator) -> Any:
    if "choices" in spec:
        return spec["choices"][int(rng.integers(len(spec["choices"])))]
    lo, hi = float(spec["low"]), float(spec["high"])
    x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if spec.get("log") else rng.uniform(lo, hi)
    return int(round(x)) if spec.get("int") else float(f"{x:.6g}")


def expand_trials(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The trials' parameter dicts (dotted key -> value), in a deterministic order.

    grid: the Cartesian product of ``grid``; random: ``n_trials`` draws from ``space`` (and uniform
    choices from ``grid`` lists) with ``seed``. Duplicates are dropped."""
    if cfg.method == "grid":
        keys = list(cfg.grid)
        trials = [dict(zip(keys, combo)) for combo in itertools.product(*(cfg.grid[k] for k in keys))]
    else:
        rng = np.random.default_rng(cfg.seed)
        specs = {**{k: {"choices": v} for k, v in cfg.grid.items()}, **cfg.space}
        trials = [{k: _draw(s, rng) for k, s in specs.items()} for _ in range(cfg.n_trials)]
    seen, out = set(), []
    for t in trials:
        tid = trial_id(t)
        if tid not in seen:
            seen.add(tid)
            out.append(t)
    return out

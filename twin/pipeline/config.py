"""The pipeline config (``experiments/pipelines/*.toml``): which data, which stage configs.

::

    name = "demo"          # the pipeline's identity (default: the file's stem)
    seed = 0               # given to every stage's config (unless its `set` names `seed`)
    stages = [...]         # optional subset of train/evaluate/insilico/analyze/report

    [data]                 # source = "simulate" | "import" | "recordings"
    source = "simulate"
    preset = "default"     # simulate: a preset, and/or `config` = a simulator TOML
    set = ["population.neurons_per_scan=100"]
    # import:     format = "sensorium" | "nwb", paths = [folders or .nwb files], connectome = "dir"
    # recordings: paths = [Recording .h5 files or folders], connectome = "dir of CAVE tables"

    [train]                # config = a `twin train` TOML; set = dotted overrides
    [evaluate]             # batch_size
    [insilico]             # config = a `twin insilico` battery TOML; set = overrides;
                           # truth = true: on simulated data also run it on the planted neurons
                           # (truth_response = "observed" | "rate", see twin.simulate.truth)
    [analyze]              # config = a `twin analyze` TOML; set = overrides
    [report]               # title, bootstrap

Paths are relative to the pipeline file. Each stage's config is resolved (file read, overrides
applied, seed set) into a plain dict; that dict, not the file name, is what the cache key hashes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from twin.config import apply_overrides, from_dict, read_toml, to_dict
from twin.errors import InputError

ALL_STAGES = ("train", "evaluate", "insilico", "analyze", "report")


@dataclass(frozen=True)
class DataSection:
    source: Literal["simulate", "import", "recordings"] = "simulate"
    preset: str = "default"            # simulate: tiny | default | large
    config: str = ""                   # simulate: simulator TOML (keys it omits come from `preset`)
    set: list[str] = field(default_factory=list)
    format: Literal["sensorium", "nwb"] = "sensorium"   # import
    paths: list[str] = field(default_factory=list)      # import sources / Recording files
    connectome: str = ""               # import / recordings: folder of CAVE tables (parquet)


@dataclass(frozen=True)
class StageSection:
    config: str = ""                   # the stage's own TOML config
    set: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InsilicoSection:
    config: str = ""                   # a `twin insilico` battery TOML
    set: list[str] = field(default_factory=list)
    truth: bool = True                 # simulated data: also run the battery on the planted neurons
    # what the planted neurons answer: "observed" (their expected observed activity, what a twin of
    # the recordings predicts; then tuning also on their rates, in truth_rate/) or "rate"
    truth_response: str = "observed"


@dataclass(frozen=True)
class EvaluateSection:
    batch_size: int = 8


@dataclass(frozen=True)
class ReportSection:
    title: str = ""
    bootstrap: int = 200


@dataclass(frozen=True)
class PipelineConfig:
    name: str = ""
    seed: int = 0
    stages: list[str] = field(default_factory=lambda: list(ALL_STAGES))
    data: DataSection = field(default_factory=DataSection)
    train: StageSection = field(default_factory=StageSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    insilico: InsilicoSection = field(default_factory=InsilicoSection)
    analyze: StageSection = field(default_factory=StageSection)
    report: ReportSection = field(default_factory=ReportSection)


def load_pipeline(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()
                  ) -> tuple[PipelineConfig, Path]:
    """Read and validate a pipeline TOML; returns the config and the folder paths are relative to."""
    path = Path(path)
    cfg = from_dict(PipelineConfig, apply_overrides(read_toml(path), list(overrides), path), path)
    bad = [s for s in cfg.stages if s not in ALL_STAGES]
    if bad:
        raise InputError(path, "stages", f"a subset of {list(ALL_STAGES)}", bad[0])
    if cfg.insilico.truth_response not in ("observed", "rate"):
        raise InputError(path, "insilico.truth_response", '"observed" or "rate"', cfg.insilico.truth_response)
    if not cfg.name:
        cfg = PipelineConfig(**{**cfg.__dict__, "name": path.stem})
    return cfg, path.parent.resolve()


def resolve_file(base: Path, rel: str, field_name: str) -> Path:
    """``rel`` relative to ``base``; a missing file is an InputError naming the field."""
    p = (base / rel).resolve() if not Path(rel).is_absolute() else Path(rel)
    if not p.exists():
        raise InputError(p, field_name, "an existing file or folder", "no such path")
    return p


def stage_toml(base: Path, section: StageSection | InsilicoSection, field_name: str, seed: int,
               drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stage's TOML config (``section.config``) with ``section.set`` applied and ``seed`` set
    (unless the overrides set it); keys in ``drop`` (dotted) are removed (they are filled in at
    run time from upstream stages, so they must not enter the cache key)."""
    data = read_toml(resolve_file(base, section.config, f"{field_name}.config")) if section.config else {}
    if not any(s.split("=", 1)[0].strip() == "seed" for s in section.set):
        data["seed"] = seed
    data = apply_overrides(data, section.set, base)
    for key in drop:
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return data


def as_dict(cfg: PipelineConfig) -> dict[str, Any]:
    return to_dict(cfg)

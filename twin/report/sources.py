"""Where a report's inputs are: one folder per pipeline stage, each optional."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGE_DIRS = ("simulate", "import", "recordings", "train", "evaluate", "insilico", "analyze", "sweep")


@dataclass(frozen=True)
class Sources:
    """Stage output folders (None = absent). ``data`` is the simulate or import folder."""

    data: Path | None = None
    train: Path | None = None
    evaluate: Path | None = None
    insilico: Path | None = None
    analyze: Path | None = None
    sweep: Path | None = None
    pipeline: Path | None = None   # the pipeline folder (pipeline.json, manifests/)

    @property
    def is_simulated(self) -> bool:
        return self.data is not None and (self.data / "truth" / "units.parquet").is_file()

    def input_paths(self) -> list[Path]:
        return [p for p in (self.data, self.train, self.evaluate, self.insilico, self.analyze, self.sweep)
                if p is not None]


def _dir(p: str | os.PathLike | None) -> Path | None:
    if p is None:
        return None
    p = Path(p)
    return p if p.is_dir() else None


def from_pipeline_dir(root: str | os.PathLike, **override: str | os.PathLike | None) -> Sources:
    """The stage folders of a ``twin run`` output folder (``ROOT/<stage>/``); keyword arguments
    (``train=...``) replace single ones."""
    root = Path(root)
    found: dict[str, Any] = {name: _dir(root / name) for name in STAGE_DIRS}
    data = found.pop("simulate") or found.pop("import") or found.pop("recordings")
    found.pop("import", None)
    found.pop("recordings", None)
    kw = {"data": data, **found, "pipeline": root if root.is_dir() else None}
    for k, v in override.items():
        if v is not None:
            kw[k] = Path(v)
    return Sources(**kw)


def read_json(path: Path) -> Any | None:
    """Parsed JSON, or None when the file is absent."""
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text())

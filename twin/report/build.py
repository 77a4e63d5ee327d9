"""``build_report(sources, out_dir)``: one self-contained HTML page and its JSON twin.

The page embeds every figure as a base64 PNG ``data:`` URI (no external files), and the JSON
(``report.json``) holds every number shown on the page, rounded as shown. Sections whose stage
output is missing say so instead of failing. Both files are written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from twin.io import write_text_atomic
from twin.report import html as H
from twin.report import sections_connectivity as C
from twin.report import sections_data as D
from twin.report import sections_meta as M
from twin.report.sources import Sources, from_pipeline_dir


def build_sections(src: Sources, config: dict[str, Any] | None = None, n_boot: int = 200) -> list[D.Section]:
    """Every section of the report, in page order."""
    return [D.data_summary(src), D.training(src), D.quality(src), D.recovery(src),
            C.density(src, n_boot=n_boot), C.slopes(src), C.invariance(src), C.verdicts(src),
            M.sweep(src), M.provenance_section(src, config)]


def build_report(src: Sources | str | os.PathLike, out_dir: str | os.PathLike, *,
                 title: str = "twin report", config: dict[str, Any] | None = None,
                 n_boot: int = 200) -> dict[str, Path]:
    """Write ``out_dir/report.html`` and ``out_dir/report.json``.

    Args:
      src: a :class:`Sources` or a ``twin run`` output folder (its stage sub-folders).
      out_dir: where the two files go (created if needed).
      config: the pipeline config to record under provenance (default: the folder's pipeline.json).
      n_boot: bootstrap resamples for the density bands.
    Returns: ``{"html": path, "json": path}``.
    """
    if not isinstance(src, Sources):
        src = from_pipeline_dir(src)
    sections = build_sections(src, config, n_boot)
    data = {"title": title, "sections": {s.anchor: {"title": s.title, **s.data} for s in sections}}
    page = H.page(title, [(s.anchor, s.title, s.html) for s in sections])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"html": out_dir / "report.html", "json": out_dir / "report.json"}
    write_text_atomic(paths["json"], json.dumps(data, indent=1) + "\n")
    write_text_atomic(paths["html"], page)
    return paths

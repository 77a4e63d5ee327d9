"""Report sections about the run itself: the sweep leaderboard and provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin.report import html as H
from twin.report.numbers import clean, fmt
from twin.report.sections_data import Section
from twin.report.sources import Sources, read_json

KEY_FILES = ("summary.json", "truth/params.json", "model.json", "config.toml", "profiles.h5",
             "results.json", "edges.parquet", "leaderboard.csv")


def sweep(src: Sources, top: int = 10) -> Section:
    """The best trials of a ``twin sweep`` (its leaderboard.csv)."""
    title = "Sweep leaderboard"
    path = src.sweep / "leaderboard.csv" if src.sweep else None
    if path is None or not path.is_file():
        return Section.absent("sweep", title, "No sweep was run (sweep/leaderboard.csv absent).")
    import pandas as pd

    df = pd.read_csv(path).head(top)
    rows = clean(df.astype(object).where(df.notna(), None).to_dict("records"))
    data = {"status": "ok", "n_shown": len(rows), "trials": rows}
    cols = list(df.columns)
    return Section("sweep", title, data, H.table(cols, [[r[c] for c in cols] for r in rows],
                                                 f"Top {len(rows)} trials"))


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        out = []
        for k, v in d.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(d, list) and d and all(isinstance(v, dict) for v in d):
        return [x for i, v in enumerate(d) for x in _flatten(v, f"{prefix}[{i}]")]
    return [(prefix, d)]


def _text(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_text(x) for x in v) + "]"
    return fmt(v)


def provenance_section(src: Sources, config: dict[str, Any] | None) -> Section:
    """Pipeline config, SHA-256 of the key input files, package versions and the git commit."""
    from twin.provenance import provenance

    inputs = [p / name for p in src.input_paths() for name in KEY_FILES if (p / name).is_file()]
    if config is None and src.pipeline is not None:
        config = (read_json(src.pipeline / "pipeline.json") or {}).get("config")
    prov = provenance(clean(config), inputs)
    stage_keys = {}
    if src.pipeline is not None and (src.pipeline / "manifests").is_dir():
        for m in sorted((src.pipeline / "manifests").glob("*.json")):
            man = read_json(m) or {}
            if "key" in man:
                stage_keys[m.stem] = man["key"]
    data = {"status": "ok", "created": prov["created"], "git_commit": prov["git_commit"],
            "versions": prov["versions"], "inputs": prov["inputs"], "stage_keys": stage_keys,
            "config": prov["config"]}
    parts = [H.table(["item", "value"], [["created", data["created"]], ["git commit", data["git_commit"] or "n/a"]]
                     + [[f"version: {k}", v] for k, v in data["versions"].items()])]
    if data["inputs"]:
        parts.append(H.table(["input file", "sha256"], list(data["inputs"].items()), "Input hashes"))
    if stage_keys:
        parts.append(H.table(["stage", "cache key"], list(stage_keys.items()), "Pipeline stage keys"))
    if config:
        lines = "\n".join(f"{k} = {_text(v)}" for k, v in _flatten(data["config"]))
        parts.append(H.details("Configuration", f"<pre>{H.esc(lines)}</pre>"))
    else:
        parts.append(H.missing("No pipeline configuration was recorded."))
    return Section("provenance", "Provenance", data, "".join(parts))

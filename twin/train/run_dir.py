"""The trained run directory: resolved config (TOML), model.json, units, final parameters.

::

    RUN_DIR/config.toml       resolved config        RUN_DIR/checkpoints/   Orbax (training state)
    RUN_DIR/metrics.jsonl     one JSON line per step / evaluation
    RUN_DIR/model.json        what load_model needs (sizes, scans, time base, finished flag)
    RUN_DIR/units.parquet     one row per neuron of every scan, in output order
    RUN_DIR/params/           Orbax: final (best) model state (parameters and statistics)
    RUN_DIR/provenance.json
An ensemble run directory holds ``seed_<s>/`` members and a model.json with ``"members"``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from twin.io import atomic_path, write_text_atomic


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if v is None:
        raise ValueError("TOML has no null")
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A TOML document for a nested dict of numbers, strings, bools, lists and tables
    (``None`` values are left out, so they take their defaults when read back)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}.{k}" if prefix else k
            out += f"\n[{name}]\n" + to_toml(v, name)
    return out


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, default=str))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def save_state(path: Path, pure: Any) -> None:
    """Write a pytree of arrays with Orbax atomically (replacing ``path``)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    with atomic_path(path, is_dir=True) as tmp:
        shutil.rmtree(tmp)
        ckptr = ocp.StandardCheckpointer()
        ckptr.save(tmp, pure)
        ckptr.wait_until_finished()


def restore_state(path: Path, target: Any) -> Any:
    """Read a pytree written by :func:`save_state` into the structure of ``target``."""
    import orbax.checkpoint as ocp

    return ocp.StandardCheckpointer().restore(Path(path).absolute(), target)


def is_finished(run_dir: Path) -> bool:
    p = Path(run_dir) / "model.json"
    return p.is_file() and bool(read_json(p).get("finished", False))

"""The cached, resumable stage runner behind ``twin run``.

A pipeline is an ordered list of :class:`Stage` (name, upstream stage names, function). Each
stage writes into ``OUT/<name>/``. Its cache key is the SHA-256 of its resolved config section,
the keys of its upstream stages and twin's version, so changing one setting changes that
stage's key and, through the chain, the keys of everything downstream, and nothing else.

Bookkeeping lives in ``OUT/manifests/``: ``<name>.partial.json`` (key, start time) is written
before a stage starts, and ``<name>.json`` (key, timing, the stage's own summary) is written
atomically after it finishes, last. A stage is skipped when its manifest holds the current key.
A stage that was interrupted (partial marker with the same key) is called again on its existing
folder when it can resume internally (``resumable=True``, e.g. training from its checkpoints);
otherwise its folder is cleared and it starts over. ``OUT/pipeline.json`` records the pipeline's
identity (its name): running a different pipeline into the same OUT is refused unless ``force``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TextIO

from twin import __version__
from twin.errors import InputError
from twin.io import write_text_atomic


@dataclass
class StageContext:
    """What a stage function gets: its name, resolved config section, output folder, the
    output folders of its upstream stages, the pipeline's seed, and whether it is resuming."""

    name: str
    section: dict[str, Any]
    out_dir: Path
    inputs: dict[str, Path]
    seed: int
    resume: bool = False
    progress: bool = True
    pipeline: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One step: ``fn(ctx) -> dict`` (a JSON-ready summary kept in the manifest)."""

    name: str
    deps: tuple[str, ...]
    fn: Callable[[StageContext], dict[str, Any] | None]
    section: dict[str, Any] = field(default_factory=dict)
    resumable: bool = False


def stage_key(stage: Stage, upstream: dict[str, str], seed: int) -> str:
    """Hex SHA-256 of (name, version, seed, resolved section, upstream keys): the cache key."""
    blob = json.dumps({"stage": stage.name, "twin": __version__, "seed": seed, "config": stage.section,
                       "inputs": {d: upstream[d] for d in stage.deps}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _dependents(stages: Sequence[Stage], roots: Iterable[str]) -> set[str]:
    out = set(roots)
    for s in stages:  # stages are in dependency order
        if out & set(s.deps):
            out.add(s.name)
    return out


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def check_out_dir(out: Path, name: str, force: bool, stage_names: Sequence[str]) -> None:
    """Refuse to write into an OUT that holds another pipeline's (or anything else's) outputs."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(out, "--out", "a folder (or a path that does not exist yet)", "a file")
    ident = _read(out / "pipeline.json")
    if ident is None:
        if any(out.iterdir()) and not force:
            raise InputError(out, "--out", "a new or empty folder, or one written by `twin run` "
                                           "(use --force to write into it anyway)", "a non-empty folder")
        return
    if ident.get("name") != name and not force:
        raise InputError(out, "pipeline", f"the pipeline {ident.get('name')!r} this folder holds "
                                          "(use another --out, or --force to replace it)", repr(name))


def run_stages(stages: Sequence[Stage], out: str | Path, *, name: str, seed: int = 0,
               config: dict[str, Any] | None = None, force: bool = False, rerun: Iterable[str] = (),
               until: str | None = None, dry_run: bool = False, progress: bool = True,
               log: TextIO | None = None) -> dict[str, dict[str, Any]]:
    """Run ``stages`` (in order) into ``out``, skipping those whose manifest holds their key.

    Args:
      stages: in dependency order; each dep must name an earlier stage.
      out: output folder; ``out/<stage>/`` per stage, ``out/manifests/``, ``out/pipeline.json``.
      name: the pipeline's identity; seed: passed to every stage and part of every key.
      force: re-run every stage and accept an ``out`` holding another pipeline.
      rerun: stage names to re-run (with everything downstream) even if cached.
      until: stop after this stage; dry_run: only report what would run.
    Returns: ``{stage: {"action": "cached"|"ran"|"resumed"|"would run"|..., "key": ..., ...}}``.
    """
    out = Path(out)
    log = log or sys.stderr
    names = [s.name for s in stages]
    for s in stages:
        bad = [d for d in s.deps if d not in names[:names.index(s.name)]]
        if bad:
            raise ValueError(f"stage {s.name!r} depends on {bad}, which do not run before it")
    unknown = [r for r in list(rerun) + ([until] if until else []) if r not in names]
    if unknown:
        raise InputError(None, "stage", f"one of {names}", unknown[0])
    check_out_dir(out, name, force, names)
    redo = set(names) if force else _dependents(stages, rerun)
    man_dir = out / "manifests"
    if not dry_run:
        old = _read(out / "pipeline.json") or {}
        for gone in [s for s in old.get("stages", []) if s not in names]:  # e.g. simulate -> import
            shutil.rmtree(out / gone, ignore_errors=True)
            for suffix in (".json", ".partial.json"):
                (man_dir / f"{gone}{suffix}").unlink(missing_ok=True)
        man_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "pipeline.json", json.dumps(
            {"name": name, "seed": seed, "stages": names, "config": config, "updated": _now()}, indent=1, default=str))
    keys: dict[str, str] = {}
    report: dict[str, dict[str, Any]] = {}
    t_start = time.monotonic()
    n = len(stages)
    for i, stage in enumerate(stages):
        key = stage_key(stage, keys, seed)
        keys[stage.name] = key
        nxt = stages[i + 1].name if i + 1 < n and stage.name != until else "done"
        tag = f"[{i + 1}/{n}] {stage.name}"
        man, partial = man_dir / f"{stage.name}.json", man_dir / f"{stage.name}.partial.json"
        done = _read(man)
        stage_dir = out / stage.name
        if done and done.get("key") == key and stage.name not in redo and stage_dir.exists():
            report[stage.name] = {"action": "cached", "key": key}
            print(f"{tag}: cached (key {key[:12]}), next: {nxt}", file=log, flush=True)
        else:
            part = _read(partial)
            resume = bool(part and part.get("key") == key and stage.resumable and stage_dir.exists()
                          and stage.name not in redo)
            why = ("forced" if stage.name in redo else "interrupted earlier" if resume
                   else "config or inputs changed" if done else "not run yet")
            if dry_run:
                report[stage.name] = {"action": "would resume" if resume else "would run", "why": why, "key": key}
                print(f"{tag}: would {'resume' if resume else 'run'} ({why})", file=log, flush=True)
            else:
                # first: a stale manifest must never vouch for a partial folder, and whatever was
                # computed from this stage's old output is stale too (even where its key is unchanged)
                for name in _dependents(stages, [stage.name]):
                    (man_dir / f"{name}.json").unlink(missing_ok=True)
                if not resume and stage_dir.exists():
                    shutil.rmtree(stage_dir)
                write_text_atomic(partial, json.dumps({"key": key, "started": _now()}))
                print(f"{tag}: {'resuming' if resume else 'running'} ({why}); "
                      f"total elapsed {_elapsed(time.monotonic() - t_start)}; next: {nxt}", file=log, flush=True)
                t0 = time.monotonic()
                ctx = StageContext(stage.name, stage.section, stage_dir,
                                   {d: out / d for d in stage.deps}, seed, resume, progress, config or {})
                result = stage.fn(ctx) or {}
                secs = time.monotonic() - t0
                stage_dir.mkdir(parents=True, exist_ok=True)
                write_text_atomic(man, json.dumps({"stage": stage.name, "key": key, "config": stage.section,
                                                   "inputs": {d: keys[d] for d in stage.deps},
                                                   "finished": _now(), "seconds": round(secs, 3),
                                                   "resumed": resume, "result": result},
                                                  indent=1, default=str))
                partial.unlink(missing_ok=True)
                report[stage.name] = {"action": "resumed" if resume else "ran", "key": key,
                                      "seconds": secs, "result": result}
                print(f"{tag}: done in {_elapsed(secs)}; next: {nxt}", file=log, flush=True)
        if stage.name == until:
            break
    return report

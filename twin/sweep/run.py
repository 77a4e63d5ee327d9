"""Running a sweep's trials (local processes or Ray) and gathering the leaderboard.

Every trial is one process: ``twin <command> CONFIG --out SWEEP_OUT/trials/<id> --set k=v ...``
(or the ``argv`` template), so trials are isolated (a crash, an OOM or a NaN ends one trial, not
the sweep) and a trial killed mid-way resumes with the command's own resume (training continues
from its checkpoints). ``trials/<id>/trial.json`` records params, status (ok|failed), metric,
seconds, the command and the error tail; it is written atomically when the trial ends. Re-running
the sweep skips trials whose status is ok and retries failed or unfinished ones.

The leaderboard (``leaderboard.csv`` and ``leaderboard.nc``, an xarray Dataset with dim
``trial``) lists every trial, best first by the metric.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from twin.errors import InputError, TwinError
from twin.io import atomic_path, write_text_atomic
from twin.sweep.config import SweepConfig, toml_value, trial_id


def trial_argv(cfg: SweepConfig, base: Path, params: dict[str, Any], out: Path) -> list[str]:
    """The command line of one trial (shared ``set`` first, then the trial's own overrides)."""
    config = str((base / cfg.config).resolve()) if cfg.config else ""
    if cfg.config and not Path(config).is_file():
        raise InputError(config, "config", "an existing stage config (TOML)", "no such file")
    template = cfg.argv or ["{python}", "-m", "twin.cli", cfg.command, "{config}", "--out", "{out}", "--quiet"]
    argv = [a.format(python=sys.executable, config=config, out=str(out)) for a in template]
    for s in cfg.set:
        argv += ["--set", s]
    for k, v in params.items():
        argv += ["--set", f"{k}={toml_value(v)}"]
    return argv


def read_metric(cfg: SweepConfig, out: Path) -> float | None:
    """The trial's score: best ``val_corr`` of ``metrics.jsonl`` (also in ``seed_*/`` members), or
    the dotted ``metric`` path in ``metric_file`` (JSON). None when absent."""
    if not cfg.metric_file:
        logs = [out / "metrics.jsonl"] if (out / "metrics.jsonl").is_file() else sorted(out.glob("*/metrics.jsonl"))
        vals = [json.loads(line).get(cfg.metric) for p in logs for line in p.read_text().splitlines() if line.strip()]
        vals = [float(v) for v in vals if isinstance(v, (int, float))]
        if not vals:
            return None
        return max(vals) if cfg.mode == "max" else min(vals)
    p = out / cfg.metric_file
    if not p.is_file():
        return None
    node: Any = json.loads(p.read_text())
    for part in cfg.metric.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, (int, float)) else None


def run_trial(argv: list[str], out: str, timeout_s: float = 0.0) -> dict[str, Any]:
    """Run one trial's process; returns status, seconds, return code and the output's tail.
    Pure data in and out, so it runs the same in a thread, a process or a Ray worker."""
    Path(out).mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        with open(Path(out) / "trial.log", "ab") as logf:
            rc = subprocess.run(argv, stdout=logf, stderr=subprocess.STDOUT,
                                timeout=timeout_s or None).returncode
        err = None if rc == 0 else f"exit code {rc}"
    except subprocess.TimeoutExpired:
        rc, err = -1, f"timed out after {timeout_s} s"
    except OSError as e:
        rc, err = -1, f"could not start: {e}"
    tail = ""
    if err:
        text = (Path(out) / "trial.log").read_text(errors="replace").strip().splitlines()
        tail = "\n".join(text[-5:])
    return {"returncode": rc, "error": err, "log_tail": tail, "seconds": round(time.monotonic() - t0, 3)}


def _local_executor(workers: int):
    pool = ThreadPoolExecutor(max_workers=workers)  # each trial is its own process

    def submit(argv, out, timeout):
        return pool.submit(run_trial, argv, out, timeout)

    def gather(futures):
        done, pending = wait(futures, return_when=FIRST_COMPLETED)
        return [(f, f.result()) for f in done], list(pending)

    return submit, gather, lambda: pool.shutdown(wait=True)


def _ray_executor(workers: int):
    try:
        import ray
    except ModuleNotFoundError:
        raise TwinError("sweep: --executor ray needs Ray: pip install 'twin[ray]'") from None
    if not ray.is_initialized():
        addr = os.environ.get("RAY_ADDRESS")
        ray.init(address=addr) if addr else ray.init(num_cpus=workers)
    remote = ray.remote(num_cpus=1)(run_trial)

    def submit(argv, out, timeout):
        return remote.remote(argv, out, timeout)

    def gather(refs):
        done, pending = ray.wait(refs, num_returns=1)
        return [(r, ray.get(r)) for r in done], list(pending)

    return submit, gather, lambda: None


def sweep_fingerprint(cfg: SweepConfig, base: Path) -> str:
    """SHA-256 of what every trial shares (the base config's content, shared overrides, command,
    metric): a trial finished under another fingerprint is not reused."""
    import hashlib

    from twin.config import read_toml

    content = read_toml((base / cfg.config).resolve()) if cfg.config else {}
    blob = json.dumps({"config": content, "set": cfg.set, "command": cfg.command, "argv": cfg.argv,
                       "metric": [cfg.metric, cfg.metric_file, cfg.mode]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_sweep(cfg: SweepConfig, base: Path, out: str | os.PathLike, trials: list[dict[str, Any]], *,
              executor: str = "local", workers: int = 1, log: TextIO | None = None,
              retry_failed: bool = True, force: bool = False) -> "pd.DataFrame":  # noqa: F821
    """Run every trial not yet done into ``out/trials/<id>/`` and write the leaderboard.

    Args:
      trials: parameter dicts (dotted key -> value), e.g. from :func:`expand_trials`.
      executor: "local" (``workers`` concurrent processes) or "ray" (a Ray cluster: RAY_ADDRESS,
        else a local Ray with ``workers`` CPUs; ``out`` must be on a filesystem all nodes share).
    Returns: the leaderboard DataFrame (also ``out/leaderboard.csv`` and ``out/leaderboard.nc``).
    """
    out = Path(out)
    log = log or sys.stderr
    if workers < 1:
        raise InputError(None, "--workers", "an integer >= 1", workers)
    old = _read(out / "sweep.json")
    if old is not None and old.get("name") != cfg.name:
        if not force:
            raise InputError(out, "sweep", f"the sweep {old.get('name')!r} this folder holds (use another "
                                           "--out, or --force to replace it)", repr(cfg.name))
        shutil.rmtree(out / "trials", ignore_errors=True)
    elif old is None and out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(out, "--out", "a new or empty folder, or one written by `twin sweep`", "a non-empty folder")
    fp = sweep_fingerprint(cfg, base)
    write_text_atomic(out / "sweep.json", json.dumps({"name": cfg.name, "fingerprint": fp, "config": cfg.__dict__},
                                                     indent=1, default=str))
    todo = []
    for params in trials:
        tid = trial_id(params)
        tdir = out / "trials" / tid
        rec = _read(tdir / "trial.json")
        same = rec is not None and rec.get("fingerprint") == fp
        if same and (rec.get("status") == "ok" or (rec.get("status") == "failed" and not retry_failed)):
            continue
        started = _read(tdir / "trial.start.json")
        if tdir.exists() and (force or (started or {}).get("fingerprint") != fp):
            shutil.rmtree(tdir)  # begun under other shared settings (or forced): start clean
        todo.append((tid, params))
    print(f"sweep {cfg.name}: {len(trials)} trials, {len(trials) - len(todo)} already done, "
          f"{len(todo)} to run on {executor} with {workers} worker(s)", file=log, flush=True)
    if todo:
        submit, gather, close = (_ray_executor if executor == "ray" else _local_executor)(workers)
        running: dict[Any, tuple[str, dict[str, Any], list[str]]] = {}
        queue = list(todo)
        n_done, t0 = 0, time.monotonic()
        try:
            while queue or running:
                while queue and len(running) < workers:
                    tid, params = queue.pop(0)
                    tdir = out / "trials" / tid
                    argv = trial_argv(cfg, base, params, tdir)
                    tdir.mkdir(parents=True, exist_ok=True)
                    write_text_atomic(tdir / "trial.start.json", json.dumps({"fingerprint": fp, "argv": argv}))
                    running[submit(argv, str(tdir), cfg.timeout_s)] = (tid, params, argv)
                finished, _ = gather(list(running))
                for handle, res in finished:
                    tid, params, argv = running.pop(handle)
                    tdir = out / "trials" / tid
                    metric = read_metric(cfg, tdir) if res["error"] is None else None
                    status = "ok" if res["error"] is None and metric is not None else "failed"
                    if res["error"] is None and metric is None:
                        res["error"] = f"finished but no metric {cfg.metric!r} was found"
                    write_text_atomic(tdir / "trial.json", json.dumps(
                        {"trial": tid, "params": params, "status": status, "metric": metric, "argv": argv,
                         "fingerprint": fp, **res},
                        indent=1))
                    n_done += 1
                    el = time.monotonic() - t0
                    left = el / n_done * (len(todo) - n_done)
                    print(f"  [{n_done}/{len(todo)}] trial {tid} {status}"
                          + (f" {cfg.metric}={metric:.4g}" if metric is not None else f" ({res['error']})")
                          + f" in {res['seconds']:.1f} s; about {left:.0f} s left", file=log, flush=True)
        finally:
            close()
    board = leaderboard(cfg, out, trials)
    best = board[board.status == "ok"].head(1)
    if len(best):
        print(f"best: trial {best.trial.iloc[0]} {cfg.metric}={best.metric.iloc[0]:.4g} "
              f"({', '.join(f'{k}={best[k].iloc[0]}' for k in trials[0])})", file=log, flush=True)
    return board


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def leaderboard(cfg: SweepConfig, out: Path, trials: Iterable[dict[str, Any]]) -> "pd.DataFrame":  # noqa: F821
    """Gather ``trials/<id>/trial.json`` of the given trials into a table, best first; write CSV
    and netCDF (xarray, dim ``trial``) atomically."""
    import pandas as pd
    import xarray as xr

    rows = []
    for params in trials:
        tid = trial_id(params)
        rec = _read(out / "trials" / tid / "trial.json") or {"status": "not run", "metric": None,
                                                               "seconds": None, "error": None}
        rows.append({"trial": tid, **{k: (toml_value(v) if isinstance(v, list) else v) for k, v in params.items()},
                     "status": rec["status"], "metric": rec.get("metric"), "seconds": rec.get("seconds"),
                     "error": rec.get("error") or ""})
    df = pd.DataFrame(rows)
    df["metric"] = pd.to_numeric(df["metric"], errors="coerce")
    df = df.sort_values("metric", ascending=(cfg.mode == "min"), na_position="last", kind="stable")
    df.insert(0, "rank", range(1, len(df) + 1))
    df = df.reset_index(drop=True)
    with atomic_path(out / "leaderboard.csv") as tmp:
        df.to_csv(tmp, index=False)
    ds = xr.Dataset.from_dataframe(df.set_index("trial"))
    for name in ds.data_vars:
        if ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
    ds.attrs.update({"sweep": cfg.name, "metric": cfg.metric, "mode": cfg.mode})
    with atomic_path(out / "leaderboard.nc") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return df


_: Callable = run_trial

"""Ensemble members trained side by side, one process per share of the CPU cores.

On a CPU, XLA runs each of a twin's small convolutions on all cores, and the cores are far from
fully used: on the 2-core development machine the demo's training step took 1.19 s on both cores
and 1.72 s on one (2026-12-06). Side by side, one core each, two members' steps took 1.90 and
1.96 s in make demo (they share the memory system): two steps per ~1.93 s where one after the
other they take two per 2.38 s. The start-ups and the readout refits overlap as well.

``train.member_processes`` chooses how many processes share the members (round robin, each
member still its own run directory, checkpoints and resume); 0 picks as many as there are
members and CPU cores, on a CPU backend only (one GPU is not shared this way). Each process is
pinned to its own contiguous share of the cores (``os.sched_setaffinity``, which XLA's thread
pool follows) and its BLAS/OpenMP threads are limited to that share. The parent shows one
progress bar over all members' steps (read from their ``metrics.jsonl``), re-raises a member's
:class:`~twin.errors.InputError` as its own, and on Ctrl-C stops them all; the next run resumes
every member from its last checkpoint.

Memory: each process holds its own copy of the training data and its own refit design blocks
(``refit.max_block_mb``), so the processes' peaks add up.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> list[int]:
    """The CPU cores this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:                  # not Linux
        return list(range(os.cpu_count() or 1))


def member_processes(requested: int, n_members: int, distributed: bool) -> int:
    """How many processes train ``n_members`` members: ``requested`` (>= 1) as given, capped at
    the members; 0 = auto, as many as members and cores allow on a single-host CPU backend."""
    if n_members <= 1 or distributed:
        return 1
    if requested >= 1:
        return min(requested, n_members)
    import jax

    if jax.default_backend() != "cpu" or jax.process_count() > 1 or jax.device_count() > 1:
        return 1
    return max(1, min(n_members, len(available_cores())))


def core_shares(n: int, cores: list[int] | None = None) -> list[list[int]]:
    """``n`` contiguous, near-equal shares of ``cores`` (each at least one core; with fewer cores
    than shares, shares reuse cores round robin)."""
    cores = available_cores() if cores is None else list(cores)
    if len(cores) < n:
        return [[cores[i % len(cores)]] for i in range(n)]
    bounds = [round(i * len(cores) / n) for i in range(n + 1)]
    return [cores[bounds[i]:bounds[i + 1]] for i in range(n)]


@contextlib.contextmanager
def _thread_env(n: int):
    """BLAS/OpenMP thread counts for a child started inside (spawned children copy os.environ)."""
    old = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(n) for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker(cores: list[int], jobs: list[tuple], results) -> None:
    """Child process: pin to ``cores``, then train each job (``_train_one``'s arguments but
    progress) in turn, putting ("ok", dir) on ``results`` for each; on an error put ("input", dir,
    the InputError's fields) or ("error", dir, message) and stop."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cores)
    from twin.errors import InputError
    from twin.train.loop import _train_one

    for cfg, out_dir, source, freeze, force, stop_after in jobs:
        try:
            _train_one(cfg, out_dir, source, freeze, force, False, stop_after)
            results.put(("ok", str(out_dir)))
        except KeyboardInterrupt:
            return
        except InputError as e:
            results.put(("input", str(out_dir), (e.path, e.field, e.expected, None if e.got is None else str(e.got))))
            return
        except Exception as e:  # noqa: BLE001 (re-raised in the parent with the member named)
            results.put(("error", str(out_dir), f"{type(e).__name__}: {e}"))
            return


def _steps_done(member: Path) -> int:
    """Lines in a member's metrics.jsonl (one per step taken; cut back to a checkpoint on resume)."""
    try:
        with open(member / "metrics.jsonl", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _drain(results, timeout: float) -> list:
    """Messages on ``results``: waits up to ``timeout`` for the first, then takes what is there."""
    msgs = []
    try:
        msgs.append(results.get(timeout=timeout))
        while True:
            msgs.append(results.get_nowait())
    except queue.Empty:
        pass
    return msgs


def train_in_processes(jobs: list[tuple], processes: int, steps: int, progress: bool) -> None:
    """Train the members ``jobs`` (``_train_one``'s arguments but progress: cfg, out_dir, source,
    freeze, force, stop_after) in ``processes`` pinned processes, round robin. Raises the first
    member's error (an InputError as itself) after stopping the others."""
    from tqdm.auto import tqdm

    from twin.errors import InputError

    ctx = mp.get_context("spawn")          # a fresh interpreter: no forked XLA thread pools
    results = ctx.Queue()
    procs = []
    for share, group in zip(core_shares(processes), [jobs[i::processes] for i in range(processes)]):
        with _thread_env(len(share)):
            p = ctx.Process(target=_worker, args=(share, group, results))
            p.start()
        procs.append(p)
    dirs = [Path(j[1]) for j in jobs]
    bar = tqdm(total=steps * len(jobs), desc=f"train {len(jobs)} members in {processes} processes",
               unit="step", disable=not progress)
    done, failure = 0, None

    def take(msgs):
        nonlocal done, failure
        for msg in msgs:
            done += msg[0] == "ok"
            if msg[0] != "ok" and failure is None:
                failure = msg

    try:
        while failure is None and done < len(jobs):
            take(_drain(results, 2.0))
            bar.n = min(sum(_steps_done(d) for d in dirs), bar.total)
            bar.set_postfix(finished=f"{done}/{len(jobs)}")
            bar.refresh()
            if failure is None and done < len(jobs) and not any(p.is_alive() for p in procs):
                take(_drain(results, 1.0))           # the last messages may still be in the pipe
                if failure is None and done < len(jobs):
                    failure = ("error", "a member process", "exited before its members were trained "
                               f"(exit codes {[p.exitcode for p in procs]}; out of memory?)")
    finally:
        bar.close()
        for p in procs:                                    # an error or Ctrl-C: stop the rest
            if p.is_alive() and (failure is not None or done < len(jobs)):
                p.terminate()
        for p in procs:
            p.join()
    if failure is not None:
        if failure[0] == "input":
            raise InputError(*failure[2])
        raise RuntimeError(f"{failure[1]}: {failure[2]}")

"""Batches of fixed-length time windows from Recording files, read lazily with background prefetch.

:class:`Batches` cuts every selected trial into windows of ``window`` frames lying inside its
``n_frames`` (non-overlapping, at a random offset per trial and epoch), groups the windows of
each recording into batches (a batch never mixes recordings: readouts differ in neuron count)
and interleaves the recordings' batches in a random order. Everything is a pure function of
``(seed, epoch)``. Reads go straight through h5py slicing of the one-trial-per-chunk datasets,
so memory is bounded by ``batch_size x window`` (times the prefetch depth), never by the file.

:func:`iter_trials` yields whole trials of a tier, in file order, for evaluation.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np

from twin.data.recording import TIERS, open_recording
from twin.errors import InputError

TRACES = ("response", "running", "pupil", "eye_position")


@dataclass(frozen=True)
class _Meta:
    path: Path
    recording_id: str
    tier: np.ndarray        # (n_trial,) str
    n_frames: np.ndarray    # (n_trial,) int
    n_unit: int


def _meta(path: Path) -> _Meta:
    with open_recording(path) as ds:  # validates the layout; reads metadata only
        return _Meta(path, str(ds.attrs["recording_id"]), np.asarray(ds["tier"].values).astype(str),
                     np.asarray(ds["n_frames"].values, np.int64), int(ds.sizes["unit"]))


class _Reader:
    """Open h5py handles of one Recording; reads windows of the bulk variables."""

    def __init__(self, path: Path):
        self.file = h5py.File(path, "r")
        self.ds = {name: self.file[name] for name in ("stimulus",) + TRACES}

    def read(self, trials: np.ndarray, starts: np.ndarray, length: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, d in self.ds.items():
            arr = np.empty((len(trials), length) + d.shape[2:], np.float32)
            for b, (t, s) in enumerate(zip(trials, starts)):
                arr[b] = d[int(t), int(s):int(s) + length]
            out[name] = arr
        return out

    def close(self) -> None:
        self.file.close()


class Batches:
    """Deterministic, prefetched batches of time windows from one or many Recordings.

    Each batch is a dict: ``recording_id`` (str), ``stimulus`` (B, T, H, W) float32 grey
    levels, ``response`` (B, T, N) float32, ``running`` and ``pupil`` (B, T) float32,
    ``eye_position`` (B, T, 2) float32, ``trial`` and ``start`` (B,) int64 (where each window
    came from). ``T = window`` frames at the recordings' frame rate.

    ``tiers`` selects trials; trials with fewer than ``window`` valid frames are skipped.
    ``drop_last`` drops each recording's final partial batch. ``prefetch`` batches are read
    ahead by a background thread (0 reads in the caller's thread).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], *, batch_size: int, window: int,
                 tiers: Sequence[str] = ("train",), seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False, prefetch: int = 2):
        if batch_size < 1 or window < 1:
            raise InputError(None, "batch_size/window", "positive integers", (batch_size, window))
        bad = sorted(set(tiers) - set(TIERS))
        if bad:
            raise InputError(None, "tiers", f"values in {TIERS}", bad)
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError(None, "recordings", "at least one Recording file", "none")
        self.batch_size, self.window, self.tiers = int(batch_size), int(window), tuple(tiers)
        self.seed, self.shuffle, self.drop_last, self.prefetch = int(seed), shuffle, drop_last, int(prefetch)
        self.meta = [_meta(p) for p in self.paths]
        self._trials = [np.flatnonzero(np.isin(m.tier, self.tiers) & (m.n_frames >= self.window))
                        for m in self.meta]
        if not any(len(t) for t in self._trials):
            raise InputError(self.paths[0], "trials", f"trials of tiers {list(self.tiers)} with at least "
                             f"{self.window} frames", "none")

    @property
    def recording_ids(self) -> list[str]:
        return [m.recording_id for m in self.meta]

    def plan(self, epoch: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """The epoch's batches as (recording index, trial indices, window starts), in order."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        batches = []
        for r, (m, trials) in enumerate(zip(self.meta, self._trials)):
            tt, ss = [], []
            for t in trials:
                n_win = int(m.n_frames[t]) // self.window
                slack = int(m.n_frames[t]) - n_win * self.window
                off = int(rng.integers(0, slack + 1)) if self.shuffle else 0
                tt.extend([t] * n_win)
                ss.extend(off + k * self.window for k in range(n_win))
            tt, ss = np.asarray(tt, np.int64), np.asarray(ss, np.int64)
            order = rng.permutation(len(tt)) if self.shuffle else np.arange(len(tt))
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                if self.drop_last and len(idx) < self.batch_size:
                    continue
                batches.append((r, tt[idx], ss[idx]))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __len__(self) -> int:
        return len(self.plan(0))

    def epoch(self, epoch: int = 0) -> Iterator[dict[str, Any]]:
        """Yield the batches of ``epoch`` (deterministic given ``seed`` and ``epoch``)."""
        plan = self.plan(epoch)
        if self.prefetch <= 0:
            readers = [_Reader(p) for p in self.paths]
            try:
                for item in plan:
                    yield self._read(readers, item)
            finally:
                for rd in readers:
                    rd.close()
            return
        yield from _prefetched(self, plan)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.epoch(0)

    def _read(self, readers: list[_Reader], item: tuple[int, np.ndarray, np.ndarray]) -> dict[str, Any]:
        r, trials, starts = item
        batch: dict[str, Any] = {"recording_id": self.meta[r].recording_id}
        batch.update(readers[r].read(trials, starts, self.window))
        batch["trial"], batch["start"] = trials, starts
        return batch


_DONE = object()


def _prefetched(b: Batches, plan: list) -> Iterator[dict[str, Any]]:
    q: queue.Queue = queue.Queue(maxsize=b.prefetch)
    stop = threading.Event()

    def work() -> None:
        readers = []
        try:
            readers = [_Reader(p) for p in b.paths]
            for item in plan:
                if stop.is_set():
                    return
                batch = b._read(readers, item)
                while not stop.is_set():
                    try:
                        q.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            q.put(_DONE)
        except BaseException as e:  # handed to the consumer, raised there
            q.put(e)
        finally:
            for rd in readers:
                rd.close()

    thread = threading.Thread(target=work, name="twin-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def iter_trials(path: str | os.PathLike, tier: str = "test", *, batch_size: int = 16) -> Iterator[dict[str, Any]]:
    """Whole trials of ``tier`` in file order, ``batch_size`` at a time, for evaluation.

    Each item: ``recording_id``, ``trial`` (B,) indices, ``n_frames``, ``clip_id``, ``repeat``,
    ``stimulus_type`` (B,), and ``stimulus`` (B, T, H, W), ``response`` (B, T, N), ``running``,
    ``pupil`` (B, T), ``eye_position`` (B, T, 2), all float32 over the full padded ``time``
    (frames at and after ``n_frames`` are padding).
    """
    path = Path(path)
    with open_recording(path) as ds:
        tiers = np.asarray(ds["tier"].values).astype(str)
        coords = {k: np.asarray(ds[k].values) for k in ("n_frames", "clip_id", "repeat", "stimulus_type")}
        rid = str(ds.attrs["recording_id"])
        n_time = ds.sizes["time"]
    idx = np.flatnonzero(tiers == tier)
    rd = _Reader(path)
    try:
        for b in range(0, len(idx), batch_size):
            t = idx[b:b + batch_size]
            item: dict[str, Any] = {"recording_id": rid, "trial": t}
            item.update({k: v[t] for k, v in coords.items()})
            item.update(rd.read(t, np.zeros(len(t), np.int64), n_time))
            yield item
    finally:
        rd.close()


__all__ = ["Batches", "iter_trials"]

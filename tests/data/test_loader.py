"""Batches: windows inside n_frames, one recording per batch, determinism, prefetch, bounded reads."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.data.loader import Batches, iter_trials
from twin.data.recording import write_recording
from twin.errors import InputError

from .conftest import tiny_recording


@pytest.fixture
def files(tmp_path):
    a = tiny_recording(n_trial=6, n_time=12, n_unit=4, seed=1, n_frames=[12, 9, 12, 5, 12, 12],
                       tiers=["train", "train", "validation", "train", "test", "test"])
    b = tiny_recording(n_trial=4, n_time=10, n_unit=7, seed=2, scan_idx=4, tiers=["train"] * 4)
    return [write_recording(a, tmp_path / "a.h5"), write_recording(b, tmp_path / "b.h5")], {"m1-2-3": a, "m1-2-4": b}


def test_every_window_lies_within_n_frames_and_matches_the_file(files):
    paths, src = files
    seen = 0
    for batch in Batches(paths, batch_size=3, window=4, seed=0).epoch(0):
        ds = src[batch["recording_id"]]
        B = len(batch["trial"])
        assert batch["stimulus"].shape == (B, 4, 3, 4) and batch["stimulus"].dtype == np.float32
        assert batch["response"].shape == (B, 4, ds.sizes["unit"])
        assert batch["eye_position"].shape == (B, 4, 2) and batch["running"].shape == (B, 4)
        for k, (t, s) in enumerate(zip(batch["trial"], batch["start"])):
            assert ds.tier.values[t] == "train" and s + 4 <= ds.n_frames.values[t]
            np.testing.assert_array_equal(batch["response"][k], ds.response.values[t, s:s + 4])
            np.testing.assert_array_equal(batch["stimulus"][k], ds.stimulus.values[t, s:s + 4])
            np.testing.assert_array_equal(batch["pupil"][k], ds.pupil.values[t, s:s + 4])
            seen += 1
    # a: trials 0 (12 -> 3 windows), 1 (9 -> 2), 3 (5 -> 1); b: 4 trials x 2 windows
    assert seen == 3 + 2 + 1 + 8


def test_batches_are_deterministic_per_seed_and_epoch_and_differ_across_epochs(files):
    paths, _ = files
    def keys(seed, epoch, prefetch=2):
        return [(b["recording_id"], tuple(b["trial"]), tuple(b["start"]))
                for b in Batches(paths, batch_size=2, window=4, seed=seed, prefetch=prefetch).epoch(epoch)]
    assert keys(0, 0) == keys(0, 0) == keys(0, 0, prefetch=0)
    assert keys(0, 0) != keys(0, 1)
    assert keys(0, 0) != keys(5, 0)


def test_recordings_are_interleaved_and_never_mixed_within_a_batch(files):
    paths, _ = files
    order = [b["recording_id"] for b in Batches(paths, batch_size=1, window=4, seed=3).epoch(0)]
    assert set(order) == {"m1-2-3", "m1-2-4"}
    switches = sum(x != y for x, y in zip(order, order[1:]))
    assert switches > 1  # not all of one recording, then all of the other


def test_tier_selection_and_too_long_windows(files):
    paths, _ = files
    val = list(Batches(paths[:1], batch_size=8, window=12, tiers=("validation",)).epoch(0))
    assert len(val) == 1 and val[0]["trial"].tolist() == [2]
    with pytest.raises(InputError, match="trials"):
        Batches(paths, batch_size=2, window=13)
    with pytest.raises(InputError, match="tiers"):
        Batches(paths, batch_size=2, window=2, tiers=("dev",))


def test_drop_last_keeps_only_full_batches(files):
    paths, _ = files
    sizes = [len(b["trial"]) for b in Batches(paths, batch_size=4, window=4, drop_last=True).epoch(0)]
    assert sizes and set(sizes) == {4}


def test_reads_touch_only_the_windows_of_the_batch(files, monkeypatch):
    paths, _ = files
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        reads.append((self.name, key))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    batch = next(iter(Batches(paths, batch_size=2, window=3, prefetch=0, seed=1).epoch(0)))
    bulk = [k for n, k in reads if n.lstrip("/") == "response"]
    assert len(bulk) == len(batch["trial"])
    assert all(isinstance(k[0], int) and k[1].stop - k[1].start == 3 for k in bulk)


def test_abandoning_an_epoch_stops_the_prefetch_thread(files):
    import threading

    paths, _ = files
    it = Batches(paths, batch_size=1, window=2, prefetch=1).epoch(0)
    next(it)
    it.close()
    assert not any(t.name == "twin-batches" and t.is_alive() for t in threading.enumerate())


def test_iter_trials_yields_whole_test_trials_with_their_coordinates(files):
    paths, src = files
    items = list(iter_trials(paths[0], "test", batch_size=1))
    ds = src["m1-2-3"]
    assert [i["trial"].tolist() for i in items] == [[4], [5]]
    np.testing.assert_array_equal(items[1]["response"][0], ds.response.values[5])
    assert items[0]["clip_id"].tolist() == [ds.clip_id.values[4]] and items[0]["n_frames"].tolist() == [12]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_frames=st.lists(st.integers(1, 9), min_size=3, max_size=6), window=st.integers(1, 5),
       batch_size=st.integers(1, 4), seed=st.integers(0, 100), epoch=st.integers(0, 3))
def test_any_plan_covers_each_trial_with_disjoint_windows_inside_n_frames(tmp_path_factory, n_frames, window,
                                                                          batch_size, seed, epoch):
    n = len(n_frames)
    ds = tiny_recording(n_trial=n, n_time=9, n_frames=n_frames, tiers=["train"] * n)
    path = write_recording(ds, tmp_path_factory.mktemp("plan") / "r.h5")
    if max(n_frames) < window:
        with pytest.raises(InputError):
            Batches([path], batch_size=batch_size, window=window)
        return
    plan = Batches([path], batch_size=batch_size, window=window, seed=seed).plan(epoch)
    per_trial: dict[int, list[int]] = {}
    for _, trials, starts in plan:
        assert 1 <= len(trials) <= batch_size
        for t, s in zip(trials, starts):
            assert 0 <= s and s + window <= n_frames[t]
            per_trial.setdefault(int(t), []).append(int(s))
    for t, f in enumerate(n_frames):
        starts = sorted(per_trial.get(t, []))
        assert len(starts) == f // window
        assert all(b - a >= window for a, b in zip(starts, starts[1:]))

"""Tiny Recordings and Sensorium folders shared by the data-layer tests."""

from __future__ import annotations

import numpy as np
import pytest

from twin.data.recording import make_recording


def tiny_recording(n_trial: int = 6, n_time: int = 5, n_unit: int = 4, h: int = 3, w: int = 4,
                   seed: int = 0, uint8: bool = True, n_frames=None, tiers=None, **kw):
    """A small valid Recording (in memory) with random values."""
    rng = np.random.default_rng(seed)
    shape = (n_trial, n_time, h, w)
    stim = rng.integers(0, 256, shape, dtype=np.uint8) if uint8 else rng.uniform(0, 255, shape).astype(np.float32)
    if tiers is None:
        tiers = (["train", "train", "validation"] + ["test"] * (n_trial - 3))[:n_trial]
        if n_trial < 3:
            tiers = ["train"] * n_trial
    units = {"unit_id": np.arange(10, 10 + n_unit, dtype=np.int64),
             "area": np.array(["V1", "LM"] * n_unit, dtype=object)[:n_unit],
             "layer": np.array(["L2/3"] * n_unit, dtype=object),
             "cortical_x": rng.uniform(0, 500, n_unit), "cortical_y": rng.uniform(0, 500, n_unit),
             "cortical_z": rng.uniform(100, 400, n_unit),
             "pt_root_id": np.arange(n_unit, dtype=np.int64) * 7}
    trials = {"tier": np.array(tiers, dtype=object),
              "stimulus_type": np.array(["natural_movie"] * n_trial, dtype=object),
              "clip_id": np.array([f"c{i % 3}" for i in range(n_trial)], dtype=object),
              "repeat": np.array([i // 3 for i in range(n_trial)], dtype=np.int64)}
    if n_frames is not None:
        trials["n_frames"] = np.asarray(n_frames, np.int64)
    args = dict(stimulus=stim, response=rng.gamma(1.0, 1.0, (n_trial, n_time, n_unit)).astype(np.float32),
                running=rng.normal(0, 3, (n_trial, n_time)).astype(np.float32),
                pupil=rng.uniform(5, 20, (n_trial, n_time)).astype(np.float32),
                eye_position=rng.normal(0, 2, (n_trial, n_time, 2)).astype(np.float32),
                units=units, trials=trials, frame_rate=10.0, animal_id="m1", session=2, scan_idx=3,
                pixel_size_deg=2.0, provenance={"test": True})
    args.update(kw)
    return make_recording(**args)


@pytest.fixture
def recording():
    return tiny_recording()

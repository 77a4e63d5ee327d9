"""Tiny random Recordings and configs for the training tests (seconds to train)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.data.recording import make_recording, write_recording
from twin.model.config import CoreConfig, ModelConfig, ModulatorConfig, ReadoutConfig, ShifterConfig
from twin.train.config import DataConfig, OptimConfig, TrainConfig


def tiny_recording(path, scan_idx: int, n_units: int = 5, seed: int = 0, hw=(8, 10), frame_rate: float = 10.0):
    rng = np.random.default_rng(seed + scan_idx)
    n_trial, n_time = 8, 10
    stim = rng.integers(0, 256, size=(n_trial, n_time, *hw)).astype(np.uint8)
    # responses driven by the stimulus so there is something to learn
    drive = stim[:, :, hw[0] // 2, : n_units].astype(np.float32) / 255.0
    resp = rng.poisson(0.5 + 2.0 * drive).astype(np.float32)
    tiers = np.array(["train"] * 6 + ["validation"] * 2)
    ds = make_recording(
        stimulus=stim, response=resp, running=rng.random((n_trial, n_time)).astype(np.float32) * 10,
        pupil=(20 + rng.random((n_trial, n_time))).astype(np.float32),
        eye_position=rng.normal(size=(n_trial, n_time, 2)).astype(np.float32),
        units={"unit_id": np.arange(n_units), "area": ["V1"] * n_units, "layer": ["L2/3"] * n_units,
               "cortical_x": rng.random(n_units) * 100, "cortical_y": rng.random(n_units) * 100,
               "cortical_z": rng.random(n_units) * 100, "pt_root_id": np.arange(n_units) + 100},
        trials={"tier": tiers, "stimulus_type": ["natural_movie"] * n_trial,
                "clip_id": [f"c{i}" for i in range(n_trial)], "repeat": np.zeros(n_trial, int)},
        frame_rate=frame_rate, animal_id="7", session=1, scan_idx=scan_idx, pixel_size_deg=3.0)
    return write_recording(ds, path / f"7-1-{scan_idx}.h5")


@pytest.fixture(scope="session")
def rec_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("recs")
    for s in (1, 2, 3):
        tiny_recording(d, s)
    return d


def tiny_config(rec_dir, include=("7-1-1", "7-1-2"), **train_kw) -> TrainConfig:
    kw = dict(steps=6, batch_size=2, clip_frames=6, burn_in=2, lr=0.01, warmup_steps=2, eval_every=3,
              checkpoint_every=2, early_stop_patience=10)
    kw.update(train_kw)
    model = ModelConfig(core=CoreConfig(channels=3, layers=2, kernel=(3,), temporal_kernel=2, gru_channels=3),
                        readout=ReadoutConfig(), shifter=ShifterConfig(), modulator=ModulatorConfig(hidden=3))
    return TrainConfig(seed=0, data=DataConfig(recordings=[str(rec_dir)], include=list(include)), model=model,
                       train=OptimConfig(**kw))


def random_batch(rng: np.random.Generator, clips: int, frames: int, n_units: int, hw=(6, 7)) -> dict:
    """One scan's training batch of random stimuli, Poisson responses and behaviour, as
    ``Trainer.loss_and_grads`` takes it (all frames valid)."""
    return {"stimulus": rng.uniform(0, 255, (clips, frames, *hw)).astype(np.float32),
            "response": rng.poisson(1.0, (clips, frames, n_units)).astype(np.float32),
            "mask": np.ones((clips, frames), np.float32),
            "running": rng.random((clips, frames)).astype(np.float32),
            "pupil": rng.random((clips, frames)).astype(np.float32),
            "eye_position": rng.normal(size=(clips, frames, 2)).astype(np.float32)}

"""Every training config under experiments/train/ loads, validates and builds its model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.config import load_config
from twin.model.config import layer_kernels
from twin.train.config import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "experiments" / "train").glob("*.toml"))


def test_the_configs_are_found():
    assert {p.stem for p in CONFIGS} >= {"tiny", "demo", "transfer_demo", "large"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_training_config_loads_and_validates(path):
    cfg = load_config(path, TrainConfig)
    assert cfg.model.core.kernel_problem() is None
    assert cfg.train.steps > 0 and cfg.train.clip_frames > cfg.train.burn_in >= 0


def test_large_config_builds_the_sensorium_sized_core():
    import jax.numpy as jnp

    from twin.model.core import Core

    cfg = load_config(CONFIGS[[p.stem for p in CONFIGS].index("large")], TrainConfig)
    core_cfg = cfg.model.core
    assert (core_cfg.layers, core_cfg.channels, core_cfg.gru_channels) == (4, 64, 64)
    assert layer_kernels(core_cfg) == [9, 7, 7, 7] and core_cfg.conv_impl == "auto"
    core = Core(core_cfg, rng=np.random.default_rng(0))
    assert [c.impl for c in core.convs] == ["xla", "fft", "fft", "fft"]      # on the CPU
    out = core(jnp.zeros((1, 2, 12, 16)))
    assert out.shape[:2] == (1, 2) and out.shape[-1] == 64 and bool(jnp.isfinite(out).all())

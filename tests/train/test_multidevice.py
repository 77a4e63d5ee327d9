"""Data parallelism: the jitted step sharded over two (forced host) devices matches one device."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    assert len(jax.devices()) == 2, jax.devices()
    from twin.model.config import CoreConfig, ModelConfig
    from twin.model.twin_model import ScanSpec, TwinModel
    from twin.train.config import OptimConfig, TrainConfig
    from twin.train.loop import Trainer
    from tests.train.conftest import random_batch
    cfg = TrainConfig(model=ModelConfig(core=CoreConfig(channels=3, layers=2, kernel=(3,), temporal_kernel=2,
                                                        gru_channels=3)),
                      train=OptimConfig(batch_size=4, burn_in=1))
    rng = np.random.default_rng(0)
    batches = {"a-1-1": random_batch(rng, 4, 5, 3), "a-1-2": random_batch(rng, 4, 5, 4)}
    out = {}
    for nd in (1, 2):
        model = TwinModel(cfg.model, [ScanSpec("a-1-1", 3), ScanSpec("a-1-2", 4)], seed=0)
        tr = Trainer(cfg, model, ["a-1-1", "a-1-2"], devices=jax.devices()[:nd])
        sharded = tr.shard_batch(batches)
        assert len(sharded["a-1-1"]["stimulus"].sharding.device_set) == nd
        loss, grads = tr.loss_and_grads(batches, step=3)
        out[nd] = (float(loss), [np.asarray(g) for g in jax.tree_util.tree_leaves(grads)])
    assert abs(out[1][0] - out[2][0]) <= 1e-5 * abs(out[1][0]), (out[1][0], out[2][0])
    for a, b in zip(out[1][1], out[2][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    print("OK", out[1][0], out[2][0])
""")


def test_two_host_devices_give_the_one_device_loss_and_grads():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK" in res.stdout

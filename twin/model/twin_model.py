"""The twin network: input normalisation, shared core, per-scan readouts, ELU + 1 output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from twin.model.config import ModelConfig
from twin.model.core import Core
from twin.model.readout import Const, ScanReadout


@dataclass(frozen=True)
class ScanSpec:
    """What the model needs to know about one scan to build its readout (from training data)."""

    recording_id: str
    n_units: int
    behaviour_mean: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)   # running, pupil, eye_x, eye_y
    behaviour_std: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    cortical_xyz: tuple[tuple[float, float, float], ...] | None = None
    mean_response: tuple[float, ...] | None = None
    init_positions: tuple[tuple[float, float], ...] | None = None   # (N, 2) grid units, e.g. from reverse correlation


class TwinModel(nnx.Module):
    """stimulus (B, T, H, W) grey levels -> rates (B, T, N) for the scan ``recording_id``.

    ``stimulus_mean`` / ``stimulus_std`` are the training set's grey-level statistics (stored
    with the model, applied inside ``__call__``).
    """

    def __init__(self, cfg: ModelConfig, scans: list[ScanSpec], *, stimulus_mean: float = 127.5,
                 stimulus_std: float = 64.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.stim_mean = Const(jnp.asarray(stimulus_mean, jnp.float32))
        self.stim_std = Const(jnp.asarray(stimulus_std, jnp.float32))
        self.core = Core(cfg.core, rng=rng)
        self.readouts = nnx.Dict({s.recording_id: ScanReadout(
            s.n_units, self.core.out_channels, cfg, rng=rng,
            behaviour_mean=np.asarray(s.behaviour_mean), behaviour_std=np.asarray(s.behaviour_std),
            cortical_xyz=None if s.cortical_xyz is None else np.asarray(s.cortical_xyz),
            mean_response=None if s.mean_response is None else np.asarray(s.mean_response),
            init_positions=None if s.init_positions is None else np.asarray(s.init_positions))
            for s in scans})

    def add_scan(self, spec: ScanSpec, cfg: ModelConfig, seed: int) -> None:
        """Add a freshly initialised readout for a new scan (transfer)."""
        self.readouts[spec.recording_id] = ScanReadout(
            spec.n_units, self.core.out_channels, cfg, rng=np.random.default_rng(seed),
            behaviour_mean=np.asarray(spec.behaviour_mean), behaviour_std=np.asarray(spec.behaviour_std),
            cortical_xyz=None if spec.cortical_xyz is None else np.asarray(spec.cortical_xyz),
            mean_response=None if spec.mean_response is None else np.asarray(spec.mean_response),
            init_positions=None if spec.init_positions is None else np.asarray(spec.init_positions))

    def features(self, stimulus: jax.Array) -> jax.Array:
        """Core features (B, T, H, W, C) of grey-level stimuli (B, T, H, W)."""
        x = (jnp.asarray(stimulus, jnp.float32) - self.stim_mean[...]) / self.stim_std[...]
        return self.core(x)

    def readout(self, features: jax.Array, recording_id: str,
                behaviour: Mapping[str, jax.Array] | None = None, key: jax.Array | None = None) -> jax.Array:
        """Rates (B, T, N) from core features: ``(ELU(readout) + 1) * gain``."""
        out, gain = self.readouts[recording_id](features, behaviour, key)
        return (jax.nn.elu(out) + 1.0) * gain

    def readout_units(self, features: jax.Array, recording_id: str, units: jax.Array) -> jax.Array:
        """Evaluation-mode rates (B, T, M) of scan ``recording_id``'s neurons ``units`` (B, M):
        clip ``b`` of ``features`` (B, T, H, W, C) answered by its own neurons ``units[b]``, at
        the mean behavioural state. Equal to ``readout(features, recording_id)`` gathered at
        ``units`` (to float rounding), at a cost that grows with M, not with the scan's neurons."""
        ro = self.readouts[recording_id]

        def one(f, idx):
            out, gain = ro.select_units(idx)(f[None])
            return ((jax.nn.elu(out) + 1.0) * gain)[0]

        return jax.vmap(one)(features, jnp.asarray(units, jnp.int32))

    def __call__(self, stimulus: jax.Array, recording_id: str,
                 behaviour: Mapping[str, jax.Array] | None = None, key: jax.Array | None = None) -> jax.Array:
        return self.readout(self.features(stimulus), recording_id, behaviour, key)

    def regulariser(self, readout_l1: float, laplace: float, mask_l1: float = 0.0) -> jax.Array:
        """Laplacian smoothness of first-layer filters + L1 of all scans' readout features (and of
        their weight patches, with ``model.readout.mask``)."""
        total = laplace * self.core.laplace_penalty()
        for r in self.readouts.values():
            total = total + readout_l1 * r.l1_penalty()
            if mask_l1:
                total = total + mask_l1 * r.mask_penalty()
        return total

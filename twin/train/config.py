"""The training config (TOML): data, model sizes, optimiser and loop settings, seed(s)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from twin.model.config import ModelConfig
from twin.train.refit import RefitConfig


@dataclass(frozen=True)
class DataConfig:
    """``recordings``: Recording files, folders of ``*.h5`` or globs; ``include``: recording ids
    to keep (empty = all)."""

    recordings: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 1000                 # maximum number of optimiser steps
    batch_size: int = 8               # clips per scan per step (divisible by the device count)
    clip_frames: int = 30             # frames per training window
    burn_in: int = 5                  # first frames of each window left out of the loss
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    schedule: Literal["cosine", "plateau"] = "cosine"
    plateau_factor: float = 0.3
    plateau_patience: int = 5         # evaluations without improvement before lr *= factor
    min_lr_scale: float = 1e-3        # plateau: stop when the lr scale falls below this
    eval_every: int = 50              # steps between validation correlations
    early_stop_patience: int = 8      # evaluations without improvement before stopping
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    poisson_eps: float = 1e-8
    grad_clip: float = 10.0           # global-norm clip (0 = off)
    # "mean_rate": each neuron's Poisson loss is divided by its mean training response (weights
    # averaging 1 per scan), so the shared core serves low-rate neurons as much as high-rate ones;
    # "none": the plain mean over neurons (the Poisson loss's gradient grows with the rate)
    neuron_weighting: Literal["none", "mean_rate"] = "none"
    # > 0: quasi-Poisson loss (rate + q) - (y + q) log(rate + q), q = this x each neuron's mean
    # training response: for responses whose variance does not fall to zero with the rate
    # (thresholded deconvolved events keep noise events); 0 = the Poisson loss. The "poisson" column
    # of metrics.jsonl is then this loss.
    variance_floor: float = 0.0
    distributed: bool = False         # call jax.distributed.initialize() (multi-host)
    # ensembles: members trained side by side in this many processes, each pinned to its share of the
    # CPU cores (twin.train.members); 0 = as many as members and cores allow, on a CPU backend
    member_processes: int = 1

    def variance_floor_problem(self) -> str | None:
        """What ``variance_floor`` should be when it is invalid (negative or NaN), else None."""
        return None if self.variance_floor >= 0 else ">= 0 (0 = the Poisson loss)"


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    seeds: list[int] = field(default_factory=list)   # non-empty: train an ensemble, one member per seed
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    # after training: each neuron's readout refitted with a cross-validated ridge (twin.train.refit)
    refit: RefitConfig = field(default_factory=RefitConfig)

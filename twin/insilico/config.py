"""The in-silico battery as data: a frozen dataclass per experiment, loaded from TOML.

``load_insilico_config(path, overrides)`` validates ``experiments/insilico/*.toml`` into
:class:`InsilicoConfig`. Every experiment's clips are ``n_frames`` long *including* the
model's ``burn_in`` frames (which are never scored); responses are the mean rate over the
scored frames unless stated otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from twin.config import load_config

EXPERIMENTS = ("tuning", "rf", "mei", "vei", "bipartite", "profiles")


@dataclass(frozen=True)
class TuningConfig:
    """Orientation/direction (16 directions), SF and TF tuning, phase invariance (F1/F0)."""
    n_directions: int = 16
    sf_cpd: float = 0.04            # SF of the direction run (gratings)
    tf_hz: float = 2.0              # TF of the direction run and of the SF sweep
    sf_list: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16)
    tf_list: tuple[float, ...] = (1.0, 2.0, 4.0)
    n_frames: int = 30              # frames per clip, burn-in included
    n_phases: int = 2               # grating repeats: equally spaced starting phases
    contrast: float = 1.0
    noise_repeats: int = 2          # directional-noise repeats (independent noise seeds)
    noise_speed_deg_s: float = 20.0
    n_permutations: int = 200
    tuned_p: float = 0.05           # permutation p below which a cell counts as tuned
    von_mises: bool = True          # bimodal von Mises fit (vectorised over neurons: ~1 s per 1000)
    # What each measure is computed on. "blank": the evoked response, above each neuron's response
    # to a uniform grey clip (its spontaneous rate); "none": the raw predicted rates.
    # gOSI/gDSI (and their permutation tests): raw by default, as the MICrONS in-silico tuning; with
    # "blank" trials are clipped at max(r - blank, 0). On the demo twin (2026-12-03) raw gOSI ranks
    # the planted neurons' raw gOSI better (Spearman 0.16 vs 0.02 evoked vs evoked): the twin never
    # saw a grey screen, so its blank response is a poor estimate of the spontaneous rate.
    selectivity_baseline: Literal["blank", "none"] = "none"
    # F1/F0: F1 / (F0 - blank) by default (F0 corrected for spontaneous activity, Skottun et al.
    # 1991); simple vs complex AUC on the demo twin 0.78 vs 0.73 on raw rates
    modulation_baseline: Literal["blank", "none"] = "blank"
    batch: int = 16                 # clips per model call


@dataclass(frozen=True)
class RFConfig:
    """Receptive fields: flashing dots (response-weighted average) and input gradients."""
    n_clips: int = 8                # dot clips (0 = no dot mapping)
    n_frames: int = 60
    dot_size_deg: float = 8.0
    dots_per_flash: int = 1
    flash_s: float = 0.3
    blank_s: float = 0.2
    grad_samples: int = 4           # noise backgrounds the input gradient is averaged over (0 = none)
    grad_rms_contrast: float = 0.2
    unit_chunk: int = 64            # neurons per gradient wave (one forward, vmapped backwards)
    chunk: int = 1                  # neurons per parameter group where cost grows with neurons
    batch: int = 8                  # dot clips per model call


@dataclass(frozen=True)
class MEIConfig:
    """Gradient ascent on a static image (shown as a clip of repeated frames)."""
    n_steps: int = 64
    lr: float = 0.02                # final step, as a fraction of the contrast norm
    lr_start: float = 1.0           # first step (cosine decay to lr); the start is near grey
    init_contrast: float = 0.1      # start: random noise at this fraction of the norm
    rms_contrast: float = 0.25      # fixed L2 norm: RMS of (grey - 127.5) / 127.5
    jitter_px: int = 0              # random shift per step (0: on planted neurons jitter costs activation)
    blur_sigma_px: float = 1.0
    n_frames: int = 8               # clip length incl. burn-in (at least burn-in + 2); one image
    unit_batch: int = 64            # neurons optimised together (one input per neuron)
    chunk: int = 1                  # neurons per parameter group where cost grows with neurons
    n_random: int = 8               # random inputs of the same norm for the comparison
    max_units: int = 0              # per scan: MEIs (and so VEIs, bipartite) for the first N units; 0 = all


@dataclass(frozen=True)
class VEIConfig:
    """Varied exciting inputs: k diverse images each reaching ``fraction`` of the MEI response."""
    k: int = 4
    fraction: float = 0.85
    n_steps: int = 200
    lr: float = 0.05
    diversity_weight: float = 1.0
    unit_batch: int = 16            # neurons per wave (k images each); 0 = mei.unit_batch / k


@dataclass(frozen=True)
class BipartiteConfig:
    """Bipartite invariance: MEI kept in a fixed subfield, random texture in a growing one."""
    n_sizes: int = 6
    n_textures: int = 4
    n_sweep_directions: int = 4
    texture_sf_cpd: float = 0.08


@dataclass(frozen=True)
class SimilarityConfig:
    """Functional profile: predicted responses to a natural-movie battery."""
    n_clips: int = 4
    n_frames: int = 30
    batch: int = 4


@dataclass(frozen=True)
class InsilicoConfig:
    seed: int = 0
    experiments: tuple[str, ...] = EXPERIMENTS
    recording_ids: tuple[str, ...] = ()   # empty = every scan of the model
    max_units: int = 0                    # per scan; 0 = all
    tuning: TuningConfig = field(default_factory=TuningConfig)
    rf: RFConfig = field(default_factory=RFConfig)
    mei: MEIConfig = field(default_factory=MEIConfig)
    vei: VEIConfig = field(default_factory=VEIConfig)
    bipartite: BipartiteConfig = field(default_factory=BipartiteConfig)
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)
    progress: bool = True


def load_insilico_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> InsilicoConfig:
    """Read and validate an in-silico battery TOML (unknown experiment names are an InputError)."""
    from twin.errors import InputError

    cfg = load_config(path, InsilicoConfig, list(overrides))
    bad = [e for e in cfg.experiments if e not in EXPERIMENTS]
    if bad:
        raise InputError(path, "experiments", f"names from {list(EXPERIMENTS)}", bad[0])
    return cfg

"""The trial plan of each scan and the stimulus of every trial.

Every scan shows its own natural-movie train and validation clips, the same natural test clips
(``n_repeats`` times each: the oracle repeats) and the same out-of-domain test blocks
(drifting gratings, directional noise, flashed Gabors, flashing dots, random dot
kinematograms; ``ood_repeats`` each), in a seeded random order. All trials have the same
length (``clip_s``), so no padding is needed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from twin import stimuli
from twin.simulate.config import SimConfig


@dataclass(frozen=True)
class TrialSpec:
    """One trial: tier, stimulus type, clip id (same id = same frames), repeat, and the
    condition (direction in degrees for directional stimuli, else NaN)."""
    tier: str
    stimulus_type: str
    clip_id: str
    repeat: int
    direction_deg: float = float("nan")


def n_frames(cfg: SimConfig) -> int:
    """Frames per trial."""
    return int(round(cfg.stimulus.clip_s * cfg.stimulus.frame_rate))


def plan_trials(cfg: SimConfig, scan_idx: int, rng: np.random.Generator) -> list[TrialSpec]:
    """The shuffled trial list of one scan."""
    t = cfg.trials
    specs = [TrialSpec("train", "natural_movie", f"nm-train-{scan_idx}-{i:04d}", 0) for i in range(t.n_train)]
    specs += [TrialSpec("validation", "natural_movie", f"nm-val-{scan_idx}-{i:03d}", 0) for i in range(t.n_validation)]
    specs += [TrialSpec("test", "natural_movie", f"nm-test-{i:03d}", r) for i in range(t.n_test_clips)
              for r in range(t.n_repeats)]
    ood: list[tuple[str, str, float]] = []
    for d in np.arange(t.grating_directions) * 360.0 / max(t.grating_directions, 1):
        ood.append(("drifting_grating", f"grating-{d:05.1f}", float(d)))
    for d in np.arange(t.noise_directions) * 360.0 / max(t.noise_directions, 1):
        ood.append(("directional_noise", f"monet-{d:05.1f}", float(d)))
    ood += [("gabor", f"gabor-{i:02d}", float("nan")) for i in range(t.gabor_clips)]
    ood += [("flashing_dots", f"dots-{i:02d}", float("nan")) for i in range(t.dot_clips)]
    for d in np.arange(t.rdk_directions) * 360.0 / max(t.rdk_directions, 1):
        ood.append(("rdk", f"rdk-{d:05.1f}", float(d)))
    specs += [TrialSpec("test", kind, cid, r, d) for kind, cid, d in ood for r in range(t.ood_repeats)]
    order = rng.permutation(len(specs))
    return [specs[i] for i in order]


def clip_seed(seed: int, clip_id: str) -> int:
    """A stable per-clip seed from the global seed and the clip id (same id -> same frames)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(clip_id.encode())]).generate_state(1)[0])


def render(spec: TrialSpec, cfg: SimConfig) -> np.ndarray:
    """The trial's frames as uint8 grey levels (T, H, W) (what goes on disk and is shown)."""
    s = cfg.stimulus
    kw = dict(pixel_size_deg=s.pixel_size_deg, frame_rate=s.frame_rate)
    n, shape, seed = n_frames(cfg), tuple(s.image_shape), clip_seed(cfg.seed, spec.clip_id)
    kind = spec.stimulus_type
    if kind == "natural_movie":
        x = stimuli.natural_movie(n, shape, seed=seed, **kw)
    elif kind == "drifting_grating":
        x = stimuli.drifting_grating(n, shape, direction_deg=spec.direction_deg, sf_cpd=cfg.trials.grating_sf_cpd,
                                     tf_hz=cfg.trials.grating_tf_hz, **kw)
    elif kind == "directional_noise":
        x = stimuli.directional_noise(n, shape, direction_deg=spec.direction_deg, seed=seed, **kw)
    elif kind == "gabor":
        x = stimuli.gabor_sequence(n, shape, seed=seed, **kw)
    elif kind == "flashing_dots":
        x = stimuli.flashing_dots(n, shape, seed=seed, dots_per_flash=2, **kw)
    elif kind == "rdk":
        x = stimuli.random_dot_kinematogram(n, shape, direction_deg=spec.direction_deg, seed=seed, **kw)
    else:
        raise ValueError(f"unknown stimulus type {kind!r}")
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)

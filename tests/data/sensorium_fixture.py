"""Hand-made Sensorium 2022/2023 folders laid out exactly as the benchmark ships them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TIERS_2023 = ["train"] * 6 + ["oracle"] * 4 + ["live_test_main", "final_test_bonus"]


def make_2023(root: Path, n_neurons: int = 5, h: int = 4, w: int = 6, lengths=None, tiers=TIERS_2023,
              seed: int = 0, name: str = "dynamic29156-11-10-Video-abc") -> Path:
    """Oracle trials 6,8 show one clip and 7,9 another (identical frames); others are unique."""
    rng = np.random.default_rng(seed)
    src = root / name
    n = len(tiers)
    lengths = lengths or [8] * n
    for sub in ("videos", "responses", "behavior", "pupil_center"):
        (src / "data" / sub).mkdir(parents=True)
    clips = {6: 100, 8: 100, 7: 101, 9: 101}
    for i in range(n):
        T = lengths[i]
        vid = np.random.default_rng(clips.get(i, 1000 + i)).uniform(0, 255, (h, w, T)).astype(np.float32)
        np.save(src / "data" / "videos" / f"{i}.npy", vid)
        np.save(src / "data" / "responses" / f"{i}.npy", rng.gamma(1, 1, (n_neurons, T)).astype(np.float32))
        np.save(src / "data" / "behavior" / f"{i}.npy", rng.normal(5, 1, (2, T)).astype(np.float32))
        np.save(src / "data" / "pupil_center" / f"{i}.npy", rng.normal(0, 1, (2, T)).astype(np.float32))
    meta = src / "meta" / "neurons"
    meta.mkdir(parents=True)
    np.save(meta / "unit_ids.npy", np.arange(1, n_neurons + 1))
    np.save(meta / "area.npy", np.array(["V1"] * n_neurons))
    np.save(meta / "layer.npy", np.array(["L2/3"] * n_neurons))
    np.save(meta / "animal_ids.npy", np.full(n_neurons, 29156))
    np.save(meta / "sessions.npy", np.full(n_neurons, 11))
    np.save(meta / "scan_idx.npy", np.full(n_neurons, 10))
    np.save(meta / "cell_motor_coordinates.npy", rng.uniform(0, 500, (n_neurons, 3)))
    trials = src / "meta" / "trials"
    trials.mkdir(parents=True)
    np.save(trials / "tiers.npy", np.array(tiers))
    np.save(trials / "trial_idx.npy", np.arange(n))
    return src


def make_2022(root: Path, n_neurons: int = 4, n: int = 8) -> Path:
    rng = np.random.default_rng(1)
    src = root / "static21067-10-18-GrayImageNet"
    for sub in ("images", "responses", "behavior", "pupil_center"):
        (src / "data" / sub).mkdir(parents=True)
    for i in range(n):
        np.save(src / "data" / "images" / f"{i}.npy", rng.integers(0, 256, (1, 3, 5)).astype(np.uint8))
        np.save(src / "data" / "responses" / f"{i}.npy", rng.gamma(1, 1, n_neurons).astype(np.float32))
        np.save(src / "data" / "behavior" / f"{i}.npy", np.array([3.0, 0.1, 7.0 + i], np.float32))
        np.save(src / "data" / "pupil_center" / f"{i}.npy", np.array([1.0, -1.0], np.float32))
    (src / "meta" / "neurons").mkdir(parents=True)
    np.save(src / "meta" / "neurons" / "unit_ids.npy", np.arange(n_neurons))
    (src / "meta" / "trials").mkdir(parents=True)
    np.save(src / "meta" / "trials" / "tiers.npy",
            np.array(["train"] * (n - 4) + ["validation", "test", "test", "final_test"]))
    np.save(src / "meta" / "trials" / "frame_image_id.npy", np.array(list(range(n - 2)) + [n - 2, n - 2]))
    return src

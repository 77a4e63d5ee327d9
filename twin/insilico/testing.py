"""A small synthetic ResponseModel with known answers, for tests and benchmarks.

:class:`GaborPopulation` is a population of Gabor neurons in JAX with planted preferences:
per neuron an RF centre and size, an orientation (the carrier's wave vector), SF and phase,
and a mixture of three response types on the contrast frames ``c = (x - 127.5) / 127.5``:

* simple:    ``relu(S_e . c_t)``                     (phase-selective, F1/F0 ~ pi/2)
* complex:   ``sqrt((S_e . c_t)^2 + (S_o . c_t)^2)``  (energy, F1/F0 ~ 0)
* direction: ``relu(a_t b_{t-1} - b_t a_{t-1})``      (opponent motion energy across frames)

``rate = baseline + gain * mix``. Every neuron is a pure, differentiable function of the
stimulus, so the in-silico battery can be checked against the planted parameters.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd


class GaborPopulation:
    """ResponseModel of ``n`` planted Gabor neurons on one scan ``"fake-1-1"``.

    Attributes (per neuron, NumPy): ``rf_x, rf_y, sigma`` (deg), ``ori`` (deg, wave vector; for
    direction cells the preferred direction), ``sf`` (cpd), ``phase`` (deg), ``kind``
    (0 simple, 1 complex, 2 direction; default cycling), ``filters`` (2, n, H, W) the
    quadrature pair. A wider envelope (``sigma``) at fixed SF means sharper orientation tuning.
    ``spontaneous``: the rate added to every response (one value or one per neuron).
    """

    def __init__(self, n: int = 12, image_shape: tuple[int, int] = (20, 28), pixel_size_deg: float = 3.0,
                 frame_rate: float = 10.0, burn_in: int = 2, seed: int = 0, kinds: np.ndarray | None = None,
                 sigma_range_deg: tuple[float, float] = (7.0, 10.0),
                 sf_range_cpd: tuple[float, float] = (0.035, 0.05), spontaneous: float | np.ndarray = 0.02):
        import jax
        import jax.numpy as jnp

        from twin.stimuli.grid import visual_grid

        rng = np.random.default_rng(seed)
        self.frame_rate, self.image_shape = float(frame_rate), tuple(image_shape)
        self.pixel_size_deg, self.burn_in = float(pixel_size_deg), int(burn_in)
        h, w = image_shape
        half_w, half_h = (w - 1) / 2 * pixel_size_deg, (h - 1) / 2 * pixel_size_deg
        self.kind = np.asarray(kinds if kinds is not None else np.arange(n) % 3, np.int64)
        self.rf_x = rng.uniform(-0.4, 0.4, n) * half_w
        self.rf_y = rng.uniform(-0.4, 0.4, n) * half_h
        self.sigma = rng.uniform(*sigma_range_deg, n)
        self.ori = rng.uniform(0, 360, n)
        self.sf = rng.uniform(*sf_range_cpd, n)
        self.phase = rng.uniform(0, 360, n)
        x, y = visual_grid(image_shape, pixel_size_deg)
        dx, dy = x[None] - self.rf_x[:, None, None], y[None] - self.rf_y[:, None, None]
        env = np.exp(-(dx ** 2 + dy ** 2) / (2 * self.sigma[:, None, None] ** 2))
        th = np.deg2rad(self.ori)[:, None, None]
        u = dx * np.cos(th) + dy * np.sin(th)
        arg = 2 * np.pi * self.sf[:, None, None] * u + np.deg2rad(self.phase)[:, None, None]
        norm = env.sum((1, 2), keepdims=True)
        se = (2 * env * np.cos(arg) / norm).reshape(n, -1)
        so = (2 * env * np.sin(arg) / norm).reshape(n, -1)
        self.filters = np.stack([se, so]).reshape(2, n, h, w)
        kind = jnp.asarray(self.kind)
        spont = jnp.broadcast_to(jnp.asarray(spontaneous, jnp.float32), (n,))
        s_e, s_o = jnp.asarray(se.T, jnp.float32), jnp.asarray(so.T, jnp.float32)

        def fwd(stim):
            c = (stim - 127.5) / 127.5
            flat = c.reshape(c.shape[0], c.shape[1], -1)
            a, b = flat @ s_e, flat @ s_o
            simple = jax.nn.relu(a)
            cplx = jnp.sqrt(a ** 2 + b ** 2 + 1e-6)
            a0 = jnp.concatenate([a[:, :1], a[:, :-1]], 1)
            b0 = jnp.concatenate([b[:, :1], b[:, :-1]], 1)
            dire = 3.0 * jax.nn.relu(b * a0 - a * b0)
            mix = jnp.where(kind == 0, simple, jnp.where(kind == 1, cplx, dire))
            return spont + mix

        self._fwd = jax.jit(fwd)
        self._units = pd.DataFrame({"recording_id": "fake-1-1", "animal_id": "fake", "session": 1, "scan_idx": 1,
                                    "unit_id": np.arange(1, n + 1), "area": "V1", "layer": "L2/3",
                                    "pt_root_id": np.arange(n) * 7 + 1000})

    def recording_ids(self) -> list[str]:
        return ["fake-1-1"]

    def units(self, recording_id: str) -> pd.DataFrame:
        return self._units.copy()

    def predict(self, stimulus, recording_id: str, behaviour: Mapping | None = None):
        import jax.numpy as jnp

        return self._fwd(jnp.asarray(stimulus, jnp.float32))

    def readout_positions(self, recording_id: str, units: str = "deg") -> np.ndarray:
        """(N, 2) planted RF centres as a trained twin reports them: degrees, x right, y *down*."""
        return np.stack([self.rf_x, -self.rf_y], -1)

    def truth(self) -> pd.DataFrame:
        """Planted parameters, one row per neuron (pref_ori_deg, pref_dir_deg, rf_x/y_deg, ...)."""
        return pd.DataFrame({"unit_id": np.arange(1, len(self.kind) + 1), "kind": self.kind,
                             "pref_ori_deg": self.ori % 180, "pref_dir_deg": self.ori % 360,
                             "rf_x_deg": self.rf_x, "rf_y_deg": self.rf_y, "rf_sigma_deg": self.sigma,
                             "sf_cpd": self.sf})


def random_twin(n_units: int | tuple[int, ...] = 20, seed: int = 0, model_config: Mapping | None = None,
                image_shape: tuple[int, int] = (36, 64), burn_in: int = 5):
    """A randomly initialised trained-twin ResponseModel (``twin.model``), one scan per entry of
    ``n_units`` (``"rand-1-<k>"``); ``model_config`` as the ``[model]`` TOML table (default: the
    demo training architecture, ``experiments/train/demo.toml``)."""
    import dataclasses
    from pathlib import Path

    from twin.config import from_dict, read_toml
    from twin.model.config import ModelConfig
    from twin.model.response import TwinResponseModel
    from twin.model.twin_model import ScanSpec, TwinModel

    if model_config is None:
        demo = Path(__file__).resolve().parents[2] / "experiments" / "train" / "demo.toml"
        model_config = read_toml(demo).get("model", {}) if demo.is_file() else {}
    cfg = from_dict(ModelConfig, dict(model_config))
    sizes = (n_units,) if isinstance(n_units, int) else tuple(n_units)
    rids = [f"rand-1-{k + 1}" for k in range(len(sizes))]
    net = TwinModel(cfg, [ScanSpec(r, n) for r, n in zip(rids, sizes)], seed=seed)
    info = {"frame_rate": 10.0, "image_shape": list(image_shape), "pixel_size_deg": 2.0, "burn_in": burn_in,
            "scans": [{"recording_id": r, "n_units": n} for r, n in zip(rids, sizes)],
            "model_config": dataclasses.asdict(cfg)}
    units = pd.concat([pd.DataFrame({"recording_id": r, "animal_id": "rand", "session": 1, "scan_idx": k + 1,
                                     "unit_id": np.arange(1, n + 1), "area": "V1", "layer": "L2/3",
                                     "pt_root_id": 0}) for k, (r, n) in enumerate(zip(rids, sizes))],
                      ignore_index=True)
    return TwinResponseModel(net, info, units)

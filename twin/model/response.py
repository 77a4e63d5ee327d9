"""Trained twins (single and ensemble) as :class:`twin.response_model.ResponseModel`.

``load_model(run_dir)`` reads a run directory written by ``twin train`` and returns
:class:`TwinResponseModel` (one network) or :class:`EnsembleResponseModel` (members averaged).
Both also expose what in-silico work needs: ``readout_positions(recording_id, units)`` and
``readout_features(recording_id)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from twin.errors import InputError

UNIT_COLUMNS = ["recording_id", "animal_id", "session", "scan_idx", "unit_id", "area", "layer", "pt_root_id"]


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """A finished run's model.json (single or ensemble); an InputError otherwise."""
    p = Path(run_dir) / "model.json"
    if not p.is_file():
        raise InputError(run_dir, "model.json", "a finished `twin train` run directory", "no model.json")
    info = json.loads(p.read_text())
    if not info.get("finished"):
        raise InputError(run_dir, "model.json", "a finished run", "an unfinished run")
    return info


def load_twin_module(run_dir: str | Path):
    """The trained :class:`~twin.model.twin_model.TwinModel` of a single run and its model.json."""
    from twin.config import from_dict
    from twin.model.config import ModelConfig
    from twin.model.twin_model import ScanSpec, TwinModel
    from twin.train.run_dir import restore_state

    run_dir = Path(run_dir)
    info = run_info(run_dir)
    if info.get("kind") != "single":
        raise InputError(run_dir, "model.json", "a single (non-ensemble) run", info.get("kind"))
    cfg = from_dict(ModelConfig, info["model_config"], run_dir / "model.json", "model_config")
    model = TwinModel(cfg, [ScanSpec(s["recording_id"], s["n_units"]) for s in info["scans"]])
    graphdef, state = nnx.split(model)
    pure = restore_state(run_dir / "params", nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return model, info


class TwinResponseModel:
    """One trained twin: predictions in eval mode (readout at the mean positions)."""

    def __init__(self, model, info: dict[str, Any], units: pd.DataFrame):
        self.model = model
        self.info = info
        self.frame_rate = float(info["frame_rate"])
        self.image_shape = tuple(int(v) for v in info["image_shape"])
        self.pixel_size_deg = float(info["pixel_size_deg"])
        self.burn_in = int(info["burn_in"])
        self._units = units
        self._graphdef, self._state = nnx.split(model)
        self._fwd = jax.jit(self._forward, static_argnums=(1,))

    def _forward(self, state, rid, stimulus, behaviour):
        return nnx.merge(self._graphdef, state)(stimulus, rid, behaviour)

    def recording_ids(self) -> list[str]:
        return [s["recording_id"] for s in self.info["scans"]]

    def _check(self, rid: str) -> None:
        if rid not in self.recording_ids():
            raise InputError(None, "recording_id", f"one of {self.recording_ids()}", rid)

    def units(self, recording_id: str) -> pd.DataFrame:
        """One row per neuron in output order (columns as in the ResponseModel protocol)."""
        self._check(recording_id)
        u = self._units[self._units["recording_id"] == recording_id].reset_index(drop=True)
        return u[[c for c in UNIT_COLUMNS if c in u.columns] + [c for c in u.columns if c not in UNIT_COLUMNS]]

    def predict(self, stimulus: jax.Array, recording_id: str,
                behaviour: Mapping[str, jax.Array] | None = None) -> jax.Array:
        """(B, T, H, W) grey levels -> (B, T, N) rates (events/frame); differentiable."""
        self._check(recording_id)
        return self._fwd(self._state, recording_id, jnp.asarray(stimulus, jnp.float32),
                         None if behaviour is None else {k: jnp.asarray(v) for k, v in behaviour.items()})

    def predict_members(self, stimulus, recording_id, behaviour=None) -> jax.Array:
        """(1, B, T, N): this single model as a one-member ensemble."""
        return self.predict(stimulus, recording_id, behaviour)[None]

    def readout_positions(self, recording_id: str, units: Literal["deg", "grid"] = "deg") -> np.ndarray:
        """(N, 2) mean readout positions (x, y). ``grid``: in [-1, 1] over the image; ``deg``:
        visual degrees from the screen centre: azimuth (right positive), elevation (up positive),
        as twin.stimuli.grid.visual_grid and the simulator's rf_x_deg / rf_y_deg."""
        self._check(recording_id)
        mu = np.asarray(self.model.readouts[recording_id].positions())
        if units == "grid":
            return mu
        h, w = self.image_shape
        from twin.model.config import feature_pixel_map

        def to_deg(g, n):  # grid -> pixel on the (pooled) feature map -> stimulus pixel -> degrees
            f, c, m = feature_pixel_map(self.info["model_config"]["core"], n)
            pix = (g + 1) / 2 * (m - 1) * f + c
            return (pix - (n - 1) / 2) * self.pixel_size_deg

        return np.stack([to_deg(mu[:, 0], w), -to_deg(mu[:, 1], h)], -1)   # elevation: up positive

    def readout_covariance(self, recording_id: str) -> np.ndarray:
        """(N, 2, 2) covariance of each neuron's readout Gaussian, in grid units squared; NaN when
        component 0 reads a weight patch (``model.readout.mask``), which has no Gaussian (its
        covariance parameters stay at their start and mean nothing)."""
        self._check(recording_id)
        readout = self.model.readouts[recording_id]
        lo = np.asarray(readout.covariance_factor())
        cov = lo @ np.swapaxes(lo, -1, -2)
        return np.full_like(cov, np.nan) if readout.mask_weights is not None else cov

    def readout_features(self, recording_id: str) -> np.ndarray:
        """(N, C) readout feature vectors (weights over the shared core's channels), each channel's
        weight times that channel's s.d. on training movies (``model.json["feature_sd"]``, written
        by training; runs without it give the raw weights), so that a weight counts by how much it
        moves the neuron's drive. With several readout components per neuron
        (``model.readout.components``) their feature vectors are summed
        (``ScanReadout.net_features``): the neuron's net weight on each channel.

        On the default mouse (demo twin, seed 0), pairwise cosines of these vectors vs the planted
        neurons' signal correlations, per scan: raw weights r = 0.32 / 0.32, scaled 0.35 / 0.33;
        after the readout refit (:mod:`twin.train.refit`) raw 0.17 / 0.18 (the refit leaves small
        weights on channels that barely vary), scaled 0.44 / 0.39. Component 0's alone gave
        0.25-0.26 raw (the second component carries ~0.8 of the first's norm)."""
        self._check(recording_id)
        f = np.asarray(self.model.readouts[recording_id].net_features())
        sd = self.info.get("feature_sd")
        return f if sd is None else f * np.asarray(sd, f.dtype)


class EnsembleResponseModel:
    """Mean of several twins trained from different seeds (same scans, same time base)."""

    def __init__(self, members: list[TwinResponseModel]):
        self.members = members
        first = members[0]
        self.frame_rate, self.image_shape = first.frame_rate, first.image_shape
        self.pixel_size_deg, self.burn_in = first.pixel_size_deg, first.burn_in
        for m in members[1:]:
            if m.recording_ids() != first.recording_ids() or m.image_shape != first.image_shape:
                raise InputError(None, "ensemble members", "the same scans and image shape", m.recording_ids())

    def recording_ids(self) -> list[str]:
        return self.members[0].recording_ids()

    def units(self, recording_id: str) -> pd.DataFrame:
        return self.members[0].units(recording_id)

    def predict_members(self, stimulus, recording_id, behaviour=None) -> jax.Array:
        """(M, B, T, N) every member's prediction (their spread is the ensemble's uncertainty)."""
        return jnp.stack([m.predict(stimulus, recording_id, behaviour) for m in self.members])

    def predict(self, stimulus, recording_id, behaviour=None) -> jax.Array:
        """(B, T, N) mean of the members' rates."""
        return jnp.mean(self.predict_members(stimulus, recording_id, behaviour), axis=0)

    def readout_positions(self, recording_id: str, units: Literal["deg", "grid"] = "deg") -> np.ndarray:
        """(N, 2) members' mean readout positions."""
        return np.mean([m.readout_positions(recording_id, units) for m in self.members], axis=0)

    def readout_features(self, recording_id: str) -> np.ndarray:
        """(N, M*C) members' feature vectors concatenated (each member has its own core space)."""
        return np.concatenate([m.readout_features(recording_id) for m in self.members], axis=1)


def load_model(run_dir: str | Path) -> TwinResponseModel | EnsembleResponseModel:
    """A finished run (single or ensemble) as a ResponseModel."""
    run_dir = Path(run_dir)
    info = run_info(run_dir)
    if info.get("kind") == "ensemble":
        return EnsembleResponseModel([load_model(run_dir / m) for m in info["members"]])
    model, info = load_twin_module(run_dir)
    return TwinResponseModel(model, info, pd.read_parquet(run_dir / "units.parquet"))

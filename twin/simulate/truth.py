"""The ground-truth ResponseModel: the planted neurons' noise-free expected response.

``load_truth_model(sim_dir)`` rebuilds every neuron from ``truth/units.parquet`` and
``truth/params.json`` (the planted parameters fully determine it) and answers
:class:`twin.response_model.ResponseModel`, so in-silico experiments run on it are the ground
truth a trained twin is scored against.

Two responses: ``"rate"`` (default), the planted expected events per frame, and ``"observed"``,
their expected *observed* activity: the mean of what the simulated two-photon pipeline delivers
for them (:func:`twin.simulate.observation.expected_observation_jax`; spikes, calcium, noise,
thresholded deconvolution, all averaged out, so still noise-free). A twin is trained on observed
activity and so predicts the latter; where an index depends on the response's offset (gOSI,
gDSI and F1/F0 divide by the mean response), the observed response is the like-for-like
yardstick, as in vivo tuning measured from deconvolved activity is for a published twin. The
difference is large on the default mouse: thresholded noise events raise every neuron's floor,
most for the noisiest, so the observed gOSI follows each neuron's noise as well as its tuning
(see ``twin.insilico.score``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin.errors import InputError
from twin.simulate import neurons
from twin.simulate.config import ObservationConfig
from twin.simulate.observation import expected_observation_jax

RESPONSES = ("rate", "observed")
UNIT_COLUMNS = ["recording_id", "animal_id", "session", "scan_idx", "unit_id", "area", "layer", "pt_root_id"]


class TruthModel:
    """The simulator's neurons as a :class:`twin.response_model.ResponseModel`.

    Attributes follow the protocol (``frame_rate``, ``image_shape``, ``pixel_size_deg``,
    ``burn_in``); ``table`` is the full planted-parameter table (truth/units.parquet);
    ``response`` is ``"rate"`` or ``"observed"`` and ``observation`` the simulation's
    ObservationConfig with ``"observed"`` (else None).
    """

    def __init__(self, units: pd.DataFrame, params: Mapping[str, Any], response: str = "rate"):
        if response not in RESPONSES:
            raise InputError(None, "truth response", f"one of {list(RESPONSES)}", response)
        st = params["stimulus"]
        self.response = response
        self.frame_rate = float(st["frame_rate"])
        self.image_shape = (int(st["image_shape"][0]), int(st["image_shape"][1]))
        self.pixel_size_deg = float(st["pixel_size_deg"])
        self.burn_in = int(params["burn_in"])
        self.table = units
        self._beh = params["behaviour"]
        self._default = params["default_behaviour"]
        self._ids = list(dict.fromkeys(units["recording_id"]))
        self._params: dict[str, dict[str, Any]] = {}
        pm, psd = float(self._beh["pupil_mean_px"]), float(self._beh["pupil_sd_px"])
        self._eye_scale = float(self._beh["eye_shift_gain"]) / self.pixel_size_deg
        self.observation = None
        if response == "observed":
            obs = (params.get("config") or {}).get("observation")
            if not isinstance(obs, Mapping):
                raise InputError("truth/params.json", "config.observation",
                                 "the simulation's observation settings (needed for response='observed')", obs)
            self.observation = ObservationConfig(**obs)

        def fwd(p, stim, run, pup, eye):
            rate = neurons.respond(p, stim, run, pup, None if eye is None else eye * self._eye_scale, pm, psd)
            return self.observe(rate, p["noise_sd"])

        self._fwd = jax.jit(fwd)

    def observe(self, rate, noise_sd):
        """What this model answers for planted rates (B, T, N) of neurons with fluorescence noise
        ``noise_sd`` (N,): the rates themselves, or with ``response="observed"`` their expected
        observation (:func:`twin.simulate.observation.expected_observation_jax`). JAX, jit-able."""
        if self.observation is None:
            return rate
        return expected_observation_jax(rate, noise_sd, self.frame_rate, self.observation)

    def recording_ids(self) -> list[str]:
        """Scans, in the order of the simulation."""
        return list(self._ids)

    def units(self, recording_id: str) -> pd.DataFrame:
        """Rows of ``recording_id``'s neurons in output order (protocol columns plus every
        planted parameter)."""
        self._check(recording_id)
        return self.table[self.table.recording_id == recording_id].reset_index(drop=True)

    def _check(self, recording_id: str) -> None:
        if recording_id not in self._ids:
            raise InputError(None, "recording_id", f"one of {self._ids}", recording_id)

    def params(self, recording_id: str) -> dict[str, Any]:
        """The JAX parameter pytree of one scan's neurons (built once, cached)."""
        self._check(recording_id)
        if recording_id not in self._params:
            p = neurons.build_params(self.units(recording_id), self.image_shape, self.pixel_size_deg, self.frame_rate)
            self._params[recording_id] = neurons.to_device(p)
        return self._params[recording_id]

    def predict(self, stimulus: jax.Array, recording_id: str,
                behaviour: Mapping[str, jax.Array] | None = None) -> jax.Array:
        """Expected events per frame (B, T, N) for grey-level ``stimulus`` (B, T, H, W): the
        planted rate, or its expected observation with ``response="observed"``.

        ``behaviour`` may hold ``running`` (B, T) cm/s, ``pupil`` (B, T) px and ``eye_position``
        (B, T, 2) degrees; missing entries take the scan's typical state (its mean running
        speed and pupil, eye centred). Differentiable with respect to ``stimulus``.
        """
        p = self.params(recording_id)
        stimulus = jnp.asarray(stimulus, jnp.float32)
        if stimulus.ndim != 4 or tuple(stimulus.shape[2:]) != self.image_shape:
            raise InputError(None, "stimulus", f"shape (batch, time, {self.image_shape[0]}, {self.image_shape[1]})",
                             tuple(stimulus.shape))
        b, t = stimulus.shape[:2]
        behaviour = dict(behaviour or {})
        d = self._default.get(recording_id, {"running": 0.0, "pupil": float(self._beh["pupil_mean_px"])})
        run = jnp.broadcast_to(jnp.asarray(behaviour.get("running", d["running"]), jnp.float32), (b, t))
        pup = jnp.broadcast_to(jnp.asarray(behaviour.get("pupil", d["pupil"]), jnp.float32), (b, t))
        eye = behaviour.get("eye_position")
        eye = None if eye is None else jnp.broadcast_to(jnp.asarray(eye, jnp.float32), (b, t, 2))
        return self._fwd(p, stimulus, run, pup, eye)


def read_params(sim_dir: str | os.PathLike) -> dict[str, Any]:
    """``truth/params.json`` of a simulation folder."""
    path = Path(sim_dir) / "truth" / "params.json"
    if not path.is_file():
        raise InputError(path, "file", "a simulation folder written by `twin simulate` (truth/params.json)",
                         "no such file")
    return json.loads(path.read_text())


def load_truth_model(sim_dir: str | os.PathLike, response: str = "rate") -> TruthModel:
    """The planted neurons of the simulation in ``sim_dir`` as a ResponseModel answering their
    planted rate (``response="rate"``) or its expected observation (``"observed"``)."""
    params = read_params(sim_dir)
    path = Path(sim_dir) / "truth" / "units.parquet"
    if not path.is_file():
        raise InputError(path, "file", "the planted-unit table truth/units.parquet", "no such file")
    return TruthModel(pd.read_parquet(path), params, response)


def predict_in_chunks(model: TruthModel, stimulus: np.ndarray, recording_id: str,
                      behaviour: Mapping[str, np.ndarray] | None = None, chunk: int = 16) -> np.ndarray:
    """``model.predict`` over trials in fixed-size chunks (one compilation; last chunk padded).

    stimulus (B, T, H, W) uint8 or float; behaviour arrays with leading (B, T). Returns (B, T, N)
    float32 NumPy.
    """
    b = len(stimulus)
    out = []
    for s in range(0, b, chunk):
        sl = slice(s, min(s + chunk, b))
        pad = chunk - (sl.stop - sl.start)
        st = np.asarray(stimulus[sl], np.float32)
        beh = {k: np.asarray(v[sl], np.float32) for k, v in (behaviour or {}).items()}
        if pad:
            st = np.concatenate([st, np.repeat(st[-1:], pad, 0)])
            beh = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) for k, v in beh.items()}
        out.append(np.asarray(model.predict(st, recording_id, beh or None))[: sl.stop - sl.start])
    return np.concatenate(out)


def write_noise_free_recordings(sim_dir: str | os.PathLike, out_dir: str | os.PathLike,
                                recording_ids: Sequence[str] | None = None, chunk: int = 16) -> list[Path]:
    """Copies of a simulation's Recordings whose ``response`` is the planted neurons'
    noise-free expected events per frame for the same stimuli and behaviour (every tier).

    A twin trained on them (``data.recordings = [out_dir]``) and scored by ``twin evaluate
    --truth sim_dir`` on the noisy test trials shows how close the architecture and training
    budget can come to the truth with unlimited signal-to-noise: the ceiling its noisy-data
    score sits under. Each file is written to a temporary name and renamed; the root attribute
    ``response_source`` says what ``response`` holds. Returns the written paths.
    """
    import shutil

    import h5py

    from twin.io import atomic_path

    sim_dir, out_dir = Path(sim_dir), Path(out_dir)
    model = load_truth_model(sim_dir)
    ids = list(model.recording_ids()) if recording_ids is None else [str(r) for r in recording_ids]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for rid in ids:
        src = sim_dir / "recordings" / f"{rid}.h5"
        if not src.is_file():
            raise InputError(src, "file", f"the Recording of scan {rid} in the simulation folder", "no such file")
        dst = out_dir / src.name
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
            with h5py.File(tmp, "r+") as f:
                behaviour = {k: f[k][:] for k in ("running", "pupil", "eye_position")}
                rate = predict_in_chunks(model, f["stimulus"], rid, behaviour, chunk=chunk)
                f["response"][...] = rate.astype(np.float32)
                f.attrs["response_source"] = "noise-free planted rates (twin.simulate.truth.write_noise_free_recordings)"
        written.append(dst)
    return written

"""The synthetic mouse: planted neurons, an observation model, trials and ground truth.

Public API: :func:`simulate` (config -> output folder), :func:`load_truth_model` (folder ->
ResponseModel of the planted neurons), :class:`SimConfig` with :func:`preset` and
:func:`load_sim_config`. Heavy modules (JAX) load on first use.
"""

from __future__ import annotations

from typing import Any

from twin.simulate.config import SimConfig, load_sim_config, preset

__all__ = ["SimConfig", "preset", "load_sim_config", "simulate", "load_truth_model"]


def simulate(config: SimConfig, out_dir: Any, *, progress: bool = True):
    """Simulate ``config`` into ``out_dir``; see :func:`twin.simulate.mouse.simulate`."""
    from twin.simulate.mouse import simulate as _simulate

    return _simulate(config, out_dir, progress=progress)


def load_truth_model(sim_dir: Any, response: str = "rate"):
    """The planted neurons of a simulation folder as a ResponseModel (noise-free): their planted
    rate, or with ``response="observed"`` its expected observed activity."""
    from twin.simulate.truth import load_truth_model as _load

    return _load(sim_dir, response)

"""In-silico experiments on any ResponseModel (a trained twin or the simulator's planted neurons).

Tuning (:mod:`.tuning`), receptive fields (:mod:`.rf`), MEIs/VEIs (:mod:`.mei`), bipartite
invariance (:mod:`.invariance`), functional profiles (:mod:`.profiles`), the resumable battery
runner :func:`run_battery` (:mod:`.battery`), the CLI ``twin insilico`` (:mod:`.cli`) and scoring
against the simulator's truth (:mod:`.score`; ``twin insilico ... --score SIM_DIR``). Every
experiment reaches the model through :mod:`.engine` (one model pass per stimulus batch answers for
every neuron; per-neuron inputs in fixed-shape waves: one compilation per computation). Heavy
modules (JAX) load on first use.
"""

from __future__ import annotations

from twin.insilico.config import EXPERIMENTS, InsilicoConfig, load_insilico_config

__all__ = ["EXPERIMENTS", "InsilicoConfig", "load_insilico_config", "run_battery", "score_battery"]


def run_battery(config, model, out_dir, **kwargs):
    """Run the battery ``config`` on ``model`` into ``out_dir``; see :func:`twin.insilico.battery.run_battery`."""
    from twin.insilico.battery import run_battery as _run

    return _run(config, model, out_dir, **kwargs)


def score_battery(battery_dir, sim_dir, truth_battery_dir=None, metrics_path=None, **kwargs):
    """Quality-bar numbers vs the simulator's truth; see :func:`twin.insilico.score.score_battery`."""
    from twin.insilico.score import score_battery as _score

    return _score(battery_dir, sim_dir, truth_battery_dir, metrics_path, **kwargs)

"""The twin network (Flax NNX): shared core, per-scan readouts, and loading trained runs.

``load_model(run_dir)`` -> ResponseModel (single twin or seed ensemble);
``TwinModel`` the network; ``ModelConfig`` its sizes.
"""

from twin.model.config import ModelConfig


def load_model(run_dir):
    """A finished ``twin train`` run directory as a ResponseModel (see twin.model.response)."""
    from twin.model.response import load_model as _load

    return _load(run_dir)


def __getattr__(name):
    if name == "TwinModel":
        from twin.model.twin_model import TwinModel
        return TwinModel
    raise AttributeError(name)


__all__ = ["ModelConfig", "load_model", "TwinModel"]

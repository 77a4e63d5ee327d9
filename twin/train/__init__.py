"""Training twins: ``train(config, out_dir, ...) -> Path`` (see twin.train.loop), ``TrainConfig``."""

from twin.train.config import DataConfig, OptimConfig, TrainConfig


def train(config, out_dir, **kwargs):
    """Train a twin into ``out_dir``; see :func:`twin.train.loop.train`."""
    from twin.train.loop import train as _train

    return _train(config, out_dir, **kwargs)


__all__ = ["train", "TrainConfig", "DataConfig", "OptimConfig"]

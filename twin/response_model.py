"""The one interface every in-silico experiment and evaluation runs against.

A trained twin (``twin.model``), an ensemble of twins, and the simulator's ground truth
(``twin.simulate``) all implement :class:`ResponseModel`, so that an experiment run on the
twin can be scored against the same experiment run on the planted neurons.
"""

from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

import jax
import pandas as pd


@runtime_checkable
class ResponseModel(Protocol):
    """Predicts neurons' responses to stimuli, differentiably (JAX).

    Attributes:
      frame_rate: Hz of the model time base (stimulus frames and responses share it).
      image_shape: (H, W) stimulus pixels the model expects.
      pixel_size_deg: visual degrees per stimulus pixel.
      burn_in: frames at the start of each clip whose predictions are not to be scored.
    """

    frame_rate: float
    image_shape: tuple[int, int]
    pixel_size_deg: float
    burn_in: int

    def recording_ids(self) -> list[str]:
        """The scans this model has neurons for (``"<animal>-<session>-<scan>"``)."""
        ...

    def units(self, recording_id: str) -> pd.DataFrame:
        """One row per neuron, in output order, with columns recording_id, animal_id, session,
        scan_idx, unit_id, area, layer, pt_root_id (0 = none)."""
        ...

    def predict(self, stimulus: jax.Array, recording_id: str,
                behaviour: Mapping[str, jax.Array] | None = None) -> jax.Array:
        """Responses to ``stimulus``.

        Args:
          stimulus: (batch, time, H, W) float32 grey levels 0..255 at ``frame_rate``.
          recording_id: which scan's neurons to predict.
          behaviour: optional ``running`` (batch, time), ``pupil`` (batch, time) and
            ``eye_position`` (batch, time, 2); None means each scan's typical (mean) state.
        Returns:
          (batch, time, n_units) float32 non-negative rates (activity per frame); a pure JAX
          function of ``stimulus``, so ``jax.grad`` gives input gradients (MEIs, RFs).
        """
        ...

"""Recordings: one xarray/HDF5 abstraction, importers into it, and batch loading.

- :mod:`twin.data.recording`  the Recording format (make, write, open, validate)
- :mod:`twin.data.sensorium`  Sensorium 2022/2023 folders -> Recording, and the 2023 exporter
- :mod:`twin.data.nwb`        NWB (pynwb) -> Recording on one time base
- :mod:`twin.data.loader`     ``Batches`` of time windows with prefetch; ``iter_trials``
- :mod:`twin.data.cli`        ``twin import`` and ``twin info``
"""

from twin.data.recording import (
    FORMAT_VERSION,
    TIERS,
    make_recording,
    open_recording,
    recording_id,
    validate_recording,
    write_recording,
)

__all__ = ["FORMAT_VERSION", "TIERS", "make_recording", "open_recording", "validate_recording",
           "write_recording", "recording_id"]

"""Recordings: one xarray/HDF5 abstraction, importers into it, and batch loading."""

from twin.data.recording import (
    FORMAT_VERSION,
    TIERS,
    open_recording,
    validate_recording,
    write_recording,
    recording_id,
)

__all__ = ["FORMAT_VERSION", "TIERS", "open_recording", "validate_recording", "write_recording",
           "recording_id"]

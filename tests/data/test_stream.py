"""The trial-by-trial Recording writer: same file as write_recording, nothing left on failure."""

from __future__ import annotations

import numpy as np
import pytest

from twin.data.recording import open_recording
from twin.data.stream import recording_writer
from twin.errors import InputError

from .conftest import tiny_recording

VARS = ("stimulus", "response", "running", "pupil", "eye_position")


def _args(ds):
    units = {k: ds[k].values for k in ("unit_id", "area", "layer", "cortical_x", "cortical_y", "cortical_z",
                                       "pt_root_id")}
    trials = {k: ds[k].values for k in ("tier", "stimulus_type", "clip_id", "repeat", "n_frames")}
    return dict(n_time=ds.sizes["time"], image_shape=(ds.sizes["y"], ds.sizes["x"]), stimulus_dtype=ds.stimulus.dtype,
                units=units, trials=trials, frame_rate=10.0, animal_id="m1", session=2, scan_idx=3,
                pixel_size_deg=2.0, provenance={"test": True})


def _trial(ds, i):
    t = ds.isel(trial=i, time=slice(0, int(ds.n_frames.values[i])))
    return {v: t[v].values for v in VARS}


@pytest.mark.parametrize("uint8", [True, False])
def test_streamed_file_opens_as_the_same_recording_with_padding(tmp_path, uint8):
    ds = tiny_recording(n_frames=[5, 4, 5, 3, 5, 5], uint8=uint8)
    with recording_writer(tmp_path / "r.h5", **_args(ds)) as w:
        for i in range(ds.sizes["trial"]):
            w.write_trial(i, **_trial(ds, i))
    with open_recording(tmp_path / "r.h5") as back:
        for v in VARS:
            assert back[v].dtype == ds[v].dtype
            for i, n in enumerate(ds.n_frames.values):
                np.testing.assert_array_equal(back[v].values[i, :n], ds[v].values[i, :n])
        assert (back.response.values[3, 3:] == 0).all()
        assert (back.stimulus.values[3, 3:] == (128 if uint8 else 127.5)).all()
        assert back.attrs["recording_id"] == "m1-2-3" and back.tier.values.tolist() == ds.tier.values.tolist()


@pytest.mark.parametrize("fault", ["nan", "shape", "missing trial", "caller error"])
def test_any_failure_while_streaming_leaves_no_file(tmp_path, fault):
    ds = tiny_recording()
    with pytest.raises((InputError, RuntimeError)):
        with recording_writer(tmp_path / "r.h5", **_args(ds)) as w:
            for i in range(ds.sizes["trial"]):
                values = _trial(ds, i)
                if i == 3 and fault == "nan":
                    values["pupil"][1] = np.nan
                if i == 3 and fault == "shape":
                    values["response"] = values["response"][:, :2]
                if i == 3 and fault == "caller error":
                    raise RuntimeError("interrupted")
                if i == 3 and fault == "missing trial":
                    continue
                w.write_trial(i, **values)
    assert list(tmp_path.iterdir()) == []

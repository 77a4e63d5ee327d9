"""NWB import on files written by the real pynwb writer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from twin.data.nwb import _lerp, import_nwb, read_nwb
from twin.data.recording import open_recording
from twin.errors import InputError

from .nwb_fixture import write_nwb

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def nwb_file(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_nwb(tmp_path_factory.mktemp("nwb") / "s.nwb")


def test_trials_come_from_every_intervals_table_in_time_order_with_microns_stimulus_types(nwb_file):
    ds = read_nwb(nwb_file)
    assert ds.clip_id.values.tolist() == ["A", "Monet2-0", "A", "B", "C"]
    assert ds.stimulus_type.values.tolist() == ["natural_movie", "directional_noise"] + ["natural_movie"] * 3
    assert ds.repeat.values.tolist() == [0, 0, 1, 0, 0]
    # the repeated clip is the test set; single showings are train plus a held-out validation clip
    assert ds.tier.values[[0, 2]].tolist() == ["test", "test"]
    assert sorted(ds.tier.values[[1, 3, 4]].tolist()) == ["train", "train", "validation"]
    assert ds.n_frames.values.tolist() == [20, 10, 20, 20, 16]  # 0.8 s at 20 Hz = 16 frames


def test_every_stream_is_resampled_onto_the_response_time_base(nwb_file):
    ds = read_nwb(nwb_file)
    assert ds.attrs["frame_rate"] == 20.0
    t = 1.5 + np.arange(10) / 20.0  # the Monet2 trial
    np.testing.assert_allclose(ds.response.values[1, :10], t[:, None] * np.arange(3)[None], atol=1e-5)
    np.testing.assert_allclose(ds.running.values[1, :10], 2 * t, atol=1e-5)       # 50 Hz treadmill
    np.testing.assert_allclose(ds.pupil.values[1, :10], 2.0)                       # mean of radii 1 and 3
    np.testing.assert_allclose(ds.eye_position.values[1, :10], np.stack([t, -t], 1), atol=1e-5)
    # stimulus: the most recent 5 Hz frame (frame f is filled with the value f)
    np.testing.assert_array_equal(ds.stimulus.values[1, :10, 0, 0], np.floor(t * 5 + 1e-9).astype(int))


def test_a_slower_model_frame_rate_interpolates_linearly(nwb_file):
    ds = read_nwb(nwb_file, frame_rate=8.0)
    t = 4.0 + np.arange(8) / 8.0
    assert ds.n_frames.values[3] == 8
    np.testing.assert_allclose(ds.response.values[3, :8, 2], 2 * t, atol=1e-5)


def test_units_carry_root_ids_positions_and_the_plane_location(nwb_file):
    ds = read_nwb(nwb_file)
    assert ds.unit_id.values.tolist() == [0, 1, 2]
    assert ds.pt_root_id.values.tolist() == [0, 101, 102]
    assert ds.cortical_x.values.tolist() == [0.0, 10.0, 20.0]
    assert set(ds.area.values.tolist()) == {"VISp"}
    assert ds.attrs["recording_id"] == "17797-4-0"


def test_import_writes_a_recording_with_provenance(nwb_file, tmp_path):
    out = import_nwb(nwb_file, tmp_path / "r.h5", animal_id="m9", scan_idx=2)
    with open_recording(out) as ds:
        assert ds.attrs["recording_id"] == "m9-4-2"
        assert "inputs" in ds.attrs["provenance"] and "nwb" in ds.attrs["provenance"]


def test_nwb_without_response_series_is_an_input_error(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_nwb(tmp_path / "noresp.nwb", with_responses=False)
    with pytest.raises(InputError, match="RoiResponseSeries"):
        import_nwb(path, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_unknown_series_name_and_non_nwb_files_are_input_errors(nwb_file, tmp_path):
    with pytest.raises(InputError, match="series"):
        read_nwb(nwb_file, series="nope")
    bad = tmp_path / "x.nwb"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="readable NWB"):
        read_nwb(bad)
    with pytest.raises(InputError, match="no such file"):
        read_nwb(tmp_path / "absent.nwb")


def test_lerp_holds_the_ends_and_interpolates_between_samples():
    t = np.array([0.0, 1.0, 3.0])
    v = np.array([0.0, 10.0, 30.0])
    np.testing.assert_allclose(_lerp(t, v, np.array([-1.0, 0.5, 2.0, 5.0])), [0.0, 5.0, 20.0, 30.0])


def test_streamed_import_equals_the_in_memory_reading(nwb_file, tmp_path):
    mem = read_nwb(nwb_file, frame_rate=12.0)
    with open_recording(import_nwb(nwb_file, tmp_path / "r.h5", frame_rate=12.0)) as ds:
        for name in ("stimulus", "response", "running", "pupil", "eye_position"):
            np.testing.assert_array_equal(ds[name].values, mem[name].values)
        assert ds.tier.values.tolist() == mem.tier.values.tolist()


def test_colour_stimulus_frames_are_averaged_to_grey(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_nwb(tmp_path / "c.nwb", colour=True)
    ds = read_nwb(path)
    t = 1.5 + np.arange(10) / 20.0
    assert ds.stimulus.dtype == np.float32
    np.testing.assert_allclose(ds.stimulus.values[1, :10, 0, 0], np.floor(t * 5 + 1e-9))


def test_nan_responses_inside_a_trial_are_an_input_error_and_write_nothing(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_nwb(tmp_path / "n.nwb", nan_at=2.5)
    with pytest.raises(InputError, match="finite"):
        import_nwb(path, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_behaviour_dropouts_in_nwb_are_bridged_by_interpolation(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_nwb(tmp_path / "d.nwb", treadmill_nan_at=1.6)
    ds = read_nwb(path)
    t = 1.5 + np.arange(10) / 20.0
    np.testing.assert_allclose(ds.running.values[1, :10], 2 * t, atol=1e-5)   # linear trace: bridged exactly
    assert '"running": 1' in ds.attrs["provenance"]

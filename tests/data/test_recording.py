"""The Recording: round trips, validation of every bad case, lazy opening, atomic writes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.data.recording import (
    FORMAT_VERSION, make_recording, open_recording, provenance_of, recording_id, validate_recording,
    write_recording)
from twin.errors import InputError

from .conftest import tiny_recording

BULK = ("stimulus", "response", "running", "pupil", "eye_position")
SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def assert_same_recording(a, b):
    for name in BULK:
        assert a[name].dims == b[name].dims
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(np.asarray(a[name].values), np.asarray(b[name].values))
    assert set(a.coords) == set(b.coords)
    for name in a.coords:
        x, y = np.asarray(a[name].values), np.asarray(b[name].values)
        if x.dtype.kind in "OUS":
            assert x.astype(str).tolist() == y.astype(str).tolist(), name
        else:
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype, name
    for key in ("recording_id", "animal_id", "session", "scan_idx", "frame_rate", "pixel_size_deg"):
        assert a.attrs[key] == b.attrs[key]


@st.composite
def recordings(draw):
    n_trial = draw(st.integers(1, 4))
    n_time = draw(st.integers(1, 4))
    n_unit = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    uint8 = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    n_frames = draw(st.lists(st.integers(1, n_time), min_size=n_trial, max_size=n_trial))
    tiers = ["train"] + draw(st.lists(st.sampled_from(["train", "validation", "test"]),
                                      min_size=n_trial - 1, max_size=n_trial - 1))
    return tiny_recording(n_trial, n_time, n_unit, h, w, seed=seed, uint8=uint8, n_frames=n_frames, tiers=tiers)


@SETTINGS
@given(ds=recordings())
def test_round_trip_preserves_every_value_coordinate_and_attribute(tmp_path_factory, ds):
    path = tmp_path_factory.mktemp("rt") / "r.h5"
    write_recording(ds, path)
    with open_recording(path) as back:
        assert_same_recording(ds, back)
        assert back.attrs["format_version"] == FORMAT_VERSION
        assert provenance_of(back) == {"test": True}


def test_recording_id_names_animal_session_scan():
    assert recording_id("m1", 2, np.int64(3)) == "m1-2-3"
    assert tiny_recording().attrs["recording_id"] == "m1-2-3"


def _drop(name):
    return lambda ds: ds.drop_vars(name)


BAD_CASES = {
    "missing variable": (_drop("pupil"), "pupil"),
    "wrong dims": (lambda ds: ds.assign(running=(("time", "trial"), ds.running.values.T)), "running"),
    "integer response": (lambda ds: ds.assign(response=ds.response.astype(np.int32)), "response"),
    "integer pupil": (lambda ds: ds.assign(pupil=ds.pupil.astype(np.int8)), "pupil"),
    "int16 stimulus": (lambda ds: ds.assign(stimulus=ds.stimulus.astype(np.int16)), "stimulus"),
    "three eye components": (lambda ds: ds.isel(eye=[0, 1, 1]).assign_coords(eye=["x", "y", "z"]), "eye_position"),
    "NaN response": (lambda ds: ds.assign(response=ds.response.where(ds.response < 0.5)), "response"),
    "inf running": (lambda ds: ds.assign(running=ds.running * np.inf), "running"),
    "missing unit coord": (_drop("area"), "coordinate area"),
    "missing trial coord": (_drop("clip_id"), "coordinate clip_id"),
    "string unit id": (lambda ds: ds.assign_coords(unit_id=("unit", ds.unit_id.values.astype(str))),
                       "coordinate unit_id"),
    "float repeat": (lambda ds: ds.assign_coords(repeat=("trial", ds.repeat.values + 0.5)), "coordinate repeat"),
    "duplicate unit ids": (lambda ds: ds.assign_coords(unit_id=("unit", np.zeros(ds.sizes["unit"], np.int64))),
                           "unit_id"),
    "unknown tier": (lambda ds: ds.assign_coords(tier=("trial", ["train", "dev"] * (ds.sizes["trial"] // 2))),
                     "tier"),
    "no train trials": (lambda ds: ds.assign_coords(tier=("trial", ["test"] * ds.sizes["trial"])), "tier"),
    "empty trial dim": (lambda ds: ds.isel(trial=[]), "trial"),
    "empty unit dim": (lambda ds: ds.isel(unit=[]), "unit"),
    "n_frames zero": (lambda ds: ds.assign_coords(n_frames=("trial", np.zeros(ds.sizes["trial"], np.int64))),
                      "n_frames"),
    "n_frames too long": (lambda ds: ds.assign_coords(n_frames=ds.n_frames + 1), "n_frames"),
    "missing attr": (lambda ds: _without_attr(ds, "frame_rate"), "frame_rate"),
    "negative frame rate": (lambda ds: _with_attr(ds, "frame_rate", -1.0), "frame_rate"),
    "future format": (lambda ds: _with_attr(ds, "format_version", "9.0"), "format_version"),
}


def _without_attr(ds, key):
    ds = ds.copy()
    del ds.attrs[key]
    return ds


def _with_attr(ds, key, value):
    ds = ds.copy()
    ds.attrs[key] = value
    return ds


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_each_bad_recording_is_an_input_error_naming_the_field_and_leaves_no_file(tmp_path, case):
    mutate, field = BAD_CASES[case]
    bad = mutate(tiny_recording())
    with pytest.raises(InputError) as err:
        validate_recording(bad, "x.h5")
    assert field in err.value.field
    out = tmp_path / "out" / "r.h5"
    with pytest.raises(InputError):
        write_recording(bad, out)
    assert _leftovers(out.parent) == []


@SETTINGS
@given(var=st.sampled_from(["response", "running", "pupil", "eye_position"]),
       value=st.sampled_from([np.nan, np.inf, -np.inf]), pos=st.integers(0, 10**6))
def test_any_non_finite_value_anywhere_is_rejected_on_write(tmp_path_factory, var, value, pos):
    ds = tiny_recording(seed=pos % 7)
    arr = ds[var].values.copy()
    arr.flat[pos % arr.size] = value
    ds[var] = (ds[var].dims, arr)
    folder = tmp_path_factory.mktemp("nan")
    with pytest.raises(InputError, match=var):
        write_recording(ds, folder / "r.h5")
    assert _leftovers(folder) == []


def test_opening_reads_no_bulk_data(tmp_path, monkeypatch):
    path = write_recording(tiny_recording(), tmp_path / "r.h5")
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        reads.append(self.name.lstrip("/"))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    ds = open_recording(path)
    try:
        assert not set(reads) & set(BULK), reads
        for name in BULK:
            assert not ds[name].variable._in_memory
        window = ds["response"].isel(trial=1, time=slice(1, 3)).values
        assert "response" in reads and window.shape == (2, ds.sizes["unit"])
    finally:
        ds.close()


def test_file_is_chunked_one_trial_per_chunk(tmp_path):
    path = write_recording(tiny_recording(), tmp_path / "r.h5")
    with h5py.File(path, "r") as f:
        for name in BULK:
            assert f[name].chunks[0] == 1 and f[name].chunks[1:] == f[name].shape[1:]


def test_missing_truncated_and_non_hdf5_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_recording(tmp_path / "absent.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputError, match="readable HDF5"):
        open_recording(text)
    path = write_recording(tiny_recording(), tmp_path / "r.h5")
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError):
        with open_recording(trunc) as ds:  # a truncation that still opens fails on first read
            ds.load()


def test_an_hdf5_file_that_is_not_a_recording_is_an_input_error(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputError):
        open_recording(path)


def test_a_failed_write_keeps_the_previous_file_intact(tmp_path):
    path = write_recording(tiny_recording(seed=1), tmp_path / "r.h5")
    before = path.read_bytes()
    bad = tiny_recording(seed=2)
    bad["response"][0, 0, 0] = np.nan
    with pytest.raises(InputError):
        write_recording(bad, path)
    assert path.read_bytes() == before and _leftovers(tmp_path) == ["r.h5"]


def test_provenance_dict_is_stored_as_json_text(tmp_path):
    ds = tiny_recording()
    ds.attrs["provenance"] = {"inputs": {"a": "b"}}
    path = write_recording(ds, tmp_path / "r.h5")
    with open_recording(path) as back:
        assert json.loads(back.attrs["provenance"]) == {"inputs": {"a": "b"}}


def test_make_recording_fills_scan_coordinates_and_full_n_frames():
    ds = tiny_recording()
    assert set(np.asarray(ds.session.values)) == {2} and set(np.asarray(ds.scan_idx.values)) == {3}
    assert (ds.n_frames.values == ds.sizes["time"]).all()

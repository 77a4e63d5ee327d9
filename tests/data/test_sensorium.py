"""Sensorium 2022/2023 folders: import as the benchmark ships them, export, round trip, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from twin.data.recording import open_recording
from twin.data.sensorium import import_sensorium, read_sensorium_folder, write_sensorium_folder
from twin.errors import InputError

from .conftest import tiny_recording
from .sensorium_fixture import make_2022, make_2023


def test_2023_tiers_map_onto_train_validation_test_and_oracle_repeats_are_numbered(tmp_path):
    ds = read_sensorium_folder(make_2023(tmp_path))
    tier = ds.tier.values.tolist()
    assert tier[6:] == ["test"] * 6
    assert tier[:6].count("validation") == 1 and tier[:6].count("train") == 5  # 10% of 6 clips -> 1
    clip = ds.clip_id.values
    assert clip[6] == clip[8] and clip[7] == clip[9] and clip[6] != clip[7]   # identical frames, same clip
    assert ds.repeat.values[6:10].tolist() == [0, 0, 1, 1]
    assert set(ds.stimulus_type.values) == {"natural_movie"}
    assert ds.attrs["frame_rate"] == 30.0 and ds.attrs["recording_id"] == "29156-11-10"


def test_2023_values_are_transposed_into_the_recording_layout(tmp_path):
    src = make_2023(tmp_path)
    ds = read_sensorium_folder(src)
    vid = np.load(src / "data" / "videos" / "3.npy")
    resp = np.load(src / "data" / "responses" / "3.npy")
    beh = np.load(src / "data" / "behavior" / "3.npy")
    pc = np.load(src / "data" / "pupil_center" / "3.npy")
    np.testing.assert_array_equal(ds.stimulus.values[3], np.moveaxis(vid, 2, 0))
    np.testing.assert_array_equal(ds.response.values[3], resp.T)
    np.testing.assert_array_equal(ds.pupil.values[3], beh[0])
    np.testing.assert_array_equal(ds.running.values[3], beh[1])
    np.testing.assert_array_equal(ds.eye_position.values[3], pc.T)
    xyz = np.load(src / "meta" / "neurons" / "cell_motor_coordinates.npy")
    np.testing.assert_array_equal(ds.cortical_y.values, xyz[:, 1])


def test_unequal_trial_lengths_are_padded_and_recorded_in_n_frames(tmp_path):
    lengths = [8, 5, 8, 8, 6, 8, 8, 8, 8, 8, 3, 8]
    src = make_2023(tmp_path, lengths=lengths)
    ds = read_sensorium_folder(src)
    assert ds.sizes["time"] == 8 and ds.n_frames.values.tolist() == lengths
    np.testing.assert_array_equal(ds.response.values[1, :5], np.load(src / "data/responses/1.npy").T)
    assert (ds.response.values[1, 5:] == 0).all() and (ds.stimulus.values[1, 5:] == 127.5).all()


def test_validation_hold_out_is_deterministic_per_seed_and_keeps_clips_together(tmp_path):
    src = make_2023(tmp_path)
    a = read_sensorium_folder(src, seed=3, validation_fraction=0.5).tier.values.tolist()
    b = read_sensorium_folder(src, seed=3, validation_fraction=0.5).tier.values.tolist()
    assert a == b and a[:6].count("validation") == 3
    seeds = {tuple(read_sensorium_folder(src, seed=s, validation_fraction=0.5).tier.values[:6]) for s in range(6)}
    assert len(seeds) > 1


def test_2022_static_images_become_one_frame_trials(tmp_path):
    src = make_2022(tmp_path)
    ds = read_sensorium_folder(src)
    assert ds.sizes["time"] == 1 and ds.stimulus.dtype == np.uint8 and ds.stimulus.shape[2:] == (3, 5)
    assert ds.tier.values.tolist() == ["train"] * 4 + ["validation"] + ["test"] * 3
    assert ds.running.values[:, 0].tolist() == [7.0 + i for i in range(8)]   # behaviour[2] is running
    assert ds.pupil.values[:, 0].tolist() == [3.0] * 8
    assert ds.clip_id.values[6] == ds.clip_id.values[7] and ds.repeat.values[7] == 1
    assert set(ds.stimulus_type.values) == {"natural_image"}
    np.testing.assert_array_equal(ds.response.values[2, 0], np.load(src / "data/responses/2.npy"))


def test_export_then_import_round_trips_every_valid_value_and_coordinate(tmp_path):
    orig = tiny_recording(n_frames=[5, 4, 5, 3, 5, 5], uint8=True)
    orig = orig.assign_coords(stimulus_type=("trial", np.array(["natural_movie"] * 5 + ["gabor"], object)))
    folder = write_sensorium_folder(orig, tmp_path / "sens" / "m1-2-3")
    assert np.load(folder / "meta" / "trials" / "tiers.npy").tolist() == \
        ["train", "train", "validation", "oracle", "oracle", "final_test_bonus"]
    assert np.load(folder / "data" / "videos" / "3.npy").shape == (3, 4, 3)     # (H, W, n_frames)
    back = read_sensorium_folder(folder)
    for name in ("tier", "stimulus_type", "clip_id", "n_frames", "unit_id", "area", "layer", "session",
                 "scan_idx", "pt_root_id", "cortical_x", "cortical_y", "cortical_z"):
        assert np.asarray(back[name].values).tolist() == np.asarray(orig[name].values).tolist(), name
    for i, n in enumerate(orig.n_frames.values):
        for var in ("stimulus", "response", "running", "pupil", "eye_position"):
            np.testing.assert_array_equal(back[var].values[i, :n], orig[var].values[i, :n])
    for key in ("recording_id", "frame_rate", "pixel_size_deg"):
        assert back.attrs[key] == orig.attrs[key]
    assert back.stimulus.dtype == np.uint8


def test_import_writes_an_openable_recording(tmp_path):
    out = import_sensorium(make_2023(tmp_path), tmp_path / "r.h5", frame_rate=15.0)
    with open_recording(out) as ds:
        assert ds.sizes["trial"] == 12 and ds.attrs["frame_rate"] == 15.0


def _break(kind, src):
    d = src / "data"
    if kind == "missing responses file":
        (d / "responses" / "4.npy").unlink()
    elif kind == "missing behavior file":
        (d / "behavior" / "2.npy").unlink()
    elif kind == "wrong response shape":
        np.save(d / "responses" / "1.npy", np.zeros((5, 7), np.float32))
    elif kind == "wrong video rank":
        np.save(d / "videos" / "0.npy", np.zeros((4, 6), np.float32))
    elif kind == "string responses":
        np.save(d / "responses" / "1.npy", np.full((5, 8), "a"))
    elif kind == "NaN responses":
        r = np.load(d / "responses" / "2.npy")
        r[1, 3] = np.nan
        np.save(d / "responses" / "2.npy", r)
    elif kind == "neuron count differs across trials":
        np.save(d / "responses" / "3.npy", np.zeros((4, 8), np.float32))
    elif kind == "unit ids mismatched with meta":
        np.save(src / "meta" / "neurons" / "area.npy", np.array(["V1"] * 4))
    elif kind == "unit ids fewer than neurons":
        np.save(src / "meta" / "neurons" / "unit_ids.npy", np.arange(3))
    elif kind == "duplicate unit ids":
        np.save(src / "meta" / "neurons" / "unit_ids.npy", np.zeros(5, int))
    elif kind == "no train tier":
        np.save(src / "meta" / "trials" / "tiers.npy", np.array(["oracle"] * 12))
    elif kind == "unknown tier":
        np.save(src / "meta" / "trials" / "tiers.npy", np.array(["train"] * 11 + ["bogus"]))
    elif kind == "empty tiers":
        np.save(src / "meta" / "trials" / "tiers.npy", np.array([], dtype=str))
    elif kind == "tiers too short":
        np.save(src / "meta" / "trials" / "tiers.npy", np.array(["train"] * 5))
    elif kind == "two scans in one folder":
        np.save(src / "meta" / "neurons" / "scan_idx.npy", np.array([1, 1, 2, 2, 2]))
    elif kind == "corrupt npy":
        (d / "videos" / "5.npy").write_bytes(b"not numpy")
    elif kind == "no videos or images":
        import shutil
        shutil.rmtree(d / "videos")


BAD = ["missing responses file", "missing behavior file", "wrong response shape", "wrong video rank",
       "string responses", "NaN responses", "neuron count differs across trials",
       "unit ids mismatched with meta", "unit ids fewer than neurons", "duplicate unit ids", "no train tier",
       "unknown tier", "empty tiers", "tiers too short", "two scans in one folder", "corrupt npy",
       "no videos or images"]


@pytest.mark.parametrize("kind", BAD)
def test_each_bad_sensorium_folder_is_an_input_error_and_writes_nothing(tmp_path, kind):
    src = make_2023(tmp_path / "in")
    _break(kind, src)
    out = tmp_path / "out" / "r.h5"
    with pytest.raises(InputError):
        import_sensorium(src, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        read_sensorium_folder(tmp_path / "absent")


def test_streamed_import_equals_the_in_memory_reading(tmp_path):
    src = make_2023(tmp_path, lengths=[8, 5, 8, 8, 6, 8, 8, 8, 8, 8, 3, 8])
    mem = read_sensorium_folder(src, seed=2)
    with open_recording(import_sensorium(src, tmp_path / "r.h5", seed=2)) as ds:
        for name in ("stimulus", "response", "running", "pupil", "eye_position"):
            np.testing.assert_array_equal(ds[name].values, mem[name].values)
            assert ds[name].dtype == mem[name].dtype
        for name in mem.coords:
            assert np.asarray(ds[name].values).astype(str).tolist() == np.asarray(mem[name].values).astype(str).tolist()
        assert ds.attrs["recording_id"] == mem.attrs["recording_id"]


def test_behaviour_dropouts_are_interpolated_within_the_trial_and_counted(tmp_path):
    src = make_2023(tmp_path)
    b = np.load(src / "data" / "behavior" / "2.npy")
    b[0, 3] = np.nan          # a blink: pupil sample 3 lost
    b[1, 0] = np.inf          # running at the first frame lost
    np.save(src / "data" / "behavior" / "2.npy", b)
    pc = np.load(src / "data" / "pupil_center" / "2.npy")
    pc[:, -2:] = np.nan
    np.save(src / "data" / "pupil_center" / "2.npy", pc)
    with open_recording(import_sensorium(src, tmp_path / "r.h5")) as ds:
        assert ds.pupil.values[2, 3] == pytest.approx((b[0, 2] + b[0, 4]) / 2)
        assert ds.running.values[2, 0] == pytest.approx(b[1, 1])
        np.testing.assert_allclose(ds.eye_position.values[2, -2:], np.repeat(pc[:, -3][None], 2, 0), rtol=1e-6)
        assert '"behaviour_nan_filled": 6' in ds.attrs["provenance"]


def test_fill_gaps_interpolates_holds_ends_and_zeroes_all_missing():
    from twin.data.sensorium import fill_gaps

    np.testing.assert_allclose(fill_gaps(np.array([np.nan, 1.0, np.nan, 3.0, np.inf])), [1, 1, 2, 3, 3])
    np.testing.assert_array_equal(fill_gaps(np.array([np.nan, np.nan])), [0, 0])

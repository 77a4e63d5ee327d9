"""twin.similarity: hand-computed pair similarities, root-id lookup, chunking, file round trip."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from twin.errors import InputError
from twin.similarity import (
    available_kinds, index_by_root_id, load_profiles, pair_similarity, save_profiles, signal_correlation_matrix)


@pytest.fixture
def profiles():
    return xr.Dataset(
        {"signal_response": (("unit", "sample"), np.array([[1.0, 2, 3], [2, 4, 6], [3, 2, 1], [1, 1, 2]])),
         "readout_feature": (("unit", "channel"), np.array([[1.0, 0], [1, 1], [0, 2], [-1, 0]])),
         "rf_center": (("unit", "axis"), np.array([[0.0, 0], [3, 4], [1, 1], [0, 0]])),
         "pref_ori": ("unit", np.array([10.0, 170, 100, 55])),
         "mei": (("unit", "y", "x"), np.array([[[1.0, 2], [3, 4]], [[4, 3], [2, 1]], [[2, 4], [6, 8]],
                                                [[0, 1], [0, 1]]])),
         "vei": (("unit", "k", "y", "x"), np.stack([np.stack([np.arange(4.0).reshape(2, 2)] * 2)] * 4))},
        coords={"pt_root_id": ("unit", np.array([0, 11, 22, 11])), "unit_id": ("unit", np.arange(4)),
                "recording_id": ("unit", np.array(["a"] * 4, object))})


def test_pair_similarities_equal_hand_computed_values(profiles):
    i, j = np.array([0, 0, 1, 0]), np.array([1, 2, 2, 3])
    s = pair_similarity(profiles, i, j)
    np.testing.assert_allclose(s["signal_correlation"][:3], [1.0, -1.0, -1.0])
    np.testing.assert_allclose(s["signal_correlation"][3], np.corrcoef([1, 2, 3], [1, 1, 2])[0, 1])
    np.testing.assert_allclose(s["feature_cosine"], [1 / np.sqrt(2), 0.0, 1 / np.sqrt(2), -1.0])
    np.testing.assert_allclose(s["rf_distance"], [5.0, np.sqrt(2), np.sqrt(13), 0.0])
    np.testing.assert_allclose(s["ori_difference"], [20.0, 90.0, 70.0, 45.0])
    np.testing.assert_allclose(s["mei_similarity"][:3], [-1.0, 1.0, -1.0])
    np.testing.assert_allclose(s["vei_similarity"], 1.0)
    assert available_kinds(profiles) == list(s)


def test_chunked_computation_equals_unchunked(profiles):
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, 4, 101), rng.integers(0, 4, 101)
    full = pair_similarity(profiles, i, j, chunk=10**6)
    for chunk in (1, 7, 64):
        part = pair_similarity(profiles, i, j, chunk=chunk)
        for k in full:
            np.testing.assert_allclose(part[k], full[k], rtol=1e-12)


def test_signal_correlation_matrix_matches_numpy(profiles):
    x = profiles.signal_response.values
    np.testing.assert_allclose(signal_correlation_matrix(x), np.corrcoef(x), atol=1e-12)


def test_root_id_lookup_returns_first_unit_and_minus_one_for_unknown_or_zero(profiles):
    assert index_by_root_id(profiles, np.array([22, 11, 99, 0])).tolist() == [2, 1, -1, -1]


def test_unknown_or_unavailable_kinds_are_input_errors(profiles):
    with pytest.raises(InputError):
        pair_similarity(profiles, [0], [1], kinds=["telepathy"])
    with pytest.raises(InputError, match="mei"):
        pair_similarity(profiles.drop_vars("mei"), [0], [1], kinds=["mei_similarity"])
    with pytest.raises(ValueError):
        pair_similarity(profiles, [0, 1], [1])


def test_profiles_round_trip_through_a_file(profiles, tmp_path):
    path = save_profiles(profiles, tmp_path / "p.h5")
    back = load_profiles(path)
    xr.testing.assert_equal(back.drop_vars("recording_id"), profiles.drop_vars("recording_id"))
    assert back.recording_id.values.tolist() == ["a"] * 4
    with pytest.raises(InputError):
        load_profiles(tmp_path / "absent.h5")

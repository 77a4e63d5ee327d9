"""Receptive fields, MEIs, VEIs and bipartite invariance on planted Gabor neurons."""

from __future__ import annotations

import numpy as np
import pytest

from twin.insilico.config import BipartiteConfig, MEIConfig, RFConfig, VEIConfig


@pytest.fixture(scope="module")
def rf_result(fake, fake_units):
    from twin.insilico.rf import run_rf

    return run_rf(fake, fake_units, RFConfig(n_clips=4, n_frames=40, grad_samples=2), seed=0)


def test_gradient_rf_centre_recovered_within_two_degrees(fake, rf_result):
    c = rf_result["rf_center"].values
    d = np.hypot(c[:, 0] - fake.rf_x, c[:, 1] - fake.rf_y)
    assert d.max() < 2.0


def test_rf_size_close_to_planted_envelope(fake, rf_result):
    ratio = rf_result["rf_sigma"].values / fake.sigma
    assert np.all((ratio > 0.6) & (ratio < 1.5))


def test_dot_rf_centre_recovered_for_static_cells(fake, rf_result):
    static = fake.kind != 2
    c = rf_result["rf_center_dots"].values[static]
    d = np.hypot(c[:, 0] - fake.rf_x[static], c[:, 1] - fake.rf_y[static])
    assert np.median(d) < fake.sigma[static].min()


def test_readout_positions_compared_in_the_stimulus_convention(rf_result):
    assert np.nanmax(rf_result["readout_distance"].values) < 2.0


def test_mei_beats_random_inputs_of_the_same_norm(fake, mei_result):
    static = fake.kind != 2
    assert np.all(mei_result["mei_response"].values[static] > 3 * mei_result["random_response"].values[static])
    assert np.all(mei_result["mei_effective"].values == static)
    norms = mei_result["mei_norm"].values
    assert np.allclose(norms, norms[0], rtol=0.05)


def test_mei_correlates_with_planted_filter(fake, mei_result):
    def z(a):
        return (a - a.mean()) / a.std()

    simple = np.flatnonzero(fake.kind == 0)
    r = [np.mean(z(mei_result["mei"].values[i]) * z(fake.filters[0, i])) for i in simple]
    assert min(r) > 0.5 and np.median(r) > 0.7
    cplx = np.flatnonzero(fake.kind == 1)   # any phase: the energy in the quadrature plane
    e = [np.hypot(np.mean(z(mei_result["mei"].values[i]) * z(fake.filters[0, i])),
                  np.mean(z(mei_result["mei"].values[i]) * z(fake.filters[1, i]))) for i in cplx]
    assert min(e) > 0.5 and np.median(e) > 0.7


def test_meis_are_deterministic_given_the_seed(fake, fake_units, mei_result):
    from twin.insilico.mei import run_mei

    again = run_mei(fake, fake_units, MEIConfig(n_steps=80, n_frames=6, n_random=4), seed=0)
    np.testing.assert_array_equal(again["mei"].values, mei_result["mei"].values)


def test_veis_reach_the_fraction_and_complex_cells_are_more_diverse(fake, fake_units, mei_result):
    from twin.insilico.mei import run_vei

    cfg = VEIConfig(k=3, n_steps=80, fraction=0.85)
    v = run_vei(fake, fake_units, mei_result, MEIConfig(n_frames=6), cfg, seed=0)
    static = fake.kind != 2
    assert np.all(v["vei_fraction"].values[static] >= 0.85)
    div = v["vei_diversity"].values
    assert np.median(div[fake.kind == 1]) > np.median(div[fake.kind == 0])
    assert np.all(div[static] > 0.1)
    assert np.all(np.isnan(div[~static]))


def test_bipartite_curve_starts_at_one_and_index_is_an_area(fake, fake_units, mei_result):
    from twin.insilico.invariance import run_bipartite

    b = run_bipartite(fake, fake_units, mei_result, MEIConfig(n_frames=6), BipartiteConfig(n_sizes=4, n_textures=2),
                      seed=0)
    static = fake.kind != 2
    assert np.allclose(b["bipartite_curve"].values[static, 0], 1.0)
    idx = b["bipartite_index"].values[static]
    assert np.all((idx > 0) & (idx <= 1))
    # a simple cell's phase-selective RF is not texture-tolerant: its curve falls
    assert np.all(b["bipartite_curve"].values[fake.kind == 0, -1] < 0.6)

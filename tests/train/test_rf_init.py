"""Data-driven initial readout positions (twin.train.rf_init)."""

from __future__ import annotations

import dataclasses

import numpy as np

from twin.train.rf_init import energy_features, energy_rf_positions, ridge_corr_maps


def test_ridge_corr_maps_equal_the_correlation_of_a_least_squares_fit_per_cell():
    rng = np.random.default_rng(0)
    m, p, c, n = 300, 5, 3, 4
    x = rng.standard_normal((m, p, c))
    y = x[:, 2] @ rng.standard_normal((c, n)) + 0.5 * rng.standard_normal((m, n))
    got = ridge_corr_maps(x, y, ridge=1e-9)
    for cell in range(p):
        a = np.c_[x[:, cell], np.ones(m)]
        pred = a @ np.linalg.lstsq(a, y, rcond=None)[0]
        want = [np.corrcoef(pred[:, j], y[:, j])[0, 1] for j in range(n)]
        np.testing.assert_allclose(got[cell], want, atol=1e-6)
    assert (got.argmax(0) == 2).all()       # the cell that drives every neuron wins


def test_energy_features_are_oriented():
    # a vertical grating (bars vary along x) drives the 0-degree channels more than the 90-degree ones
    x = np.arange(32)
    frame = 127.5 + 100 * np.cos(2 * np.pi * 0.03 * 4.0 * x)[None, :].repeat(16, 0)
    e = energy_features(frame[None, None], pixel_size_deg=4.0, pool=1)[0, 0, 8, 16]
    assert e[0] > 5 * e[4] and e[8] > 5 * e[12]


def test_energy_positions_find_neurons_driven_by_local_oriented_contrast():
    rng = np.random.default_rng(1)
    b, t, h, w = 40, 30, 24, 40
    stim = rng.uniform(0, 255, (b, t, h, w)).astype(np.float32)
    e = energy_features(stim, pixel_size_deg=2.0, pool=2)              # (b, t, 12, 20, 16)
    cells = [(2, 3), (9, 15), (6, 10)]                                  # (row, col) of the pooled grid
    drive = np.stack([e[:, :, r, c, k] for (r, c), k in zip(cells, (0, 5, 11))], -1)
    resp = np.zeros_like(drive)
    resp[:, 1:] = drive[:, :-1]                                         # respond one frame later
    resp = rng.poisson(2 * resp / resp.mean()).astype(np.float32)
    pos = energy_rf_positions(stim, resp, np.full(b, t), (h, w), 2.0, burn_in=3)
    # cell centres of the pooled grid in the grid units of the full image
    want = np.array([[(c * 2 + 0.5) / (w - 1) * 2 - 1, (r * 2 + 0.5) / (h - 1) * 2 - 1] for r, c in cells])
    np.testing.assert_allclose(pos, want, atol=0.15)


def test_position_init_energy_puts_the_readouts_where_the_data_say(tmp_path, rec_dir):
    from tests.train.conftest import tiny_config
    from twin.model.response import load_model
    from twin.train.data import load_scan
    from twin.train.loop import train

    cfg = tiny_config(rec_dir, steps=1, lr=1e-9, warmup_steps=0)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, readout=dataclasses.replace(cfg.model.readout, position_init="energy")))
    m = load_model(train(cfg, tmp_path / "run", progress=False))
    for rid in m.recording_ids():
        meta, tiers = load_scan(rec_dir / f"{rid}.h5")
        d = tiers["train"]
        xy = meta.units[["cortical_x", "cortical_y"]].to_numpy(float)   # pooled over cortical neighbours
        want = energy_rf_positions(d.stimulus, d.response, d.n_frames, meta.image_shape, meta.pixel_size_deg,
                                   cfg.train.burn_in, cortical_xy=xy, pool_um=100.0)
        np.testing.assert_allclose(m.readout_positions(rid, units="grid"), want, atol=1e-4)


def test_pooling_over_cortical_neighbours_recovers_a_shared_peak_from_noisy_maps():
    from twin.train.rf_init import pool_over_cortex

    rng = np.random.default_rng(2)
    n, p = 60, 40
    xy = np.c_[rng.uniform(0, 2000, n), rng.uniform(0, 300, n)]     # two groups along x
    peak = np.where(xy[:, 0] < 1000, 7, 31)                          # neighbours share a peak cell
    maps = 0.4 * rng.standard_normal((p, n))
    maps[peak, np.arange(n)] += 1.0
    raw_hits = (maps.argmax(0) == peak).mean()
    pooled = pool_over_cortex(maps, xy, pool_um=150.0)
    assert pooled.shape == (p, n)
    assert raw_hits < 0.8 and (pooled.argmax(0) == peak).mean() > 0.95
    # far-apart neurons do not pool: each keeps its own map's peak
    alone = pool_over_cortex(maps, xy * 1e4, pool_um=1.0)
    assert (alone.argmax(0) == maps.argmax(0)).all()


def test_pooling_over_cortex_equals_the_dense_gaussian_sum_and_pools_coincident_neurons():
    from twin.train.rf_init import pool_over_cortex

    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 400, (30, 2))
    xy[5] = xy[4]                                                    # one cell imaged twice
    maps = rng.standard_normal((12, 30))
    z = (maps - maps.mean(0)) / maps.std(0)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    dense = z @ np.where(d <= 300.0, np.exp(-0.5 * (d / 100.0) ** 2), 0.0)
    got = pool_over_cortex(maps, xy, pool_um=100.0)
    np.testing.assert_allclose(got, dense, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got[:, 4], got[:, 5], rtol=1e-9)      # same place, same pooled map

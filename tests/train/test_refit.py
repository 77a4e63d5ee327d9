"""Readout refit (twin.train.refit): the design reproduces the readout, and the cross-validated
ridge chooses more shrinkage for noisier neurons and recovers planted weights better."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twin.model.config import CoreConfig, ModelConfig, ModulatorConfig, ReadoutConfig, ShifterConfig
from twin.model.twin_model import ScanSpec, TwinModel
from twin.train.data import ScanData
from twin.train.refit import RefitConfig, refit_readouts, refit_scan

CORE = CoreConfig(channels=3, layers=1, kernel=(3,), temporal_kernel=2, gru_channels=3)
RID = "a-1-1"


def _model(n_units=6, **readout):
    cfg = ModelConfig(core=CORE, readout=ReadoutConfig(**readout), shifter=ShifterConfig(),
                      modulator=ModulatorConfig(hidden=3))
    m = TwinModel(cfg, [ScanSpec(RID, n_units, mean_response=(0.5,) * n_units)], seed=0)
    r = m.readouts[RID]
    rng = np.random.default_rng(1)
    # as after training: non-zero extra components, shifter and modulator away from identity
    if r.extra is not None:
        r.extra.features[...] = jnp.asarray(rng.normal(size=r.extra.features.shape), jnp.float32)
    if r.surround_features is not None:
        r.surround_features[...] = jnp.asarray(rng.normal(size=r.surround_features.shape), jnp.float32)
    for mlp in (r.shifter, r.modulator):
        last = mlp.layers[-1]
        last.kernel[...] = jnp.asarray(rng.normal(size=last.kernel.shape) * 0.3, jnp.float32)
    return m


@pytest.mark.parametrize("readout", [dict(), dict(pooling=3), dict(components=2),
                                     dict(components=2, pooling=2), dict(mask=3, components=2),
                                     dict(surround=2.5), dict(components=2, pooling=2, surround=2.0)])
def test_design_times_weights_plus_bias_is_the_readout(readout):
    m = _model(**readout)
    r = m.readouts[RID]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, 255, (2, 5, 8, 9)), jnp.float32)
    beh = {"running": jnp.asarray(rng.uniform(0, 20, (2, 5)), jnp.float32),
           "pupil": jnp.asarray(rng.uniform(10, 30, (2, 5)), jnp.float32),
           "eye_position": jnp.asarray(rng.normal(size=(2, 5, 2)), jnp.float32)}
    f = m.features(x)
    out, gain = r(f, beh)
    d, g2 = r.design(f, beh)
    assert d.shape == (2, 5, 6) + r.feature_weights().shape[1:]
    rebuilt = jnp.einsum("btngc,ngc->btn", d, r.feature_weights()) + r.bias[...]
    np.testing.assert_allclose(rebuilt, out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g2, gain, rtol=1e-6)
    assert float(jnp.abs(gain - 1).max()) > 1e-3      # the modulator really acts


def _planted_scan(n_units=8, n_trials=40, seed=0):
    """A scan whose responses follow the readout GLM of a random twin with planted feature weights;
    units 0-3 have a strong signal, units 4-7 almost none (their planted weights are tiny)."""
    m = _model(n_units=n_units)
    r = m.readouts[RID]
    rng = np.random.default_rng(seed)
    t, h, w = 12, 8, 9
    stim = rng.uniform(0, 255, (n_trials, t, h, w)).astype(np.float32)
    beh = {"running": rng.uniform(0, 20, (n_trials, t)).astype(np.float32),
           "pupil": rng.uniform(10, 30, (n_trials, t)).astype(np.float32),
           "eye_position": rng.normal(size=(n_trials, t, 2)).astype(np.float32)}
    d, gain = jax.jit(lambda s, b: r.design(m.features(s), b))(stim, beh)
    d = np.asarray(d)[..., 0, :]                                              # (trial, t, N, C)
    sd = d.reshape(-1, n_units, d.shape[-1]).std(0)                           # (N, C)
    planted = rng.normal(size=(n_units, d.shape[-1])) / (sd * np.sqrt(d.shape[-1]))
    planted[n_units // 2:] *= 0.02
    z = np.einsum("btnc,nc->btn", d, planted) - 0.5
    rate = (np.where(z > 0, z, np.expm1(np.minimum(z, 0))) + 1) * np.asarray(gain)
    y = rng.poisson(rate).astype(np.float32)
    data = ScanData(RID, stim, y, beh["running"], beh["pupil"], beh["eye_position"], np.full(n_trials, t))
    return m, data, planted


def test_refit_shrinks_noisy_units_more_and_moves_towards_the_planted_weights():
    m, data, planted = _planted_scan()
    r = m.readouts[RID]
    n = planted.shape[0]
    start = np.asarray(r.features[...]).copy()
    cfg = RefitConfig(enabled=True, folds=4, penalties=[0.0, 0.1, 1.0, 10.0, 100.0], cv_iterations=3, iterations=10)
    got = refit_scan(m, RID, data, burn_in=2, cfg=cfg)
    w = np.asarray(r.features[...])
    assert not np.allclose(w, start)

    def cos(a, b):
        return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    strong = slice(0, n // 2)
    # the signal units' refitted weights point where the planted ones do; the random start does not
    assert cos(w, planted)[strong].mean() > 0.8 > cos(start, planted)[strong].mean()
    # units without signal get more shrinkage (a larger penalty) than those with it
    assert np.median(got["penalty"][n // 2:]) > np.median(got["penalty"][strong])
    # the chosen penalty has the smallest held-out loss by construction; the final fit lowers the
    # training loss from the random start
    lams = np.sort(np.asarray(cfg.penalties, np.float32))
    pick = np.searchsorted(lams, got["penalty"])
    np.testing.assert_allclose(got["cv_loss"][np.arange(n), pick], got["cv_loss"].min(1))
    assert (got["train_loss_after"] < got["train_loss_before"]).all()


def test_refit_is_deterministic_and_blocks_of_neurons_give_the_same_answer(tmp_path, monkeypatch):
    m1, data, _ = _planted_scan(n_trials=16)
    m2, _, _ = _planted_scan(n_trials=16)
    cfg = RefitConfig(enabled=True, folds=2, penalties=[0.1, 1.0], cv_iterations=2, iterations=3, chunk_trials=4)
    per_unit_mb = 16 * 10 * (3 + 1) * 4 / 2 ** 20
    t1 = refit_readouts(m1, {RID: data}, 2, cfg, progress=False)
    # three blocks of neurons: one core pass over the trials serves them all (4 chunks of 4
    # trials, not 3 x 4), the blocks wait in the scratch folder, which is cleaned up afterwards
    chunks, behaviour = [], data.behaviour
    data.behaviour = lambda idx, *a, **k: (chunks.append(idx), behaviour(idx, *a, **k))[1]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    mapped, open_memmap = [], np.lib.format.open_memmap
    monkeypatch.setattr(np.lib.format, "open_memmap",
                        lambda f, *a, **k: (mapped.append((str(f), k["shape"])), open_memmap(f, *a, **k))[1])
    t2 = refit_readouts(m2, {RID: data}, 2, RefitConfig(**{**cfg.__dict__, "max_block_mb": 3 * per_unit_mb,
                                                           "scratch_dir": str(scratch)}), progress=False)
    assert len(chunks) == 4
    # the blocks' designs (3, 3 and 2 neurons x 16 trials x 10 frames x 4 columns) and gains went
    # to the scratch folder
    designs = sorted(shape for f, shape in mapped if len(shape) == 3)
    assert designs == [(2, 160, 4), (3, 160, 4), (3, 160, 4)] and len(mapped) == 6
    assert all(f.startswith(str(scratch)) for f, _ in mapped)
    assert list(scratch.iterdir()) == []
    np.testing.assert_allclose(t1.penalty, t2.penalty)
    np.testing.assert_allclose(np.asarray(m1.readouts[RID].features[...]), np.asarray(m2.readouts[RID].features[...]),
                               rtol=1e-4, atol=1e-5)
    assert list(t1.columns[:3]) == ["recording_id", "unit_index", "penalty"]


def test_refit_config_problems_are_named():
    assert RefitConfig().problem() is None
    assert RefitConfig(folds=1).problem()[0] == "folds"
    assert RefitConfig(penalties=[-1.0]).problem()[0] == "penalties"
    assert RefitConfig(relax_in_cv=True).problem()[0] == "relax_in_cv"
    assert RefitConfig(relax_in_cv=True, relax_scale=True).problem() is None
    assert RefitConfig(enabled=True, scratch_dir="/no/such/folder").problem()[0] == "scratch_dir"
    assert RefitConfig(enabled=True, scratch_dir="/").problem() is None
    assert RefitConfig(variance_floor=-0.5).problem()[0] == "variance_floor"
    assert RefitConfig(variance_floor=float("nan")).problem()[0] == "variance_floor"
    assert RefitConfig(variance_floor=2.0).problem() is None


def test_training_with_refit_changes_only_the_readout_weights_and_records_it(rec_dir, tmp_path):
    import json
    from dataclasses import replace

    import pandas as pd
    from flax import nnx

    from tests.train.conftest import tiny_config
    from twin.errors import InputError
    from twin.model.load import load_twin_module
    from twin.train import train

    cfg = tiny_config(rec_dir)
    plain = train(cfg, tmp_path / "plain", progress=False)
    refit_cfg = replace(cfg, refit=RefitConfig(enabled=True, folds=2, penalties=[0.1, 1.0], cv_iterations=2,
                                               iterations=3, relax_scale=True))
    run = train(refit_cfg, tmp_path / "refit", progress=False)
    info = json.loads((run / "model.json").read_text())["refit"]
    assert set(info) >= {"val_corr_before", "val_corr_after", "penalty_counts", "seconds"}
    assert sum(info["penalty_counts"].values()) == 10
    assert set(info["scale_quantiles"]) == {"0.1", "0.5", "0.9"}
    assert np.isclose(info["val_corr_before"], json.loads((plain / "model.json").read_text())["best_val_corr"])
    table = pd.read_parquet(run / "refit.parquet")
    assert len(table) == 10 and set(table.recording_id) == {"7-1-1", "7-1-2"}
    assert np.isclose(table.scale.median(), info["scale_quantiles"]["0.5"], atol=1e-4)
    np.testing.assert_array_equal(table.unit_id, np.tile(np.arange(5), 2))
    a, _ = load_twin_module(plain)
    b, _ = load_twin_module(run)
    same = jax.tree_util.tree_map(lambda u, v: bool(np.array_equal(u, v)), nnx.to_pure_dict(nnx.state(a)),
                                  nnx.to_pure_dict(nnx.state(b)))
    assert all(jax.tree_util.tree_leaves(same["core"]))
    for rid in ("7-1-1", "7-1-2"):
        r = same["readouts"][rid]
        assert not r["features"] and not r["bias"]                     # refitted
        assert r["mu"] and r["chol"] and all(jax.tree_util.tree_leaves(r["modulator"]))   # kept
    with pytest.raises(InputError, match="refit.folds"):
        train(replace(cfg, refit=RefitConfig(enabled=True, folds=1)), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_relax_scale_keeps_each_direction_and_undoes_the_ridge_shrinkage():
    """``relax_scale``: each neuron's ridge direction kept, its scale and bias refitted without the
    penalty: the training loss falls, and shrunk signal units get back towards the planted size."""
    cfg = RefitConfig(enabled=True, folds=4, penalties=[1.0, 10.0, 100.0], cv_iterations=3, iterations=10)
    m1, data, planted = _planted_scan()
    m2, _, _ = _planted_scan()
    ridge = refit_scan(m1, RID, data, burn_in=2, cfg=cfg)
    relaxed = refit_scan(m2, RID, data, burn_in=2, cfg=RefitConfig(**{**cfg.__dict__, "relax_scale": True}))
    w1, w2 = np.asarray(m1.readouts[RID].features[...]), np.asarray(m2.readouts[RID].features[...])
    np.testing.assert_array_equal(ridge["penalty"], relaxed["penalty"])
    np.testing.assert_allclose(ridge["scale"], 1.0)
    np.testing.assert_allclose(w2, w1 * relaxed["scale"][:, None], rtol=1e-4, atol=1e-6)   # same directions
    assert (relaxed["train_loss_after"] <= ridge["train_loss_after"] + 1e-7).all()
    strong = slice(0, planted.shape[0] // 2)
    size = np.linalg.norm(w1, axis=1) / np.linalg.norm(planted, axis=1)
    size_relaxed = np.linalg.norm(w2, axis=1) / np.linalg.norm(planted, axis=1)
    assert (size[strong] < 0.9).all() and (relaxed["scale"][strong] > 1.0).all()
    assert (np.abs(np.log(size_relaxed[strong])) < np.abs(np.log(size[strong]))).all()


def test_relax_in_cv_scores_each_penalty_by_its_relaxed_fit():
    """``relax_in_cv``: the held-out loss of each penalty is that of its relaxed fit, so it can only
    differ from the plain cross-validation's, and the chosen penalty is still its minimum."""
    cfg = RefitConfig(enabled=True, folds=4, penalties=[0.1, 1.0, 10.0, 100.0], cv_iterations=3, iterations=10,
                      relax_scale=True)
    m1, data, _ = _planted_scan()
    m2, _, _ = _planted_scan()
    plain = refit_scan(m1, RID, data, burn_in=2, cfg=cfg)
    cv = refit_scan(m2, RID, data, burn_in=2, cfg=RefitConfig(**{**cfg.__dict__, "relax_in_cv": True}))
    n = len(cv["penalty"])
    assert not np.allclose(cv["cv_loss"], plain["cv_loss"])
    pick = np.searchsorted(np.asarray(cfg.penalties, np.float32), cv["penalty"])
    np.testing.assert_allclose(cv["cv_loss"][np.arange(n), pick], cv["cv_loss"].min(1))
    # for the units with signal, relaxing the strongest penalty's fit recovers much of what that
    # penalty cost in held-out loss (in the plain cross-validation it is the worst by far)
    strong = slice(0, n // 2)
    gap = cv["cv_loss"][strong, -1] - cv["cv_loss"][strong].min(1)
    gap_plain = plain["cv_loss"][strong, -1] - plain["cv_loss"][strong].min(1)
    assert (gap < 0.5 * gap_plain).all()


@pytest.mark.parametrize("readout", [dict(), dict(components=2), dict(surround=2.0), dict(components=3, surround=2.0)])
def test_set_feature_weights_is_the_inverse_of_feature_weights(readout):
    r = _model(**readout).readouts[RID]
    before = {k: np.asarray(v[...]).copy() for k, v in
              (("features", r.features), ("extra", r.extra.features if r.extra is not None else None),
               ("surround", r.surround_features)) if v is not None}
    r.set_feature_weights(np.asarray(r.feature_weights()) * 2.0)
    np.testing.assert_allclose(np.asarray(r.features[...]), 2.0 * before["features"])
    if "extra" in before:
        np.testing.assert_allclose(np.asarray(r.extra.features[...]), 2.0 * before["extra"])
    if "surround" in before:
        np.testing.assert_allclose(np.asarray(r.surround_features[...]), 2.0 * before["surround"])


def test_folds_fitted_side_by_side_match_each_fold_fitted_alone():
    from twin.train.refit import _glm_functions

    objective, curvature, fit, relax, *_ = _glm_functions()
    rng = np.random.default_rng(5)
    n, f, p = 3, 60, 5
    x = rng.normal(size=(n, f, p)).astype(np.float32)
    x[..., -1] = 1.0
    y = rng.poisson(1.0, (n, f)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, (n, f)).astype(np.float32)
    fold = np.arange(f) % 3
    masks = np.stack([fold != k for k in range(3)], 1).astype(np.float32)          # (F, K)
    th0 = jnp.asarray(rng.normal(size=(n, 1, p)) * 0.1, jnp.float32)
    lam = jnp.full((n, 3), 0.3, jnp.float32)
    start = jnp.broadcast_to(th0, (n, 3, p))
    q = jnp.asarray([0.0, 0.3, 1.0], jnp.float32)          # Poisson, and two variance floors
    hess = curvature(x, y, g, q, masks, start)
    # two steps: converged fits differ by ~1e-4 where the line search's accept/reject flips on
    # rounding-level ties of a flat loss, fold by fold alike
    both = fit(x, y, g, q, masks, start, lam, 2, hess)
    held = objective(x, y, g, q, 1.0 - masks, both, lam * 0)
    for k in range(3):
        mk = masks[:, k:k + 1]
        alone = fit(x, y, g, q, mk, th0, lam[:, k:k + 1], 2, curvature(x, y, g, q, mk, th0))
        np.testing.assert_allclose(both[:, k], alone[:, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(held[:, k], objective(x, y, g, q, 1.0 - mk, alone, lam[:, :1] * 0)[:, 0], rtol=1e-6)
    assert float(jnp.abs(both[:, 0] - both[:, 1]).max()) > 1e-3      # the folds really differ
    # the linear predictors fit returns (updated step by step, not recomputed) are those of its
    # parameters, so the held-out loss read from them is the one a fresh pass gives
    th_z, z = fit(x, y, g, q, masks, start, lam, 2, hess, with_z=True)
    np.testing.assert_allclose(th_z, both, rtol=1e-6)
    np.testing.assert_allclose(z, jnp.einsum("nfp,nkp->nfk", x, both), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_glm_functions()[-1](z, y, g, q, 1.0 - masks, both, lam * 0), held, rtol=1e-5)
    scaled, a = relax(x, y, g, q, masks, both)
    assert scaled.shape == both.shape and a.shape == (n, 3)


def test_relax_stops_at_the_unpenalised_optimum_of_scale_and_bias(monkeypatch):
    """``relax`` stops once no neuron's (scale, bias) moves; what it returns is still the optimum
    of the (quasi-)Poisson loss over the two, found here by SciPy in float64, and one step alone
    would not reach it."""
    from scipy.optimize import minimize

    import twin.train.refit as refit

    rng = np.random.default_rng(11)
    n, f, p = 3, 500, 4
    x = rng.normal(size=(n, f, p)).astype(np.float32)
    x[..., -1] = 1.0
    w = rng.normal(size=(n, p - 1)) * 0.4
    y = rng.poisson(np.exp(np.einsum("nfp,np->nf", x[..., :-1], w) - 0.2)).astype(np.float32)
    g = rng.uniform(0.7, 1.3, (n, f)).astype(np.float32)
    q = jnp.asarray([0.0, 0.5, 2.0], jnp.float32)
    m = jnp.ones((f, 1), jnp.float32)
    th = jnp.asarray(np.concatenate([w * 0.3, np.zeros((n, 1))], 1)[:, None], jnp.float32)   # shrunk 3x

    def optimum(i):
        s = x[i, :, :-1].astype(float) @ np.asarray(th[i, 0, :-1], float)

        def f_of(ab):
            z = ab[0] * s + ab[1]
            rate = (np.where(z > 0, z, np.expm1(np.minimum(z, 0))) + 1.0) * g[i] + float(q[i])
            return np.mean(rate - (y[i] + float(q[i])) * np.log(rate + 1e-8))
        return minimize(f_of, [1.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-12}).x

    want = np.stack([optimum(i) for i in range(n)])
    _, _, _, relax, *_ = refit._glm_functions()
    scaled, a = relax(x, y, g, q, m, th)
    np.testing.assert_allclose(a[:, 0], want[:, 0], rtol=2e-3)
    np.testing.assert_allclose(scaled[:, 0, -1], want[:, 1], atol=2e-3)
    assert (np.asarray(a[:, 0]) > 2.0).all()                        # the shrinkage undone
    monkeypatch.setattr(refit, "RELAX_STEPS", 1)
    _, one_step = refit._glm_functions()[3](x, y, g, q, m, th)
    assert np.abs(np.asarray(one_step[:, 0]) - want[:, 0]).max() > 1e-2


def test_quasi_poisson_fit_reaches_a_stationary_point_of_its_own_loss():
    """With a variance floor q the Fisher-scoring steps (hand-written gradient and weights) must
    solve the quasi-Poisson objective itself: its autodiff gradient vanishes at the fit, and the
    fit differs from the Poisson one (q = 0) on the same data."""
    import jax

    from twin.train.refit import _glm_functions

    objective, curvature, fit, *_ = _glm_functions()
    rng = np.random.default_rng(7)
    n, f, p = 2, 400, 4
    x = rng.normal(size=(n, f, p)).astype(np.float32)
    x[..., -1] = 1.0
    rate = np.exp(0.4 * x[..., 0] - 0.3 * x[..., 1])
    y = (rng.poisson(rate) + rng.exponential(1.0, (n, f)) * (rng.uniform(size=(n, f)) < 0.3)).astype(np.float32)
    g = np.ones((n, f), np.float32)
    m = jnp.ones((f, 1), jnp.float32)
    lam = jnp.full((n, 1), 0.01, jnp.float32)
    th0 = jnp.zeros((n, 1, p), jnp.float32)
    fits = {}
    for floor in (0.0, 1.5):
        q = jnp.full((n,), floor, jnp.float32)
        th = fit(x, y, g, q, m, th0, lam, 15)
        grad = jax.grad(lambda t: objective(x, y, g, q, m, t, lam).sum())(th)
        assert float(jnp.abs(grad).max()) < 1e-4, (floor, grad)
        fits[floor] = np.asarray(th)
    assert np.abs(fits[1.5] - fits[0.0]).max() > 1e-2


def test_refit_names_the_scratch_folder_when_its_disk_is_too_small(tmp_path, monkeypatch):
    import collections
    import shutil

    from twin.errors import InputError

    m, data, _ = _planted_scan(n_trials=8)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10, 9, 1))
    per_unit_mb = 8 * 10 * (3 + 1) * 4 / 2 ** 20
    cfg = RefitConfig(enabled=True, folds=2, penalties=[0.1], cv_iterations=1, iterations=1,
                      max_block_mb=3 * per_unit_mb, scratch_dir=str(tmp_path))
    with pytest.raises(InputError, match="refit.scratch_dir"):
        refit_readouts(m, {RID: data}, 2, cfg, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_fold_curvature_from_one_pass_is_each_folds_fisher_information():
    """fold_curvature: every fold's fit information from one pass over the design (the held-out
    parts' information summed, less the fold's own) equals curvature() of the K fits at the same
    parameters, frames outside ``valid`` left out; the total is all valid frames' information.
    A final fit with that fixed total reaches the exact Fisher-scoring fit's loss."""
    from twin.train.refit import _glm_functions

    objective, curvature, fit, _, fold_curvature, _ = _glm_functions()
    rng = np.random.default_rng(11)
    n, f, p, k = 3, 90, 5, 3
    x = rng.normal(size=(n, f, p)).astype(np.float32)
    x[..., -1] = 1.0
    y = rng.poisson(1.0, (n, f)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, (n, f)).astype(np.float32)
    q = jnp.asarray([0.0, 0.3, 1.0], jnp.float32)
    valid = rng.uniform(size=f) > 0.2
    fold = (np.arange(f) // 6) % k                       # folds of 6-frame "trials"
    th = jnp.asarray(rng.normal(size=(n, p)) * 0.2, jnp.float32)
    fits, total = fold_curvature(x, y, g, q, valid, th, [np.flatnonzero(valid & (fold == i)) for i in range(k)])
    masks = jnp.asarray(np.stack([valid & (fold != i) for i in range(k)], 1), jnp.float32)
    want = curvature(x, y, g, q, masks, jnp.broadcast_to(th[:, None], (n, k, p)))
    np.testing.assert_allclose(fits, want, rtol=2e-5, atol=1e-6)
    all_m = jnp.asarray(valid[:, None], jnp.float32)
    np.testing.assert_allclose(total, curvature(x, y, g, q, all_m, th[:, None]), rtol=2e-5, atol=1e-6)
    lam = jnp.full((n, 1), 0.1, jnp.float32)
    exact = objective(x, y, g, q, all_m, fit(x, y, g, q, all_m, th[:, None], lam, 10), lam)
    fixed = objective(x, y, g, q, all_m, fit(x, y, g, q, all_m, th[:, None], lam, 10, total), lam)
    np.testing.assert_allclose(fixed, exact, rtol=1e-5)
    assert float(jnp.abs(fits[:, 0] - fits[:, 1]).max()) > 1e-3      # the folds really differ


def test_penalties_fitted_together_are_each_penalty_fitted_alone_from_the_trained_readout():
    """``cv_together``: every penalty's folds are fitted side by side from the trained readout, so
    each column of the held-out losses is what a grid of that one penalty gives, read from the
    fits' own predictors instead of another pass over the design; the chained grid (each penalty
    started from the last one's fit) gives other numbers with as few steps."""
    lams = [0.1, 1.0, 10.0]
    base = RefitConfig(enabled=True, folds=3, penalties=lams, cv_iterations=3, iterations=5)
    m, data, _ = _planted_scan()
    got = refit_scan(m, RID, data, burn_in=2, cfg=RefitConfig(**{**base.__dict__, "cv_together": True}))
    alone = refit_scan(_planted_scan()[0], RID, data, burn_in=2, cfg=RefitConfig(**{**base.__dict__, "penalties": [1.0]}))
    np.testing.assert_allclose(got["cv_loss"][:, 1], alone["cv_loss"][:, 0], rtol=2e-5)
    chained = refit_scan(_planted_scan()[0], RID, data, burn_in=2, cfg=base)
    np.testing.assert_allclose(got["cv_loss"][:, 0], chained["cv_loss"][:, 0], rtol=2e-5)   # both from the start
    assert np.abs(got["cv_loss"][:, 1:] / chained["cv_loss"][:, 1:] - 1).max() > 1e-4
    n = len(got["penalty"])
    np.testing.assert_allclose(got["cv_loss"][np.arange(n), np.searchsorted(np.float32(lams), got["penalty"])],
                               got["cv_loss"].min(1))
    assert (got["train_loss_after"] < got["train_loss_before"]).all()


def test_blocks_fitted_together_leave_room_for_every_penalty_and_folds_curvature():
    """With ``cv_together`` a block holds penalties x folds (P x P) curvatures (three copies) besides
    its design, so a short recording's blocks shrink instead of outgrowing ``max_block_mb``."""
    from twin.train.refit import _block_size

    data = ScanData(RID, np.zeros((40, 50, 1, 1), np.uint8), np.zeros((40, 50, 1000), np.float32),
                    *(np.zeros((40, 50)),) * 2, np.zeros((40, 50, 2)), np.full(40, 50))
    cfg = RefitConfig(penalties=[0.03, 0.1, 0.3, 1.0, 3.0], max_block_mb=500.0)
    chained = _block_size(data, 5, 192, cfg)
    together = _block_size(data, 5, 192, RefitConfig(**{**cfg.__dict__, "cv_together": True}))
    design = 40 * 45 * 193 * 4
    assert chained == 500 * 2 ** 20 // design
    assert together * (design + 3 * 25 * 193 ** 2 * 4) <= 500 * 2 ** 20 < (together + 1) * (design + 3 * 25 * 193 ** 2 * 4)

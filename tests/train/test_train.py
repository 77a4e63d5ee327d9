"""Training loop: run directory, resume after interruption, refusal, transfer, ensembles."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.train.conftest import random_batch, tiny_config, tiny_recording
from twin.errors import InputError
from twin.model import load_model
from twin.model.load import load_twin_module
from twin.response_model import ResponseModel
from twin.train import train


def _leaves(run_dir, part=None):
    model, _ = load_twin_module(run_dir)
    state = nnx.state(model if part is None else getattr(model, part))
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]


@pytest.fixture(scope="module")
def base_run(rec_dir, tmp_path_factory):
    return train(tiny_config(rec_dir), tmp_path_factory.mktemp("runs") / "base", progress=False)


def test_run_dir_holds_config_metrics_model_and_provenance(base_run):
    for name in ("config.toml", "metrics.jsonl", "model.json", "provenance.json", "units.parquet", "params"):
        assert (base_run / name).exists(), name
    lines = [json.loads(ln) for ln in (base_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 7))
    assert all(np.isfinite(r["loss"]) for r in lines)
    assert "val_corr" in lines[2] and "val_corr" in lines[5]
    info = json.loads((base_run / "model.json").read_text())
    assert info["finished"] and info["best_step"] in (3, 6)


def test_stopped_run_resumes_to_identical_parameters(rec_dir, base_run, tmp_path):
    out = tmp_path / "resumed"
    train(tiny_config(rec_dir), out, progress=False, stop_after=3)   # checkpoint at step 2 only
    assert not (out / "model.json").exists()
    train(tiny_config(rec_dir), out, progress=False)
    for a, b in zip(_leaves(base_run), _leaves(out)):
        np.testing.assert_array_equal(a, b)
    steps = [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


def test_finished_run_is_refused_without_force(rec_dir, base_run):
    with pytest.raises(InputError, match="finished"):
        train(tiny_config(rec_dir), base_run, progress=False)


def test_unfinished_run_with_other_config_is_refused(rec_dir, tmp_path):
    out = tmp_path / "r"
    train(tiny_config(rec_dir), out, progress=False, stop_after=1)
    with pytest.raises(InputError, match="config"):
        train(tiny_config(rec_dir, lr=0.5), out, progress=False)


def test_unfinished_run_from_before_a_new_config_key_resumes_when_the_key_has_its_default(rec_dir, tmp_path):
    from twin.train import run_dir as rd

    out = tmp_path / "old"
    train(tiny_config(rec_dir), out, progress=False, stop_after=3)
    stored = rd.read_json(out / "run.json")
    del stored["model"]["core"]["conv_impl"]          # as written before the key existed
    rd.write_json(out / "run.json", stored)
    train(tiny_config(rec_dir), out, progress=False)   # resumes, no config error
    assert rd.is_finished(out) and rd.read_json(out / "run.json")["model"]["core"]["conv_impl"] == "auto"
    # a stored value that differs from today's is still a different config
    out2 = tmp_path / "other"
    train(tiny_config(rec_dir), out2, progress=False, stop_after=1)
    stored = rd.read_json(out2 / "run.json")
    stored["model"]["core"]["conv_impl"] = "xla"
    rd.write_json(out2 / "run.json", stored)
    with pytest.raises(InputError, match="config"):
        train(tiny_config(rec_dir), out2, progress=False)


def test_loaded_twin_is_a_differentiable_response_model(base_run):
    m = load_model(base_run)
    assert isinstance(m, ResponseModel)
    assert m.recording_ids() == ["7-1-1", "7-1-2"] and m.image_shape == (8, 10)
    units = m.units("7-1-2")
    assert list(units["unit_id"]) == list(range(5)) and "pt_root_id" in units
    stim = jnp.full((2, 4, 8, 10), 127.5)
    rates = m.predict(stim, "7-1-1")
    assert rates.shape == (2, 4, 5) and bool((rates >= 0).all())
    g = jax.grad(lambda s: m.predict(s, "7-1-1")[:, -1, 0].sum())(stim)
    assert g.shape == stim.shape and bool(jnp.isfinite(g).all()) and float(jnp.abs(g).sum()) > 0
    beh = {"running": jnp.zeros((2, 4)), "pupil": jnp.full((2, 4), 20.0), "eye_position": jnp.zeros((2, 4, 2))}
    assert m.predict(stim, "7-1-1", beh).shape == (2, 4, 5)
    pos = m.readout_positions("7-1-1", "grid")
    assert pos.shape == (5, 2) and np.all(np.abs(pos) <= 1)
    deg = m.readout_positions("7-1-1", "deg")
    np.testing.assert_allclose(deg[:, 0], pos[:, 0] * 4.5 * 3.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(deg[:, 1], -pos[:, 1] * 3.5 * 3.0, rtol=1e-5, atol=1e-5)
    assert m.readout_features("7-1-1").shape == (5, 3)
    with pytest.raises(InputError):
        m.predict(stim, "nope-1-1")


def test_readout_features_sum_the_components(rec_dir, tmp_path):
    cfg = tiny_config(rec_dir, steps=2, eval_every=2)
    cfg = replace(cfg, model=replace(cfg.model, readout=replace(cfg.model.readout, components=2)))
    m = load_model(train(cfg, tmp_path / "two", progress=False))
    ro = m.model.readouts["7-1-1"]
    f0, f1 = np.asarray(ro.features[...]), np.asarray(ro.extra.features[...])
    assert f1.shape == (5, 1, 3) and float(np.abs(f1).max()) > 0   # trained away from the zero start
    sd = np.asarray(m.info["feature_sd"])
    assert sd.shape == (3,) and bool((sd > 0).all())
    np.testing.assert_allclose(m.readout_features("7-1-1"), (f0 + f1[:, 0]) * sd, rtol=1e-6)


def test_feature_sd_is_each_core_channels_sd_on_the_first_training_trials(rec_dir, tmp_path):
    from twin.train.data import load_scan, resolve_recordings
    from twin.train.loop import channel_sd

    cfg = tiny_config(rec_dir, steps=2, eval_every=2)
    m = load_model(train(cfg, tmp_path / "sd", progress=False))
    _, tiers = load_scan(resolve_recordings(cfg.data.recordings, cfg.data.include)[0])
    d = tiers["train"]
    f = np.asarray(m.model.features(jnp.asarray(d.stimulus[:3], jnp.float32)))[:, cfg.train.burn_in:]
    want = f.reshape(-1, f.shape[-1]).std(0)
    np.testing.assert_allclose(channel_sd(m.model, {"a": d}, cfg.train.burn_in, trials=3, chunk=2), want, rtol=1e-4)
    assert len(m.info["feature_sd"]) == f.shape[-1]


def test_surround_trains_saves_reloads_and_adds_to_the_net_features(rec_dir, tmp_path):
    cfg = tiny_config(rec_dir, steps=2, eval_every=2)
    cfg = replace(cfg, model=replace(cfg.model, readout=replace(cfg.model.readout, surround=2.0, components=2)))
    m = load_model(train(cfg, tmp_path / "sur", progress=False))
    ro = m.model.readouts["7-1-1"]
    s = np.asarray(ro.surround_features[...])
    assert s.shape == (5, 2, 3) and float(np.abs(s).max()) > 0          # trained away from zero, restored
    net = np.asarray(ro.features[...]) + np.asarray(ro.extra.features[...]).sum(1) + s.sum(1)
    np.testing.assert_allclose(m.readout_features("7-1-1"), net * np.asarray(m.info["feature_sd"]), rtol=1e-5)
    from twin.model.response import TwinResponseModel

    stim = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (1, 4, 8, 10)), jnp.float32)
    with_surround = np.asarray(m.predict(stim, "7-1-1"))
    ro.surround_features[...] = jnp.zeros_like(ro.surround_features[...])
    without = np.asarray(TwinResponseModel(m.model, m.info, m._units).predict(stim, "7-1-1"))
    assert with_surround.shape == without.shape == (1, 4, 5)
    assert not np.allclose(with_surround, without, rtol=1e-6, atol=1e-7)   # the surround is read


def test_weight_patches_train_save_and_reload(rec_dir, tmp_path):
    cfg = tiny_config(rec_dir, steps=2, eval_every=2)
    cfg = replace(cfg, model=replace(cfg.model, readout=replace(cfg.model.readout, mask=3, mask_l1=0.1)))
    m = load_model(train(cfg, tmp_path / "patch", progress=False))
    w = np.asarray(m.model.readouts["7-1-1"].mask_weights[...])
    start = np.exp(-np.array([2, 1, 2, 1, 0, 1, 2, 1, 2]) / 2.0)
    assert w.shape == (5, 9) and not np.allclose(w, start / start.sum(), atol=1e-6)   # trained and restored
    assert np.isnan(m.readout_covariance("7-1-1")).all()   # no Gaussian to report for a patch
    lines = [json.loads(ln) for ln in (tmp_path / "patch" / "metrics.jsonl").read_text().splitlines()]
    plain = replace(cfg, model=replace(cfg.model, readout=replace(cfg.model.readout, mask=0, mask_l1=0.0)))
    ref = [json.loads(ln) for ln in (train(plain, tmp_path / "plain", progress=False) / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["reg"] > ref[0]["reg"]     # the patches' L1 is in the regulariser
    cov = load_model(tmp_path / "plain").readout_covariance("7-1-1")
    assert cov.shape == (5, 2, 2) and np.isfinite(cov).all() and (np.linalg.eigvalsh(cov) > 0).all()


def test_transfer_keeps_the_core_frozen_and_fits_new_readouts(rec_dir, base_run, tmp_path):
    out = train(tiny_config(rec_dir, include=("7-1-3",)), tmp_path / "transfer", from_run=base_run,
                freeze=("core",), progress=False)
    for a, b in zip(_leaves(base_run, "core"), _leaves(out, "core")):
        np.testing.assert_array_equal(a, b)
    m = load_model(out)
    assert m.recording_ids() == ["7-1-3"]
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["poisson"] < lines[0]["poisson"]


def test_a_projected_core_saves_reloads_and_stays_frozen_in_transfer(rec_dir, tmp_path):
    cfg = tiny_config(rec_dir, steps=2, eval_every=2)
    cfg = replace(cfg, model=replace(cfg.model, core=replace(cfg.model.core, projection=2, skip_features=True)))
    src = train(cfg, tmp_path / "projected", progress=False)
    model, _ = load_twin_module(src)
    assert model.core.projection.shape == (9, 2) and model.core.out_channels == 2   # 2 x 3 + 3 features -> 2
    assert model.readouts["7-1-1"].features.shape[-1] == 2
    out = train(replace(cfg, data=replace(cfg.data, include=["7-1-3"])), tmp_path / "transfer", from_run=src,
                freeze=("core",), progress=False)
    for a, b in zip(_leaves(src, "core"), _leaves(out, "core")):     # the projection among them
        np.testing.assert_array_equal(a, b)
    assert np.asarray(load_twin_module(out)[0].core.projection[...]).shape == (9, 2)


def test_freeze_without_from_is_an_input_error(rec_dir, tmp_path):
    with pytest.raises(InputError, match="--from"):
        train(tiny_config(rec_dir), tmp_path / "x", freeze=("core",), progress=False)


def test_ensemble_prediction_is_the_mean_of_its_members(rec_dir, tmp_path):
    cfg = replace(tiny_config(rec_dir, steps=2, eval_every=2), seeds=[0, 1])
    out = train(cfg, tmp_path / "ens", progress=False)
    m = load_model(out)
    stim = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (1, 4, 8, 10)), jnp.float32)
    members = m.predict_members(stim, "7-1-1")
    assert members.shape == (2, 1, 4, 5)
    assert float(jnp.abs(members[0] - members[1]).max()) > 0
    np.testing.assert_allclose(m.predict(stim, "7-1-1"), members.mean(0), rtol=1e-6)
    assert m.readout_features("7-1-1").shape == (5, 6)


def test_mean_rate_weighting_divides_each_neurons_loss_by_its_rate():
    from twin.train.loop import _poisson, neuron_weights

    w = neuron_weights(np.array([0.1, 1.0, 4.0, 0.0]))
    assert w.mean() == pytest.approx(1.0)
    assert w[0] / w[1] == pytest.approx(10.0) and w[1] / w[2] == pytest.approx(4.0)
    assert np.isfinite(w).all() and w[3] == pytest.approx(w.max())   # silent unit: floored, finite
    rng = np.random.default_rng(0)
    rate = jnp.asarray(rng.uniform(0.1, 2.0, (2, 6, 4)), jnp.float32)
    y = jnp.asarray(rng.poisson(1.0, (2, 6, 4)), jnp.float32)
    mask = jnp.ones((2, 6), jnp.float32).at[:, :2].set(0.0)       # the first 2 frames not scored
    nll = np.asarray(rate - y * jnp.log(rate))[:, 2:]
    got = float(_poisson(rate, y, mask, 0.0, jnp.asarray(w)))
    assert got == pytest.approx(float((nll * w).sum() / (2 * 4 * 4)), rel=1e-5)
    assert float(_poisson(rate, y, mask, 0.0)) == pytest.approx(float(nll.sum() / (2 * 4 * 4)), rel=1e-5)


def test_variance_floor_gives_the_quasi_poisson_loss_and_its_score():
    """train.variance_floor: loss (rate + q) - (y + q) log(rate + q), whose gradient in the rate
    is the quasi-score (rate - y) / (rate + q): frames where the rate is low weigh less than the
    Poisson loss gives them."""
    from twin.train.loop import _poisson

    rng = np.random.default_rng(1)
    rate = jnp.asarray(rng.uniform(0.05, 2.0, (2, 6, 3)), jnp.float32)
    y = jnp.asarray(rng.poisson(1.0, (2, 6, 3)), jnp.float32)
    mask = jnp.ones((2, 6), jnp.float32).at[:, :2].set(0.0)       # the first 2 frames not scored
    q = jnp.asarray([0.0, 0.5, 2.0], jnp.float32)
    want = np.asarray((rate + q) - (y + q) * jnp.log(rate + q))[:, 2:]
    assert float(_poisson(rate, y, mask, 0.0, None, q)) == pytest.approx(float(want.sum() / (2 * 4 * 3)), rel=1e-5)
    grad = np.asarray(jax.grad(lambda r: _poisson(r, y, mask, 0.0, None, q))(rate))[:, 2:] * (2 * 4 * 3)
    np.testing.assert_allclose(grad, np.asarray((rate - y) / (rate + q))[:, 2:], rtol=1e-4, atol=1e-6)
    # q = 0 is the Poisson loss itself
    np.testing.assert_allclose(float(_poisson(rate, y, mask, 0.0, None, q * 0)),
                               float(_poisson(rate, y, mask, 0.0)), rtol=1e-6)


def test_the_trainers_loss_uses_each_scans_variance_floors():
    """Floors handed to Trainer reach its loss: all-zero floors give the Poisson loss, and a floor
    on one scan changes the loss."""
    from twin.model.config import CoreConfig, ModelConfig
    from twin.model.twin_model import ScanSpec, TwinModel
    from twin.train.config import OptimConfig, TrainConfig
    from twin.train.loop import Trainer

    cfg = TrainConfig(model=ModelConfig(core=CoreConfig(channels=3, layers=1, kernel=(3,), temporal_kernel=2,
                                                        gru_channels=3)),
                      train=OptimConfig(batch_size=2, burn_in=1))
    rng = np.random.default_rng(0)
    batches = {"a-1-1": random_batch(rng, 2, 4, 3), "a-1-2": random_batch(rng, 2, 4, 2)}
    rids = ["a-1-1", "a-1-2"]

    def loss(floors):
        model = TwinModel(cfg.model, [ScanSpec("a-1-1", 3), ScanSpec("a-1-2", 2)], seed=0)
        return float(Trainer(cfg, model, rids, floors=floors).loss_and_grads(batches, step=1)[0])

    zero = {"a-1-1": np.zeros(3, np.float32), "a-1-2": np.zeros(2, np.float32)}
    one = dict(zero, **{"a-1-2": np.full(2, 2.0, np.float32)})
    assert loss(zero) == pytest.approx(loss(None), rel=1e-6)
    assert abs(loss(one) - loss(None)) > 1e-3


def test_the_readouts_skip_the_burn_in_frames_and_the_loss_stays_the_same(monkeypatch):
    """The Trainer reads out only the scored frames (after the burn-in), with behaviour-driven
    shifter and modulator, and its loss and gradients equal the loss of the whole clips' readout
    with the burn-in frames masked out."""
    from twin.model.config import CoreConfig, ModelConfig, ModulatorConfig, ReadoutConfig, ShifterConfig
    from twin.model.twin_model import ScanSpec, TwinModel
    from twin.train.config import OptimConfig, TrainConfig
    from twin.train.loop import Trainer, _poisson

    cfg = TrainConfig(model=ModelConfig(core=CoreConfig(channels=3, layers=1, kernel=(3,), temporal_kernel=2,
                                                        gru_channels=3),
                                        readout=ReadoutConfig(pooling=2, components=2),
                                        shifter=ShifterConfig(enabled=True), modulator=ModulatorConfig(enabled=True)),
                      train=OptimConfig(batch_size=2, burn_in=2))
    rng = np.random.default_rng(0)
    batches = {"a-1-1": random_batch(rng, 2, 5, 3), "a-1-2": random_batch(rng, 2, 5, 2)}
    batches["a-1-2"]["mask"][1, 4] = 0.0                      # a frame past the clip's end
    rids = ["a-1-1", "a-1-2"]
    model = TwinModel(cfg.model, [ScanSpec("a-1-1", 3), ScanSpec("a-1-2", 2)], seed=0)
    trainer = Trainer(cfg, model, rids)

    frames = []
    readout = TwinModel.readout

    def counted(self, f, *a, **k):
        frames.append(f.shape[1])
        return readout(self, f, *a, **k)

    monkeypatch.setattr(TwinModel, "readout", counted)
    loss, grads = trainer.loss_and_grads(batches, step=3)
    assert frames == [3, 3]                                   # 5 frames less the 2 burn-in ones, per scan
    monkeypatch.setattr(TwinModel, "readout", readout)

    def whole(params):
        m = trainer.model_of(params)
        feats = m.features(jnp.concatenate([jnp.asarray(batches[r]["stimulus"]) for r in rids], 0))
        total = 0.0
        for i, r in enumerate(rids):
            b = batches[r]
            beh = {k: jnp.asarray(b[k]) for k in ("running", "pupil", "eye_position")}
            rate = m.readout(feats[2 * i:2 * i + 2], r, beh, jax.random.fold_in(trainer.step_key(3), i))
            scored = jnp.asarray(b["mask"]).at[:, :2].set(0.0)          # the burn-in masked instead
            total = total + _poisson(rate, jnp.asarray(b["response"]), scored, cfg.train.poisson_eps)
        mc = cfg.model
        return total + m.regulariser(mc.readout.feature_l1, mc.core.laplace_weight, mc.readout.mask_l1)

    want, want_grads = jax.value_and_grad(whole)(trainer.params)
    assert float(loss) == pytest.approx(float(want), rel=1e-6)
    for got, exp in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(want_grads)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(exp), rtol=1e-4, atol=1e-7)


def test_rate_weights_and_variance_floors_reach_the_trainer_per_scan(rec_dir, tmp_path, monkeypatch):
    """train.neuron_weighting = "mean_rate" and train.variance_floor, together in one run: the
    trainer gets each scan's 1 / mean-rate weights and its floors (the factor x each unit's mean
    training response); a negative floor is a named error."""
    import twin.train.loop as loop
    from twin.train.data import load_scan

    seen = {"weights": {}, "floors": {}}
    real_init = loop.Trainer.__init__

    def spy(self, *args, weights=None, floors=None, **kw):
        seen["weights"].update(weights or {})
        seen["floors"].update(floors or {})
        real_init(self, *args, weights=weights, floors=floors, **kw)

    monkeypatch.setattr(loop.Trainer, "__init__", spy)
    cfg = tiny_config(rec_dir, steps=4)
    cfg = replace(cfg, train=replace(cfg.train, neuron_weighting="mean_rate", variance_floor=1.5))
    run = train(cfg, tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["loss"]) for x in lines if "loss" in x)
    for got in seen.values():
        assert got and set(got) == set(load_model(run).recording_ids())
    for rid in seen["weights"]:
        d = load_scan(rec_dir / f"{rid}.h5")[1]["train"]
        valid = np.arange(d.response.shape[1])[None, :] < d.n_frames[:, None]
        mean = d.response[valid].mean(0)
        np.testing.assert_allclose(seen["weights"][rid], loop.neuron_weights(mean), rtol=1e-5)
        np.testing.assert_allclose(seen["floors"][rid], 1.5 * mean, rtol=1e-5)
    bad = replace(cfg, train=replace(cfg.train, variance_floor=-1.0))
    with pytest.raises(InputError, match="train.variance_floor"):
        train(bad, tmp_path / "bad", progress=False)


def test_transfer_from_an_ensemble_gives_one_member_per_source_core(rec_dir, tmp_path):
    src = train(replace(tiny_config(rec_dir, steps=2, eval_every=2), seeds=[0, 1]), tmp_path / "ens",
                progress=False)
    out = train(tiny_config(rec_dir, include=("7-1-3",), steps=2, eval_every=2), tmp_path / "tr",
                from_run=src, freeze=("core",), progress=False)
    assert json.loads((out / "model.json").read_text())["members"] == ["seed_0", "seed_1"]
    # the two source cores differ, so each member must have been built on its own source's core
    cores = [_leaves(src / f"seed_{s}", "core") for s in (0, 1)]
    assert any((a != b).any() for a, b in zip(*cores))
    for s in (0, 1):
        assert json.loads((out / f"seed_{s}" / "run.json").read_text())["seed"] == s
        for a, b in zip(_leaves(src / f"seed_{s}", "core"), _leaves(out / f"seed_{s}", "core")):
            np.testing.assert_array_equal(a, b)
    assert load_model(out).recording_ids() == ["7-1-3"]
    with pytest.raises(InputError, match="seeds"):
        train(replace(tiny_config(rec_dir, include=("7-1-3",)), seeds=[5]), tmp_path / "bad",
              from_run=src, freeze=("core",), progress=False)


def _with_processes(cfg, n):
    return replace(cfg, train=replace(cfg.train, member_processes=n))


def test_members_trained_in_parallel_processes_equal_members_trained_in_turn(rec_dir, tmp_path, monkeypatch):
    """train.member_processes = 2: each member in its own process on its own core share gives the
    parameters the members get one after the other; stopped part-way (stop_after) both members are
    left resumable, and the resumed ensemble is the same again."""
    import twin.train.loop as loop

    calls = []
    real = loop.train_in_processes

    def spy(jobs, n, *rest):
        calls.append((len(jobs), n))
        return real(jobs, n, *rest)

    monkeypatch.setattr(loop, "train_in_processes", spy)
    cfg = replace(tiny_config(rec_dir, steps=4, eval_every=2), seeds=[0, 1])
    seq = train(cfg, tmp_path / "seq", progress=False)
    assert calls == []                                                     # the default: members in turn
    par = tmp_path / "par"
    train(_with_processes(cfg, 2), par, progress=False, stop_after=2)      # checkpoint at step 2
    assert not (par / "model.json").exists()
    assert [len((par / f"seed_{s}" / "metrics.jsonl").read_text().splitlines()) for s in (0, 1)] == [2, 2]
    train(_with_processes(cfg, 2), par, progress=False)
    assert calls == [(2, 2), (2, 2)]                                        # both runs in two processes
    assert json.loads((par / "model.json").read_text())["members"] == ["seed_0", "seed_1"]
    for s in (0, 1):
        for a, b in zip(_leaves(seq / f"seed_{s}"), _leaves(par / f"seed_{s}")):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_members_input_error_in_its_process_is_raised_by_the_parent(rec_dir, tmp_path):
    """A member's own error (here: its unfinished run directory holds another config) reaches the
    caller as the same InputError, naming the member's directory and field; a negative process count
    is refused up front."""
    cfg = replace(tiny_config(rec_dir, steps=2, eval_every=2), seeds=[0, 1])
    out = tmp_path / "ens"
    train(tiny_config(rec_dir, lr=0.5), out / "seed_1", progress=False, stop_after=1)
    with pytest.raises(InputError, match="seed_1.*config"):
        train(_with_processes(cfg, 2), out, progress=False)
    with pytest.raises(InputError, match="train.member_processes"):
        train(_with_processes(cfg, -1), tmp_path / "bad", progress=False)


def test_core_shares_split_the_cores_contiguously():
    from twin.train.members import core_shares, member_processes

    assert core_shares(2, [0, 1, 2, 3, 4]) == [[0, 1], [2, 3, 4]]
    assert core_shares(2, [0, 1]) == [[0], [1]]
    assert core_shares(3, [5]) == [[5], [5], [5]]
    assert member_processes(3, 2, False) == 2 and member_processes(2, 1, False) == 1
    assert member_processes(0, 4, True) == 1


def test_load_training_scans_keys_scans_in_order_and_refuses_mixed_shapes_or_rates(rec_dir, tmp_path):
    from twin.train.data import load_training_scans

    paths = sorted(rec_dir.glob("7-1-*.h5"))
    metas, train, val = load_training_scans(paths, str(rec_dir))
    assert list(metas) == list(train) == list(val) == [m.recording_id for m in metas.values()]
    assert [p.stem for p in paths] == list(metas)
    assert all(t.response.shape[0] == 6 for t in train.values()) and all(v.response.shape[0] == 2 for v in val.values())
    other = tiny_recording(tmp_path, 4, hw=(6, 10))
    with pytest.raises(InputError, match="data.recordings.*one image shape") as err:
        load_training_scans([paths[0], Path(other)], "my_recordings/*.h5")
    assert "my_recordings/*.h5" in str(err.value) and "(6, 10)" in str(err.value)
    (tmp_path / "rate").mkdir()
    slower = tiny_recording(tmp_path / "rate", 5, frame_rate=5.0)
    with pytest.raises(InputError, match="one image shape and frame rate") as err:
        load_training_scans([paths[0], Path(slower)], "my_recordings/*.h5")
    assert "rates [5.0, 10.0]" in str(err.value)

"""The training loop: Poisson loss, AdamW, early stopping, checkpoints, resume, data parallelism.

One step draws ``batch_size`` clips from EVERY training scan (scans interleaved in each step),
runs the shared core once on all of them and each scan's readout on its own clips, and takes
one AdamW step on the summed loss::

    loss = sum_scans mean_{b, t >= burn_in, n} [rate - y log(rate + eps)] + regularisers

The learning rate warms up linearly then follows a cosine decay (``schedule = "cosine"``) or
stays constant and is multiplied by ``plateau_factor`` after ``plateau_patience`` evaluations
without improvement (``"plateau"``). Every ``eval_every`` steps the mean per-neuron correlation
on the validation trials (mean readout positions, frames after burn-in) is computed; the best
parameters are kept and restored at the end; training stops after ``early_stop_patience``
evaluations without improvement.

Resuming. The batch and the random key of step ``s`` depend only on ``(seed, s)``, and a
checkpoint holds parameters, optimiser state, best parameters and the loop counters, so a run
stopped at any moment and started again from its last checkpoint ends with bit-identical
parameters. ``metrics.jsonl`` is cut back to the checkpoint's step on resume. The readout refit
(``[refit]``, :mod:`twin.train.refit`) runs after the last step, is not checkpointed and is
deterministic: a run stopped during it runs it again on resume, with the same result.

Data parallelism. The step is ``jax.jit``-compiled over a 1-D mesh ``Mesh(jax.devices(),
("data",))``: batches are sharded along their first axis (``NamedSharding(mesh, P("data"))``),
parameters and optimiser state replicated (``P()``); XLA inserts the gradient all-reduce.
``batch_size`` must be divisible by the number of devices.

Multi-host. With ``train.distributed = true`` (or the environment variable
``TWIN_DISTRIBUTED=1``), :func:`maybe_initialize_distributed` calls
``jax.distributed.initialize()`` before any JAX work; the coordinator address, number of
processes and process id come from its arguments' usual environment variables
(``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``) or the cluster
auto-detection (SLURM, Open MPI, TPU/GKE). Every process runs the same command: each draws
the same global batch (it is a function of seed and step) and contributes its addressable
shards (``jax.make_array_from_callback``); the mesh spans all processes' devices; only
process 0 writes metrics, model and provenance (Orbax checkpoints are written collectively).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from twin.config import from_dict, to_dict
from twin.errors import InputError
from twin.io import write_text_atomic
from twin.train import run_dir as rd
from twin.train.config import TrainConfig
from twin.train.data import (ScanData, load_training_scans, resolve_recordings, sample_batch, scan_spec,
                             step_rng, stimulus_stats)
from twin.train.members import member_processes, train_in_processes

FREEZABLE = ("core",)


def maybe_initialize_distributed(cfg: TrainConfig) -> None:
    """Start multi-host JAX (``jax.distributed.initialize``) if the config or env asks for it."""
    import jax

    if (cfg.train.distributed or os.environ.get("TWIN_DISTRIBUTED") == "1") and not getattr(
            maybe_initialize_distributed, "_done", False):
        jax.distributed.initialize()
        maybe_initialize_distributed._done = True


def lr_at(cfg: TrainConfig, step: int, lr_scale: float) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine or constant*scale."""
    o = cfg.train
    warm = min(1.0, (step + 1) / max(o.warmup_steps, 1))
    if step < o.warmup_steps:
        return o.lr * warm * lr_scale
    if o.schedule == "cosine":
        frac = (step - o.warmup_steps) / max(o.steps - o.warmup_steps, 1)
        return o.lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0)))) * lr_scale
    return o.lr * lr_scale


def loss_weights_and_floors(cfg: TrainConfig, specs) -> tuple[dict | None, dict | None]:
    """The Trainer's per-neuron loss weights (``train.neuron_weighting``) and quasi-Poisson variance
    floors (``train.variance_floor``) per recording, from each scan spec's mean training response;
    None where the config has them off."""
    weights = None
    if cfg.train.neuron_weighting == "mean_rate":
        weights = {s.recording_id: neuron_weights(np.asarray(s.mean_response)) for s in specs}
    floors = None
    if cfg.train.variance_floor > 0:   # each unit's floor scales with its mean training response
        floors = {s.recording_id: (cfg.train.variance_floor * np.asarray(s.mean_response)).astype(np.float32)
                  for s in specs}
    return weights, floors


def _poisson(rate, y, mask, eps, weights=None, floor=None):
    """Mean Poisson loss per neuron over the frames where ``mask`` (B, T) is 1 (the caller leaves
    the burn-in frames out); with a per-neuron variance ``floor`` (N,) the quasi-Poisson loss
    ``(rate + q) - (y + q) log(rate + q)`` (Var(y) ~ rate + q)."""
    import jax.numpy as jnp

    m = mask[..., None]
    if floor is not None:
        rate, y = rate + floor, y + floor
    nll = (rate - y * jnp.log(rate + eps)) * m
    if weights is not None:
        nll = nll * weights
    return nll.sum() / (jnp.maximum(m.sum(), 1.0) * rate.shape[-1])


def neuron_weights(mean_response: np.ndarray) -> np.ndarray:
    """Per-neuron loss weights ``1 / mean response`` scaled to average 1 (floor at 1% of the
    median rate, so silent units do not dominate)."""
    r = np.asarray(mean_response, np.float64)
    r = np.maximum(r, 0.01 * max(float(np.median(r)), 1e-6))
    w = 1.0 / r
    return (w / w.mean()).astype(np.float32)


class Trainer:
    """Holds the model split into (graphdef, params, constants), the optimiser and the jitted
    step and prediction functions. Built by :func:`train`; usable on its own in tests."""

    def __init__(self, cfg: TrainConfig, model, rids: list[str], freeze: tuple[str, ...] = (),
                 devices=None, weights: dict[str, np.ndarray] | None = None,
                 floors: dict[str, np.ndarray] | None = None):
        import jax
        import optax
        from flax import nnx
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

        self.cfg, self.rids, self.freeze = cfg, list(rids), tuple(freeze)
        # per-neuron loss weights per scan (train.neuron_weighting), None = plain mean
        self.weights = None if weights is None else {r: jax.numpy.asarray(w) for r, w in weights.items()}
        # per-neuron quasi-Poisson variance floors per scan (train.variance_floor), None = Poisson
        self.floors = None if floors is None else {r: jax.numpy.asarray(q) for r, q in floors.items()}
        self.graphdef, params, self.consts = nnx.split(model, nnx.Param, ...)
        self.params = nnx.to_pure_dict(params)
        self._state_def = jax.tree_util.tree_structure(params)
        assert [k[:-1] for k, _ in jax.tree_util.tree_leaves_with_path(params)] == \
            [k for k, _ in jax.tree_util.tree_leaves_with_path(self.params)], "param order"
        devices = list(jax.devices() if devices is None else devices)
        if cfg.train.batch_size % len(devices):
            raise InputError(None, "train.batch_size", f"a multiple of the {len(devices)} devices",
                             cfg.train.batch_size)
        self.mesh = Mesh(np.array(devices), ("data",))
        self.batch_sharding = NamedSharding(self.mesh, P("data"))
        self.replicated = NamedSharding(self.mesh, P())
        o = cfg.train
        inner = [optax.clip_by_global_norm(o.grad_clip)] if o.grad_clip > 0 else []
        inner += [optax.scale_by_adam(), optax.add_decayed_weights(o.weight_decay)]
        labels = jax.tree_util.tree_map_with_path(
            lambda path, _: "frozen" if str(path[0].key) in self.freeze else "train", self.params)
        self.tx = optax.multi_transform({"train": optax.chain(*inner), "frozen": optax.set_to_zero()}, labels)
        self.params = jax.device_put(self.params, self.replicated)
        self.opt_state = jax.device_put(self.tx.init(self.params), self.replicated)
        self.consts = jax.device_put(self.consts, self.replicated)
        self._step = jax.jit(self._step_fn, donate_argnums=(0, 1))
        self._predict = jax.jit(self._predict_fn, static_argnums=(1,))
        self._loss_grad = jax.jit(jax.value_and_grad(self._loss_fn, has_aux=True))

    # --- pure functions ---------------------------------------------------------------------
    def model_of(self, params):
        import jax
        from flax import nnx

        state = jax.tree_util.tree_unflatten(self._state_def, jax.tree_util.tree_leaves(params))
        return nnx.merge(self.graphdef, state, self.consts)

    def _loss_fn(self, params, batches: dict, key):
        import jax
        import jax.numpy as jnp

        o = self.cfg.train
        model = self.model_of(params)
        stim = jnp.concatenate([batches[r]["stimulus"] for r in self.rids], axis=0)
        feats = model.features(stim)
        if "core" in self.freeze:
            feats = jax.lax.stop_gradient(feats)
        total, parts, start = 0.0, {}, 0
        # The burn-in frames are out of the loss, so the readouts skip them: the core still runs on
        # them (its recurrence needs them), the readouts read only the scored frames (the readout
        # has no state across frames). At the demo's 30-frame clips and burn-in of 5 (2026-12-07)
        # the readouts' forward+backward took 0.43 s instead of 0.50-0.52 s per step on one core,
        # and a step side by side with another member 1.56 s instead of 1.66-1.68 s.
        c = min(o.burn_in, feats.shape[1])
        for i, r in enumerate(self.rids):
            b = batches[r]
            n = b["stimulus"].shape[0]
            beh = {k: b[k][:, c:] for k in ("running", "pupil", "eye_position")}
            rate = model.readout(feats[start:start + n, c:], r, beh, jax.random.fold_in(key, i))
            start += n
            parts[r] = _poisson(rate, b["response"][:, c:], b["mask"][:, c:], o.poisson_eps,
                                None if self.weights is None else self.weights[r],
                                None if self.floors is None else self.floors[r])
            total = total + parts[r]
        mc = self.cfg.model
        reg = model.regulariser(mc.readout.feature_l1, 0.0 if "core" in self.freeze else mc.core.laplace_weight,
                                mc.readout.mask_l1)
        return total + reg, {"poisson": total, "reg": reg}

    def _step_fn(self, params, opt_state, batches, key, lr):
        import jax

        (loss, aux), grads = jax.value_and_grad(self._loss_fn, has_aux=True)(params, batches, key)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = jax.tree_util.tree_map(lambda p, u: p - lr * u, params, updates)
        return params, opt_state, loss, aux

    def _predict_fn(self, params, rid, stimulus, behaviour):
        return self.model_of(params)(stimulus, rid, behaviour)

    # --- host-side helpers -------------------------------------------------------------------
    def shard_batch(self, batches: dict) -> dict:
        """Place numpy batches on the mesh, sharded along the batch axis."""
        import jax

        def put(x):
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, self.batch_sharding, lambda idx: x[idx])

        return {r: {k: put(v) for k, v in b.items()} for r, b in batches.items()}

    def draw(self, data: dict[str, ScanData], step: int) -> dict:
        rng = step_rng(self.cfg.seed, step)
        o = self.cfg.train
        return {r: sample_batch(data[r], rng, o.batch_size, o.clip_frames) for r in self.rids}

    def step_key(self, step: int):
        import jax

        return jax.random.fold_in(jax.random.key(self.cfg.seed), step)

    def step(self, batches: dict, step: int, lr: float) -> tuple[float, dict]:
        """One optimiser step on numpy ``batches`` ({rid: batch}); returns (loss, parts)."""
        import jax.numpy as jnp

        self.params, self.opt_state, loss, aux = self._step(
            self.params, self.opt_state, self.shard_batch(batches), self.step_key(step), jnp.float32(lr))
        return float(loss), {k: float(v) for k, v in aux.items()}

    def loss_and_grads(self, batches: dict, step: int):
        """(loss, grads) at the current parameters (used by the multi-device test)."""
        (loss, _), grads = self._loss_grad(self.params, self.shard_batch(batches), self.step_key(step))
        return loss, grads

    def validation_corr(self, val: dict[str, ScanData], params=None) -> float:
        """Mean over scans of the mean per-neuron Pearson correlation on validation trials."""
        from twin.train.evaluation import corr_per_neuron

        params = self.params if params is None else params
        scores = []
        for r in self.rids:
            if r not in val:
                continue
            pred = predict_trials(lambda s, b: self._predict(params, r, s, b), val[r], self.cfg.train.batch_size)
            scores.append(np.nanmean(corr_per_neuron(pred, val[r].response, val[r].n_frames,
                                                     self.cfg.train.burn_in)))
        return float(np.mean(scores)) if scores else float("nan")


def predict_trials(fn, data: ScanData, chunk: int) -> np.ndarray:
    """Predictions (n_trial, T, N) for whole trials, ``chunk`` trials at a time."""
    out = []
    for i in range(0, len(data.stimulus), chunk):
        sl = slice(i, i + chunk)
        out.append(np.asarray(fn(data.stimulus[sl].astype(np.float32), data.behaviour(sl))))
    return np.concatenate(out)


# ------------------------------------------------------------------------------------------------
def train(config: TrainConfig | str | os.PathLike, out_dir: str | os.PathLike, *,
          overrides: list[str] | tuple[str, ...] = (), from_run: str | os.PathLike | None = None,
          freeze: tuple[str, ...] | list[str] = (), force: bool = False, progress: bool = True,
          stop_after: int | None = None) -> Path:
    """Train a twin (or, with ``config.seeds``, an ensemble) into ``out_dir``; return ``out_dir``.

    ``config`` is a TrainConfig or a TOML path (``overrides`` are dotted ``key=value``).
    ``from_run`` + ``freeze=("core",)``: transfer from a trained run (its core and input
    statistics; fresh readouts for this config's scans). From an ensemble run, the result is an
    ensemble with one member per source member, each on that member's core and with its seed
    (``config.seeds`` must then be empty or those seeds). An unfinished ``out_dir`` is resumed;
    a finished one is refused unless ``force``. ``stop_after`` stops after that many steps of
    this call, leaving the run unfinished and resumable (tests; like a kill after a checkpoint).
    """
    from twin.config import load_config

    config_path = None if isinstance(config, TrainConfig) else config
    if not isinstance(config, TrainConfig):
        config = load_config(config, TrainConfig, list(overrides))
    elif overrides:
        from twin.config import apply_overrides
        config = from_dict(TrainConfig, apply_overrides(to_dict(config), list(overrides)))
    if (expected := config.model.readout.pooling_problem()) is not None:   # before any run folder exists
        raise InputError(config_path, "model.readout.pooling", expected, repr(config.model.readout.pooling))
    if (expected := config.model.readout.mask_problem()) is not None:
        raise InputError(config_path, "model.readout.mask", expected, repr(config.model.readout.mask))
    if (expected := config.model.readout.components_problem()) is not None:
        raise InputError(config_path, "model.readout.components", expected, repr(config.model.readout.components))
    if (expected := config.model.readout.surround_problem()) is not None:
        raise InputError(config_path, "model.readout.surround", expected, repr(config.model.readout.surround))
    if (problem := config.model.core.kernel_problem()) is not None:
        raise InputError(config_path, f"model.core.{problem[0]}", problem[1], repr(problem[2]))
    if (problem := config.refit.problem()) is not None:
        raise InputError(config_path, f"refit.{problem[0]}", problem[1], repr(problem[2]))
    if (expected := config.train.variance_floor_problem()) is not None:
        raise InputError(config_path, "train.variance_floor", expected, repr(config.train.variance_floor))
    if config.train.member_processes < 0:
        raise InputError(config_path, "train.member_processes", ">= 0 (0 = one per member and core)",
                         config.train.member_processes)
    bad = [f for f in freeze if f not in FREEZABLE]
    if bad:
        raise InputError(None, "--freeze", f"one of {list(FREEZABLE)}", bad[0])
    if freeze and from_run is None:
        raise InputError(None, "--freeze", "used together with --from RUN_DIR", "no --from")
    out_dir = Path(out_dir)
    sources = None                # with --from: the source run of each ensemble member
    if from_run is not None:
        from twin.model.load import run_info

        info = run_info(from_run)
        if info.get("kind") == "ensemble":   # one member per source member, each on its own core
            members = [Path(from_run) / name for name in info["members"]]
            seeds = [int(run_info(m)["seed"]) for m in members]
            if config.seeds and list(config.seeds) != seeds:
                raise InputError(config_path, "seeds", f"empty or the seeds of --from's members {seeds}",
                                 repr(list(config.seeds)))
            config, sources = replace(config, seeds=seeds), members
        elif config.seeds:
            sources = [from_run] * len(config.seeds)
    if config.seeds:
        return _train_ensemble(config, out_dir, sources, tuple(freeze), force, progress, stop_after)
    return _train_one(config, out_dir, from_run, tuple(freeze), force, progress, stop_after)


def _prepare_dir(cfg: TrainConfig, out_dir: Path, force: bool, extra: dict) -> None:
    resolved = {**to_dict(cfg), **extra}
    if out_dir.exists() and rd.is_finished(out_dir):
        if not force:
            raise InputError(out_dir, "run directory", "a new or unfinished run (use --force to retrain)",
                             "a finished run")
        shutil.rmtree(out_dir)
    cfg_path = out_dir / "run.json"
    if cfg_path.is_file():
        old = rd.read_json(cfg_path)
        new = json.loads(json.dumps(resolved, default=str))
        if old != new:
            if _with_defaults(old, extra) == new:   # written before a config key (at its default) existed
                rd.write_json(cfg_path, resolved)
            elif not force:
                raise InputError(out_dir, "config", "the same config as the unfinished run there "
                                 "(use --force to start over)", "a different config")
            else:
                shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg_path.is_file():
        write_text_atomic(out_dir / "config.toml", rd.to_toml(to_dict(cfg)))
        rd.write_json(cfg_path, resolved)


def _with_defaults(stored: dict, extra: dict) -> dict | None:
    """A stored run.json with the config keys added to TrainConfig since filled in with their
    defaults (as JSON), or None if it no longer reads as a TrainConfig."""
    try:
        cfg = from_dict(TrainConfig, {k: v for k, v in stored.items() if k not in extra})
    except InputError:
        return None
    rest = {k: v for k, v in stored.items() if k in extra}
    return json.loads(json.dumps({**to_dict(cfg), **rest}, default=str))


def _train_ensemble(cfg, out_dir, sources, freeze, force, progress, stop_after) -> Path:
    """``sources``: None, or the run each member transfers from (one per seed)."""
    if out_dir.exists() and rd.is_finished(out_dir) and not force:
        raise InputError(out_dir, "run directory", "a new or unfinished run (use --force to retrain)",
                         "a finished ensemble")
    out_dir.mkdir(parents=True, exist_ok=True)
    members = [out_dir / f"seed_{s}" for s in cfg.seeds]
    jobs = [(replace(cfg, seed=int(s), seeds=[]), member, None if sources is None else sources[i], freeze, force,
             stop_after) for i, (s, member) in enumerate(zip(cfg.seeds, members))
            if not (rd.is_finished(member) and not force)]
    distributed = cfg.train.distributed or os.environ.get("TWIN_DISTRIBUTED") == "1"
    processes = member_processes(cfg.train.member_processes, len(jobs), distributed)
    if processes > 1:
        train_in_processes(jobs, processes, cfg.train.steps, progress)
    else:
        for job in jobs:
            _train_one(*job[:5], progress, job[5])
            if not rd.is_finished(job[1]):
                return out_dir  # stopped early (stop_after): resumable
    if not all(rd.is_finished(m) for m in members):
        return out_dir          # stopped early (stop_after): resumable
    members = [m.name for m in members]
    write_text_atomic(out_dir / "config.toml", rd.to_toml(to_dict(cfg)))
    rd.write_json(out_dir / "model.json", {"kind": "ensemble", "members": members, "finished": True})
    return out_dir


def _checkpoints(out_dir: Path) -> list[Path]:
    d = out_dir / "checkpoints"
    return sorted(d.glob("step_*"), key=lambda p: int(p.name.split("_")[1])) if d.is_dir() else []


def _train_one(cfg: TrainConfig, out_dir: Path, from_run, freeze, force, progress, stop_after) -> Path:
    maybe_initialize_distributed(cfg)
    import jax
    from tqdm.auto import tqdm

    from twin.model.twin_model import TwinModel

    o = cfg.train
    extra = {"from_run": None if from_run is None else str(Path(from_run).resolve()), "freeze": list(freeze)}
    paths = resolve_recordings(cfg.data.recordings, cfg.data.include)
    _prepare_dir(cfg, out_dir, force, extra)
    lead = jax.process_index() == 0

    metas, train_data, val_data = load_training_scans(paths, cfg.data.recordings[0])
    rids = list(metas)
    image_shape = list(next(iter(metas.values())).image_shape)   # shared by every scan
    specs = [scan_spec(metas[r], train_data[r], cfg.model.readout.grid_predictor) for r in rids]
    # (with a grid predictor the positions come from cortical coordinates: nothing to start)
    if cfg.model.readout.position_init == "energy" and not cfg.model.readout.grid_predictor:
        from twin.train.rf_init import energy_rf_positions

        def start(r):
            d, m = train_data[r], metas[r]
            xy = (m.units[["cortical_x", "cortical_y"]].to_numpy(float)
                  if {"cortical_x", "cortical_y"} <= set(m.units.columns) else None)
            pos = energy_rf_positions(d.stimulus, d.response, d.n_frames, m.image_shape, m.pixel_size_deg, o.burn_in,
                                      cortical_xy=xy, pool_um=cfg.model.readout.position_init_pool_um)
            return tuple(map(tuple, pos))

        specs = [replace(s, init_positions=start(r)) for s, r in zip(specs, rids)]

    model_cfg = cfg.model
    if from_run is not None:
        from twin.model.load import load_twin_module

        src, src_info = load_twin_module(from_run)
        if src_info["image_shape"] != image_shape:
            raise InputError(from_run, "image_shape", f"{image_shape} like the new data",
                             src_info["image_shape"])
        src_cfg = from_dict(type(cfg.model), src_info["model_config"])
        model_cfg = replace(cfg.model, core=src_cfg.core)
        model = TwinModel(model_cfg, [], stimulus_mean=float(src.stim_mean[...]),
                          stimulus_std=float(src.stim_std[...]), seed=cfg.seed)
        model.core = src.core
        for i, s in enumerate(specs):
            model.add_scan(s, model_cfg, seed=cfg.seed * 1000 + i + 1)
    else:
        mean, std = stimulus_stats(list(train_data.values()))
        model = TwinModel(model_cfg, specs, stimulus_mean=mean, stimulus_std=std, seed=cfg.seed)

    weights, floors = loss_weights_and_floors(cfg, specs)
    trainer = Trainer(replace(cfg, model=model_cfg), model, rids, freeze, weights=weights, floors=floors)
    # loop state; restored from the last checkpoint when resuming
    state = {"step": 0, "best_score": -np.inf, "best_step": 0, "bad": 0, "plateau_bad": 0,
             "lr_scale": 1.0, "stopped": 0}
    best_params = jax.tree_util.tree_map(lambda x: x.copy(), trainer.params)
    ckpts = _checkpoints(out_dir)
    if ckpts:
        target = {"params": trainer.params, "opt_state": trainer.opt_state, "best_params": trainer.params,
                  "meta": {k: np.asarray(v) for k, v in state.items()}}
        got = rd.restore_state(ckpts[-1], target)
        trainer.params = jax.device_put(got["params"], trainer.replicated)
        trainer.opt_state = jax.device_put(got["opt_state"], trainer.replicated)
        best_params = jax.device_put(got["best_params"], trainer.replicated)
        state = {k: v.item() for k, v in got["meta"].items()}
    metrics_path = out_dir / "metrics.jsonl"
    if lead:
        kept = []
        if metrics_path.is_file():
            kept = [ln for ln in metrics_path.read_text().splitlines()
                    if ln.strip() and json.loads(ln)["step"] <= state["step"]]
        write_text_atomic(metrics_path, "".join(ln + "\n" for ln in kept))

    def save_checkpoint():
        tree = {"params": trainer.params, "opt_state": trainer.opt_state, "best_params": best_params,
                "meta": {k: np.asarray(v) for k, v in state.items()}}
        rd.save_state(out_dir / "checkpoints" / f"step_{state['step']:08d}", tree)
        for old in _checkpoints(out_dir)[:-max(o.keep_checkpoints, 1)]:
            shutil.rmtree(old, ignore_errors=True)

    log = open(metrics_path, "a") if lead else None
    bar = tqdm(total=o.steps, initial=state["step"], desc=f"train {out_dir.name}", disable=not (progress and lead),
               unit="step")
    done_here = 0
    try:
        while state["step"] < o.steps and not state["stopped"]:
            if stop_after is not None and done_here >= stop_after:
                return out_dir
            s = state["step"]
            lr = lr_at(cfg, s, state["lr_scale"])
            t0 = time.perf_counter()
            loss, parts = trainer.step(trainer.draw(train_data, s), s, lr)
            state["step"] = s + 1
            done_here += 1
            if not np.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {s}; lower train.lr")
            rec = {"step": state["step"], "loss": loss, **parts, "lr": lr, "step_s": time.perf_counter() - t0}
            if state["step"] % o.eval_every == 0 or state["step"] == o.steps:
                score = trainer.validation_corr(val_data) if val_data else -loss
                rec["val_corr"] = score
                if score > state["best_score"] + 1e-6:
                    state.update(best_score=score, best_step=state["step"], bad=0, plateau_bad=0)
                    best_params = jax.tree_util.tree_map(lambda x: x.copy(), trainer.params)
                else:
                    state["bad"] += 1
                    state["plateau_bad"] += 1
                    if o.schedule == "plateau" and state["plateau_bad"] >= o.plateau_patience:
                        state["lr_scale"] *= o.plateau_factor
                        state["plateau_bad"] = 0
                if state["bad"] >= o.early_stop_patience or state["lr_scale"] < o.min_lr_scale:
                    state["stopped"] = 1
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", val=f"{state['best_score']:.3f}")
            if state["step"] % o.checkpoint_every == 0 or state["stopped"] or state["step"] == o.steps:
                save_checkpoint()
    finally:
        bar.close()
        if log:
            log.close()

    if lead:
        final = trainer.model_of(best_params)
        if cfg.refit.enabled:
            extra = {**extra, "refit": _refit(trainer, final, train_data, val_data, metas, out_dir, progress)}
        _write_model(out_dir, final, cfg, model_cfg, metas, state, paths, extra,
                     feature_sd=channel_sd(final, train_data, cfg.train.burn_in))
    return out_dir


def channel_sd(model, data: dict, burn_in: int, trials: int = 8, chunk: int = 4) -> list[float]:
    """Each core channel's standard deviation over space and time (after ``burn_in``) on the first
    ``trials`` training trials of every scan: the scale that makes readout feature weights
    comparable across channels (:meth:`twin.model.response.TwinResponseModel.readout_features`).
    Deterministic; a few core passes."""
    import jax
    from flax import nnx

    graphdef, state = nnx.split(model)       # parameters as arguments, not constants baked into the jit
    feats = jax.jit(lambda st, x: nnx.merge(graphdef, st).features(x))
    n, s, s2 = 0.0, 0.0, 0.0
    for d in data.values():
        for i in range(0, min(trials, d.stimulus.shape[0]), chunk):
            x = d.stimulus[i:min(trials, i + chunk)].astype(np.float32)
            f = np.asarray(feats(state, x), np.float64)[:, burn_in:]
            f = f.reshape(-1, f.shape[-1])
            n, s, s2 = n + len(f), s + f.sum(0), s2 + (f ** 2).sum(0)
    var = np.maximum(s2 / max(n, 1.0) - (s / max(n, 1.0)) ** 2, 0.0)
    return [round(float(v), 6) for v in np.sqrt(var)]


def _refit(trainer: Trainer, model, train_data: dict, val_data: dict, metas: dict, out_dir: Path,
           progress: bool) -> dict:
    """Refit ``model``'s readouts in place (``[refit]``, :mod:`twin.train.refit`); write each
    neuron's chosen penalty to ``refit.parquet``; return a summary for model.json."""
    import jax
    from flax import nnx

    from twin.train.refit import refit_readouts

    def val_corr():
        params = nnx.to_pure_dict(nnx.split(model, nnx.Param, ...)[1])
        return trainer.validation_corr(val_data, jax.device_put(params, trainer.replicated)) if val_data else None

    t0 = time.perf_counter()
    before = val_corr()
    table = refit_readouts(model, train_data, trainer.cfg.train.burn_in, trainer.cfg.refit, progress=progress)
    after = val_corr()
    table.insert(2, "unit_id", np.concatenate([metas[r].units.unit_id.to_numpy()[
        table.unit_index[table.recording_id == r].to_numpy()] for r in table.recording_id.unique()]))
    tmp = out_dir / ".refit.parquet.tmp"
    table.to_parquet(tmp, index=False)
    os.replace(tmp, out_dir / "refit.parquet")
    counts = table.penalty.value_counts().sort_index()
    if progress and before is not None:
        print(f"refit readouts: validation correlation {before:.4f} -> {after:.4f} "
              f"(median penalty {float(table.penalty.median()):g}"
              + (f", median scale {float(table.scale.median()):.2f}" if trainer.cfg.refit.relax_scale else "")
              + f", {time.perf_counter() - t0:.0f} s)")
    info = {"val_corr_before": before, "val_corr_after": after, "seconds": round(time.perf_counter() - t0, 1),
            "penalty_counts": {f"{k:g}": int(v) for k, v in counts.items()}}
    if trainer.cfg.refit.relax_scale:   # each neuron's unpenalised rescaling of its drive
        info["scale_quantiles"] = {f"{q:g}": round(float(table.scale.quantile(q)), 4) for q in (0.1, 0.5, 0.9)}
    return info


def _write_model(out_dir: Path, model, cfg: TrainConfig, model_cfg, metas, state, paths, extra,
                 feature_sd: list[float] | None = None) -> None:
    import pandas as pd
    from flax import nnx

    from twin.provenance import provenance

    _, full = nnx.split(model)
    rd.save_state(out_dir / "params", nnx.to_pure_dict(full))
    units = pd.concat([metas[r].units for r in metas], ignore_index=True)
    tmp = out_dir / ".units.parquet.tmp"
    units.to_parquet(tmp, index=False)
    os.replace(tmp, out_dir / "units.parquet")
    first = next(iter(metas.values()))
    rd.write_json(out_dir / "provenance.json", provenance({**to_dict(cfg), **extra}, [str(p) for p in paths]))
    rd.write_json(out_dir / "model.json", {
        "kind": "single", "finished": True, "model_config": to_dict(model_cfg),
        "scans": [{"recording_id": r, "n_units": int(len(metas[r].units))} for r in metas],
        "frame_rate": first.frame_rate, "image_shape": list(first.image_shape),
        "pixel_size_deg": first.pixel_size_deg, "burn_in": cfg.train.burn_in,
        "best_step": int(state["best_step"]), "best_val_corr": float(state["best_score"]),
        "steps_done": int(state["step"]), "seed": cfg.seed, **extra,
        **({} if feature_sd is None else {"feature_sd": feature_sd}),
    })

"""Pure-JAX access to a ResponseModel's neurons, arranged so each model pass serves many neurons.

Every in-silico experiment runs through :func:`plans`: a :class:`Plan` is a pure function
``fn(params_g, stimulus (B, T, H, W)) -> (B, T, n_cols)`` plus parameters stacked over ``G``
groups (leading axis) and ``rows`` (G, n_cols): the unit-table row each output column answers
(-1 = padding). Jitted computations take the parameters as arguments, so one compilation per
input shape serves every group, batch, scan and ensemble member.

Fast paths, chosen by what the model is (anything else goes through the protocol):

* **trained twins** (``twin.model``: single or ensemble): one core pass per stimulus serves the
  readouts of every scan; ensemble members are unrolled over their stacked parameters in one
  trace (the ensemble mean). Shared stimuli: one plan, one group of every unit of every scan.
  Per-neuron inputs (``mode="unit"``): one plan per scan whose ``fn_cols`` runs only the wanted
  neurons' readouts (:meth:`twin.model.TwinModel.readout_units`), so an MEI step costs one core
  pass and one readout per image whatever the scan's size.
* **the simulator's planted neurons** (``twin.simulate.TruthModel``): neurons are independent
  functions of the stimulus, so a group is any subset of neurons of any scans (each scan's
  typical behaviour folded into a per-neuron gain). Shared stimuli use one group of every unit;
  per-neuron inputs (``mode="unit"``: MEIs, VEIs, gradients) use groups of ``chunk`` neurons
  (textured = bipartite neurons kept apart so all groups of a family share shapes), so the cost
  grows with images x chunk, not images x scan size. With ``response="observed"`` each group's
  rates go through the expected observation (per-neuron noise, so groups stay independent).
* **any other ResponseModel**: one plan per scan through ``model.predict``.

Per-neuron work is done in *waves* (:func:`waves`): ``W`` groups x ``m`` columns at a time, of a
fixed shape per plan (the last one padded), each column with its own ``k`` inputs.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from twin.errors import InputError
from twin.insilico.common import by_scan


@dataclass
class Plan:
    """``fn(params_g, stimulus) -> (B, T, n_cols)``; ``params`` stacked over groups (leading
    axis G); ``rows`` (G, n_cols) unit-table rows of the columns (-1 = padding)."""

    fn: Callable
    params: Any
    rows: np.ndarray
    name: str
    cache: dict = field(default_factory=dict)
    # optional fn_cols(params_g, stimulus (B, T, H, W), cols (B, M)) -> (B, T, M): clip b's
    # response in columns cols[b] only (see :meth:`columns`)
    fn_cols: Callable | None = None

    def columns(self) -> Callable:
        """``f(params_g, stimulus (B, T, H, W), cols (B, M) int) -> (B, T, M)``: columns
        ``cols[b]`` of clip ``b``'s response. The plan's own ``fn_cols`` where it has one (a
        trained twin reads only those neurons), else ``fn`` gathered."""
        if self.fn_cols is not None:
            return self.fn_cols
        import jax.numpy as jnp

        fn = self.fn
        return lambda p, x, cols: jnp.take_along_axis(fn(p, x), cols[:, None, :], axis=2)

    @property
    def n_groups(self) -> int:
        return int(self.rows.shape[0])

    def take(self, groups) -> Any:
        """Parameters of ``groups`` (int or int array; stacked when an array), on the device."""
        import jax

        return jax.device_put(jax.tree.map(lambda a: a[groups], self.params), jax.devices()[0])

    def jit(self, key, build: Callable[[], Callable]) -> Callable:
        """A jitted function built once per plan and ``key`` (``build()`` -> the function)."""
        import jax

        if key not in self.cache:
            self.cache[key] = jax.jit(build())
        return self.cache[key]


def _stack(trees: list) -> Any:
    """Leaves stacked on a new leading axis, as host (NumPy) arrays: slicing groups costs no
    compilation; :meth:`Plan.take` moves the slices to the device."""
    import jax

    return jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *trees)


# ---------------------------------------------------------------- trained twins
# How a trained twin answers per-neuron inputs (``plans(..., "unit")``): "wanted" runs only the
# wanted neurons' readouts (one plan per scan with ``fn_cols``); "all" runs every neuron's and
# gathers (one plan of every unit, as before 2026-12-06; kept so benchmarks/insilico_scaling.py
# can compare the two in one run).
UNIT_READOUT = "wanted"

def _twin_nets(model) -> list | None:
    """The nnx networks of a trained twin (single: [net]; ensemble: the members') or None."""
    members = getattr(model, "members", None)
    ms = list(members) if members is not None else [model]
    nets = []
    for m in ms:
        net = getattr(m, "model", None)
        if net is None or not callable(getattr(net, "features", None)) or not callable(getattr(net, "readout", None)):
            return None
        nets.append(net)
    return nets


def _twin_plan(model, units: pd.DataFrame, mode: str = "stimulus") -> list[Plan] | None:
    """One plan of every unit (``"stimulus"`` mode), or one per scan whose ``fn_cols`` reads only
    the wanted neurons' readouts (``"unit"`` mode: an input made for one neuron then costs one
    core pass and one readout, however many neurons the scan has)."""
    nets = _twin_nets(model)
    if not nets:
        return None
    import jax
    import jax.numpy as jnp
    from flax import nnx

    gds, states = zip(*(nnx.split(n) for n in nets))
    gd = gds[0]
    try:
        if any(g != gd for g in gds[1:]):
            return None
        stacked = _stack([_stack(list(states))])          # (1 group, members, ...)
    except (TypeError, ValueError):
        return None

    def members(params, one):
        # members one after the other in one trace (not vmap: on XLA CPU the vmapped core ran
        # 1.7x slower for a 3-member ensemble, 4.7 s vs 2.7 s per 8 x 60-frame batch, at the
        # same memory); their mean
        n = jax.tree.leaves(params)[0].shape[0]
        return sum(one(nnx.merge(gd, jax.tree.map(lambda a, i=i: a[i], params))) for i in range(n)) / n

    def plan(sel: list, rows: np.ndarray, name: str) -> Plan:
        def fn(params, x):
            def one(net):
                f = net.features(x)
                return jnp.concatenate([net.readout(f, rid)[..., idx] for rid, idx in sel], -1)

            return members(params, one)

        fn_cols = None
        if len(sel) == 1:
            rid, idx = sel[0]
            index = jnp.asarray(idx, jnp.int32)        # plan column -> the scan's readout neuron

            def fn_cols(params, x, cols):
                return members(params, lambda net: net.readout_units(net.features(x), rid, index[cols]))

        return Plan(fn, stacked, rows[None].astype(np.int64), name, fn_cols=fn_cols)

    if UNIT_READOUT not in ("wanted", "all"):
        raise ValueError(f"engine.UNIT_READOUT must be 'wanted' or 'all', got {UNIT_READOUT!r}")
    scans = list(by_scan(units))
    if mode == "unit" and UNIT_READOUT == "wanted":
        return [plan([(rid, np.asarray(idx))], rows, f"twin {rid}") for rid, rows, idx in scans]
    return [plan([(rid, np.asarray(idx)) for rid, _, idx in scans],
                 np.concatenate([rows for _, rows, _ in scans]), "twin")]


# ---------------------------------------------------------------- planted neurons
def _truth_parts(model):
    try:
        from twin.simulate import neurons
        from twin.simulate.truth import TruthModel
    except ImportError:  # pragma: no cover - simulator absent
        return None
    if not isinstance(model, TruthModel):
        return None
    return neurons


def _truth_plan(model, units: pd.DataFrame, mode: str, chunk: int) -> list[Plan] | None:
    """Planted neurons as parameter sets (see the module docstring); one plan per family."""
    neurons = _truth_parts(model)
    if neurons is None:
        return None
    import jax.numpy as jnp

    beh = model._beh
    pm, psd = float(beh["pupil_mean_px"]), float(beh["pupil_sd_px"])
    frames = []
    for rid, rows, idx in by_scan(units):
        t = model.units(rid).iloc[idx].copy()
        d = model._default.get(rid, {"running": 0.0, "pupil": pm})
        g = neurons.gain({"beta_running": jnp.asarray(t.beta_running.to_numpy(np.float32)),
                          "beta_pupil": jnp.asarray(t.beta_pupil.to_numpy(np.float32))},
                         jnp.full((1, 1), float(d["running"]), jnp.float32),
                         jnp.full((1, 1), float(d["pupil"]), jnp.float32), pm, psd)
        t["_gain"] = np.asarray(g, np.float32).reshape(-1)
        t["_row"] = rows
        frames.append(t)
    table = pd.concat(frames, ignore_index=True)

    def build(t: pd.DataFrame) -> dict:
        p = neurons.build_params(t, model.image_shape, model.pixel_size_deg, model.frame_rate)
        p = {k: np.asarray(v) for k, v in p.items()}
        p["_gain"] = t["_gain"].to_numpy(np.float32)
        return p

    def fn(p, x):
        b, t = x.shape[:2]
        r = neurons.respond(p, x, jnp.zeros((b, t), jnp.float32), jnp.full((b, t), pm, jnp.float32), None, pm, psd)
        return model.observe(r * p["_gain"], p["noise_sd"])     # rates, or their expected observation

    if mode == "stimulus":
        return [Plan(fn, _stack([build(table)]), table["_row"].to_numpy(np.int64)[None], "truth")]
    out = []
    textured = table.texture_weight.to_numpy() > 0
    for fam in (False, True):
        t = table[textured == fam]
        if not len(t):
            continue
        c = max(1, min(int(chunk), len(t)))
        parts, rows = [], []
        for s in range(0, len(t), c):
            part = t.iloc[s:s + c]
            r = part["_row"].to_numpy(np.int64)
            if len(part) < c:   # pad with copies of the chunk's first neuron (ignored columns)
                part = pd.concat([part] + [part.iloc[:1]] * (c - len(part)), ignore_index=True)
                r = np.concatenate([r, -np.ones(c - len(r), np.int64)])
            parts.append(build(part))
            rows.append(r)
        out.append(Plan(fn, _stack(parts), np.stack(rows), f"truth-{'textured' if fam else 'plain'}"))
    return out


# ---------------------------------------------------------------- any ResponseModel
def _generic_plans(model, units: pd.DataFrame) -> list[Plan]:
    import jax.numpy as jnp

    out = []
    for rid, rows, idx in by_scan(units):
        # build any lazily cached model state outside a trace (it must not capture tracers)
        h, w = model.image_shape
        model.predict(jnp.full((1, int(model.burn_in) + 1, h, w), 127.5, jnp.float32), rid)
        ix = np.asarray(idx)

        def fn(p, x, rid=rid, ix=ix):
            return model.predict(x, rid)[..., ix]

        out.append(Plan(fn, np.zeros((1,), np.float32), np.asarray(rows, np.int64)[None], f"scan {rid}"))
    return out


def plans(model, units: pd.DataFrame, mode: str = "stimulus", chunk: int = 1) -> list[Plan]:
    """Plans answering for every row of ``units`` (:func:`twin.insilico.common.unit_table`).

    Args:
      mode: ``"stimulus"`` (the same stimuli for every neuron: fewest model passes) or
        ``"unit"`` (per-neuron inputs: small groups where neurons are independent).
      chunk: neurons per group in ``"unit"`` mode for models whose cost grows with neurons.
    """
    if mode not in ("stimulus", "unit"):
        raise ValueError(f"mode must be 'stimulus' or 'unit', got {mode!r}")
    if not len(units):
        raise InputError(None, "units", "at least one neuron", 0)
    # cached per model and unit selection, so jitted functions (Plan.jit) are reused across
    # the experiments of a battery
    key = (mode, (int(chunk), UNIT_READOUT) if mode == "unit" else 0,
           hash(tuple(zip(units["recording_id"].astype(str), units["index"].astype(int)))))
    try:
        per_model = _PLANS.setdefault(model, {})
    except TypeError:   # not weak-referenceable: no cache
        per_model = {}
    if key not in per_model:
        p = _twin_plan(model, units, mode)
        if p is not None:
            per_model[key] = p
        else:
            t = _truth_plan(model, units, mode, chunk)
            per_model[key] = t if t is not None else _generic_plans(model, units)
    return per_model[key]


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------- shared stimuli
def iter_responses(model, units: pd.DataFrame, stimuli: np.ndarray, batch: int = 16,
                   plan_list: list[Plan] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_clip, responses (b, T, n_units))`` float32 over ``stimuli`` (n, T, H, W)
    grey levels, in fixed-size batches (the last padded: one compilation), columns in the order
    of ``units``; every plan/group answers from the same batch."""
    import jax.numpy as jnp

    if stimuli.ndim != 4 or tuple(stimuli.shape[2:]) != tuple(model.image_shape):
        raise InputError(None, "stimulus", f"(clips, time, {model.image_shape[0]}, {model.image_shape[1]})",
                         stimuli.shape)
    pl = plans(model, units, "stimulus") if plan_list is None else plan_list
    n = len(stimuli)
    batch = max(1, min(int(batch), n))
    params: dict = {}
    for s in range(0, n, batch):
        chunk = np.asarray(stimuli[s:s + batch], np.float32)
        pad = batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        x = jnp.asarray(chunk)
        out = np.zeros((batch - pad, chunk.shape[1], len(units)), np.float32)
        for i, p in enumerate(pl):
            f = p.jit("forward", lambda p=p: p.fn)
            for g in range(p.n_groups):
                if (i, g) not in params:
                    params[(i, g)] = p.take(g)
                r = np.asarray(f(params[(i, g)], x))[:batch - pad]
                ok = p.rows[g] >= 0
                out[..., p.rows[g][ok]] = r[..., ok]
        yield s, out


def predict_all(model, units: pd.DataFrame, stimuli: np.ndarray, batch: int = 16) -> np.ndarray:
    """All of :func:`iter_responses` concatenated: (n_clips, T, n_units) float32."""
    return np.concatenate([r for _, r in iter_responses(model, units, stimuli, batch)])


# ---------------------------------------------------------------- per-neuron inputs
@dataclass
class Wave:
    """``groups`` (W,) of a plan and ``cols`` (W, m) of their outputs; ``rows`` (W, m) the
    unit-table rows (-1 = padding, a copy of a real column)."""

    plan: Plan
    groups: np.ndarray
    cols: np.ndarray
    rows: np.ndarray


def waves(plan: Plan, size: int) -> list[Wave]:
    """Fixed-shape waves of at most ``size`` units over every real column of ``plan``, as few as
    possible and of equal size (the last one padded by at most a few columns)."""
    size = max(1, int(size))
    out = []
    if plan.n_groups == 1:
        valid = np.flatnonzero(plan.rows[0] >= 0)
        m = -(-len(valid) // -(-len(valid) // size))        # balanced: the last wave is (nearly) full
        for s in range(0, len(valid), m):
            c = valid[s:s + m]
            r = plan.rows[0][c]
            if len(c) < m:
                r = np.concatenate([r, -np.ones(m - len(c), np.int64)])
                c = np.concatenate([c, np.repeat(c[-1:], m - len(c))])
            out.append(Wave(plan, np.zeros(1, np.int64), c[None], r[None]))
        return out
    m = plan.rows.shape[1]
    w = max(1, min(size // m, plan.n_groups))
    w = -(-plan.n_groups // -(-plan.n_groups // w))
    for s in range(0, plan.n_groups, w):
        g = np.arange(s, min(s + w, plan.n_groups))
        r = plan.rows[g]
        if len(g) < w:
            r = np.concatenate([r, -np.ones((w - len(g), m), np.int64)])
            g = np.concatenate([g, np.repeat(g[-1:], w - len(g))])
        out.append(Wave(plan, g, np.tile(np.arange(m), (w, 1)), r))
    return out


def unit_waves(model, units: pd.DataFrame, size: int, chunk: int = 1) -> list[Wave]:
    """Every unit of ``units`` once, in waves of about ``size`` units (``"unit"``-mode plans)."""
    return [w for p in plans(model, units, "unit", chunk) for w in waves(p, size)]


def own_response_fn(plan: Plan, burn_in: int, n_frames: int) -> Callable:
    """``f(params (W,...), cols (W, M), c (W, M, H, W) contrast) -> (W, M)``: mean scored rate of
    column ``cols[w, i]`` of group ``w`` to the static image ``c[w, i]`` shown ``n_frames`` frames."""
    import jax
    import jax.numpy as jnp

    b = int(burn_in)
    fc = plan.columns()

    def one(p, cols, c):
        clip = jnp.broadcast_to((c + 127.5)[:, None], (c.shape[0], n_frames) + c.shape[1:])
        return fc(p, clip, cols[:, None])[:, b:, 0].mean(1)

    return jax.vmap(one)


def own_responses(model, units: pd.DataFrame, images, n_frames: int, batch: int = 64, chunk: int = 1,
                  k: int | None = None) -> np.ndarray:
    """Mean scored rate of each unit to its own static images.

    Args:
      images: (n_units, k, H, W) grey levels (``images[u]`` are unit row ``u``'s images), or a
        function ``rows (r,) -> (r, k, H, W)`` making them on demand (then pass ``k``).
      n_frames: clip length (burn-in included; see :func:`twin.insilico.common.static_frames`).
      batch: images per model call (about).
    Returns:
      (n_units, k) float64.
    """
    import jax.numpy as jnp

    from twin.insilico.common import static_frames

    make = images if callable(images) else (lambda rows: np.asarray(images)[rows])
    k = int(images.shape[1]) if k is None else int(k)
    n = len(units)
    T = static_frames(model, n_frames)
    out = np.zeros((n, k))
    for wv in unit_waves(model, units, max(1, batch // k), chunk):
        f = wv.plan.jit(("own", T), lambda p=wv.plan: own_response_fn(p, model.burn_in, T))
        rows = np.where(wv.rows >= 0, wv.rows, _first_valid(wv.rows))
        W, m = rows.shape
        c = np.asarray(make(rows.reshape(-1)), np.float32) - 127.5        # (W*m, k, H, W)
        cols = np.repeat(wv.cols, k, axis=1)
        r = np.asarray(f(wv.plan.take(wv.groups), jnp.asarray(cols),
                         jnp.asarray(c.reshape((W, m * k) + c.shape[2:]))))
        r = r.reshape(W, m, k)
        ok = wv.rows >= 0
        out[wv.rows[ok]] = r[ok]
    return out


def _first_valid(rows: np.ndarray) -> int:
    v = rows[rows >= 0]
    return int(v[0]) if len(v) else 0

"""The fast paths of twin.insilico.engine answer exactly as model.predict, and compile once."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def twin2():
    from twin.insilico.testing import random_twin

    return random_twin((5, 7), seed=1, image_shape=(12, 16), burn_in=2)


def _clips(model, n=3, t=5, seed=0):
    h, w = model.image_shape
    return np.random.default_rng(seed).uniform(0, 255, (n, t, h, w)).astype(np.float32)


def test_twin_one_core_pass_answers_every_scan_as_predict(twin2):
    from twin.insilico.common import unit_table
    from twin.insilico.engine import plans, predict_all

    units = unit_table(twin2, twin2.recording_ids())
    assert len(plans(twin2, units)) == 1                       # one plan: the shared core
    x = _clips(twin2)
    got = predict_all(twin2, units, x, batch=2)
    ref = np.concatenate([np.asarray(twin2.predict(x, r)) for r in twin2.recording_ids()], -1)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    sub = units.iloc[[1, 6, 9]].reset_index(drop=True)      # a subset across scans, in table order
    np.testing.assert_allclose(predict_all(twin2, sub, x), ref[..., [1, 6, 9]], rtol=1e-5, atol=1e-6)


def test_ensemble_members_vmapped_give_the_ensemble_mean():
    from twin.insilico.common import unit_table
    from twin.insilico.engine import predict_all
    from twin.insilico.testing import random_twin
    from twin.model.response import EnsembleResponseModel

    ens = EnsembleResponseModel([random_twin(4, seed=s, image_shape=(12, 16), burn_in=2) for s in (0, 1)])
    units = unit_table(ens, ens.recording_ids())
    x = _clips(ens)
    np.testing.assert_allclose(predict_all(ens, units, x), np.asarray(ens.predict(x, ens.recording_ids()[0])),
                               rtol=1e-5, atol=1e-6)


def test_own_responses_match_predict_on_static_clips(twin2, fake, fake_units):
    from twin.insilico.common import unit_table
    from twin.insilico.engine import own_responses

    for model, units in ((twin2, unit_table(twin2, twin2.recording_ids())), (fake, fake_units)):
        h, w = model.image_shape
        imgs = np.random.default_rng(2).uniform(0, 255, (len(units), 2, h, w)).astype(np.float32)
        got = own_responses(model, units, imgs, n_frames=6, batch=6)
        for row in (0, len(units) // 2, len(units) - 1):
            rid, ix = units["recording_id"][row], units["index"][row]
            clip = np.broadcast_to(imgs[row][:, None], (2, 6, h, w))
            ref = np.asarray(model.predict(clip, rid))[:, model.burn_in:, ix].mean(1)
            np.testing.assert_allclose(got[row], ref, rtol=1e-4, atol=1e-6)


def test_waves_are_balanced_and_cover_every_unit_once(twin2):
    from twin.insilico.common import unit_table
    from twin.insilico.engine import plans, waves

    units = unit_table(twin2, twin2.recording_ids())
    ps = plans(twin2, units, "unit")
    assert [p.rows.shape for p in ps] == [(1, 5), (1, 7)]     # per-neuron inputs: a plan per scan
    ws = [waves(p, 4) for p in ps]
    assert [[w.cols.shape for w in pw] for pw in ws] == [[(1, 3), (1, 3)], [(1, 4), (1, 4)]]
    rows = np.concatenate([w.rows[w.rows >= 0] for pw in ws for w in pw])
    assert sorted(rows) == list(range(12))
    shared = plans(twin2, units, "stimulus")[0]                # shared stimuli: one plan of all
    big = waves(shared, 8)
    assert [w.cols.shape for w in big] == [(1, 6), (1, 6)]     # 12 units in waves of <= 8: 2 x 6
    assert sorted(np.concatenate([w.rows[w.rows >= 0] for w in big])) == list(range(12))


def _output_shapes(jaxpr):
    """Shapes of every value a jaxpr computes, nested jaxprs (jit, vmap bodies) included."""
    for e in jaxpr.eqns:
        for v in e.outvars:
            yield tuple(getattr(v.aval, "shape", ()))
        for val in e.params.values():
            for sub in (val if isinstance(val, (list, tuple)) else [val]):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    yield from _output_shapes(sub)


def test_twin_unit_plans_compute_no_readout_of_the_whole_scan():
    """The point of ``fn_cols``: an input made for one neuron computes no (.., n_scan) readout
    value, where the full readout gathered afterwards computes many."""
    import jax
    import jax.numpy as jnp

    from twin.insilico.common import unit_table
    from twin.insilico.engine import Plan, plans
    from twin.insilico.testing import random_twin

    m = random_twin((37, 5), seed=0, image_shape=(12, 16), burn_in=2)     # 37: no other axis has it
    p = plans(m, unit_table(m, m.recording_ids()), "unit")[0]
    assert p.rows.shape == (1, 37)
    args = (p.take(0), jnp.zeros((3, 4, 12, 16), jnp.float32), jnp.zeros((3, 2), jnp.int32))

    def scan_wide(f):
        return [s for s in _output_shapes(jax.make_jaxpr(f)(*args).jaxpr) if len(s) >= 3 and s[-1] == 37]

    assert scan_wide(p.columns()) == []
    assert len(scan_wide(Plan(p.fn, p.params, p.rows, p.name).columns())) > 0     # the gathered path


@pytest.mark.parametrize("members", [1, 2])
def test_twin_unit_plans_read_only_the_wanted_neurons_as_the_full_readout(members):
    """A per-neuron input's response through ``fn_cols`` (only the wanted neurons' readouts) is
    the full readout's column, for single twins and ensembles, for any neuron in any clip."""
    import jax.numpy as jnp

    from twin.insilico.common import unit_table
    from twin.insilico.engine import plans
    from twin.insilico.testing import random_twin
    from twin.model.response import EnsembleResponseModel

    tw = [random_twin((5, 7), seed=s, image_shape=(12, 16), burn_in=2) for s in range(members)]
    model = tw[0] if members == 1 else EnsembleResponseModel(tw)
    units = unit_table(model, model.recording_ids())
    x = jnp.asarray(_clips(model, n=3))
    for p in plans(model, units, "unit"):
        assert p.fn_cols is not None
        n = p.rows.shape[1]
        cols = np.array([[0, n - 1], [n - 1, n - 1], [n // 2, 1]])
        P = p.take(0)
        got = np.asarray(p.columns()(P, x, jnp.asarray(cols)))
        ref = np.take_along_axis(np.asarray(p.fn(P, x)), cols[:, None, :], axis=2)
        assert got.shape == (3, x.shape[1], 2)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
        # the columns are the scan's neurons in the unit table's order
        rid = units["recording_id"][p.rows[0, 0]]
        full = np.asarray(model.predict(np.asarray(x), rid))
        ix = units["index"].to_numpy()[p.rows[0][cols[:, 0]]]
        np.testing.assert_allclose(got[:, :, 0], full[np.arange(3), :, ix], rtol=1e-5, atol=1e-6)


def test_mei_ascent_compiles_its_step_once_for_all_waves():
    from twin.insilico.common import unit_table
    from twin.insilico.config import MEIConfig
    from twin.insilico.engine import plans
    from twin.insilico.mei import compute_meis
    from twin.insilico.testing import GaborPopulation

    fake = GaborPopulation(n=12, seed=0)
    fake_units = unit_table(fake, fake.recording_ids())
    compute_meis(fake, fake_units, MEIConfig(n_steps=3, unit_batch=5, n_frames=6), 0)   # 3 waves of 4
    plan = plans(fake, fake_units, "unit")[0]
    steps = [f for k, f in plan.cache.items() if k[0] == "mei"]
    assert len(steps) == 1 and steps[0]._cache_size() == 1


def test_meis_do_not_depend_on_how_many_neurons_are_optimised_together(twin2):
    """Each neuron's MEI is its own ascent from its own seeded start: the wave size
    (``mei.unit_batch``, 8 in the demo battery for memory) changes nothing but cost."""
    from twin.insilico.common import unit_table
    from twin.insilico.config import MEIConfig
    from twin.insilico.mei import compute_meis

    units = unit_table(twin2, twin2.recording_ids())
    a = compute_meis(twin2, units, MEIConfig(n_steps=4, unit_batch=12, n_frames=4), 3)
    b = compute_meis(twin2, units, MEIConfig(n_steps=4, unit_batch=3, n_frames=4), 3)
    assert np.ptp(a) > 1.0                                   # the ascent moved the images
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)


class LazyGabor:
    """A ResponseModel that builds its parameters on first use (as the simulator's TruthModel):
    first used inside a jit trace, such a cache would capture tracers."""

    def __init__(self, inner):
        self.inner = inner
        self.frame_rate, self.image_shape = inner.frame_rate, inner.image_shape
        self.pixel_size_deg, self.burn_in = inner.pixel_size_deg, inner.burn_in
        self._w = None

    def recording_ids(self):
        return self.inner.recording_ids()

    def units(self, rid):
        return self.inner.units(rid)

    def predict(self, stimulus, rid, behaviour=None):
        import jax.numpy as jnp

        if self._w is None:
            self._w = jnp.asarray(self.inner.filters[0].reshape(len(self.inner.kind), -1).T, jnp.float32)
        c = (jnp.asarray(stimulus, jnp.float32) - 127.5) / 127.5
        return 0.02 + jnp.maximum(c.reshape(c.shape[0], c.shape[1], -1) @ self._w, 0)


def test_lazily_built_model_state_is_not_captured_under_jit(fake, fake_units):
    from twin.insilico.config import MEIConfig
    from twin.insilico.mei import run_mei

    out = run_mei(LazyGabor(fake), fake_units, MEIConfig(n_steps=4, n_frames=6, n_random=2), 0)
    assert np.isfinite(out["mei_response"].values).all()


def test_mei_max_units_limits_mei_vei_and_bipartite_to_the_first_units(fake, fake_units):
    from twin.insilico.config import BipartiteConfig, MEIConfig, VEIConfig
    from twin.insilico.invariance import run_bipartite
    from twin.insilico.mei import run_mei, run_vei

    mc = MEIConfig(n_steps=6, n_frames=6, n_random=2, max_units=3)
    mei = run_mei(fake, fake_units, mc, 0)
    has = mei["has_mei"].values
    assert has.sum() == 3 and has[:3].all()
    assert np.isfinite(mei["mei_response"].values[has]).all() and np.isnan(mei["mei_response"].values[~has]).all()
    assert np.isfinite(mei["random_response"].values).all()
    v = run_vei(fake, fake_units, mei, mc, VEIConfig(k=2, n_steps=3), 0)
    assert np.isnan(v["vei_response"].values[~has]).all() and np.isfinite(v["vei_response"].values[has]).all()
    b = run_bipartite(fake, fake_units, mei, mc, BipartiteConfig(n_sizes=3, n_textures=1, n_sweep_directions=2), 0)
    assert np.isnan(b["bipartite_curve"].values[~has]).all()
    assert np.allclose(b["bipartite_curve"].values[has, 0], 1.0)


def test_simple_cells_meis_are_not_stuck_at_the_wrong_polarity():
    """Planted rectified (simple) cells: from a near-grey start half of them would climb on the
    wrong sign, where their gradient vanishes; the polarity check recovers them."""
    from twin.insilico.common import unit_table
    from twin.insilico.config import MEIConfig
    from twin.insilico.mei import run_mei
    from twin.insilico.testing import GaborPopulation

    m = GaborPopulation(n=16, seed=4, kinds=np.zeros(16, int))
    u = unit_table(m, m.recording_ids())
    out = run_mei(m, u, MEIConfig(n_steps=12, n_frames=6, n_random=4), 0)
    assert np.all(out["mei_response"].values > 3 * out["random_response"].values)


def test_separable_blur_equals_the_2d_gaussian_convolution():
    import jax
    import jax.numpy as jnp

    from twin.insilico.mei import _blur, _blur_matrix

    k1 = np.exp(-np.arange(-3, 4) ** 2 / 2.0)
    k = np.outer(k1, k1)
    k /= k.sum()
    g = np.random.default_rng(0).standard_normal((3, 9, 13)).astype(np.float32)
    ref = jax.lax.conv_general_dilated(jnp.asarray(g)[:, None], jnp.asarray(k, jnp.float32)[None, None], (1, 1),
                                       "SAME")[:, 0]
    got = _blur(jnp.asarray(g), (jnp.asarray(_blur_matrix(9, 1.0)), jnp.asarray(_blur_matrix(13, 1.0))))
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-5)

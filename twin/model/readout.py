"""Per-scan modules: Gaussian readout, eye-position shifter and behaviour modulator.

Grid convention: a readout position is ``(x, y)`` in ``[-1, 1]^2`` over the core's feature map,
which has the stimulus' pixel grid (x = -1 is the centre of the left pixel column, x = 1 of the
right one; y = -1 is the top row, y = 1 the bottom row).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from twin.model.config import ModelConfig
from twin.model.core import init_param

BEHAVIOUR_KEYS = ("running", "pupil", "eye_x", "eye_y")


class Const(nnx.Variable):
    """A stored, non-trained array (normalisation statistics, cortical coordinates)."""


def _corner_pixels(grid: jax.Array, h: int, w: int) -> tuple[jax.Array, jax.Array]:
    """The four bilinear corners of positions ``grid`` (..., 2) = (x, y) in [-1, 1] (clamped to
    the border) on an h x w map as flat pixel indices (..., 4) and their weights (..., 4)."""
    px = (jnp.clip(grid[..., 0], -1, 1) + 1) * 0.5 * (w - 1)
    py = (jnp.clip(grid[..., 1], -1, 1) + 1) * 0.5 * (h - 1)
    x0 = jnp.clip(jnp.floor(px), 0, max(w - 2, 0))
    y0 = jnp.clip(jnp.floor(py), 0, max(h - 2, 0))
    fx, fy = px - x0, py - y0
    x0i, y0i = x0.astype(jnp.int32), y0.astype(jnp.int32)
    x1i, y1i = jnp.minimum(x0i + 1, w - 1), jnp.minimum(y0i + 1, h - 1)
    pix = jnp.stack([y0i * w + x0i, y0i * w + x1i, y1i * w + x0i, y1i * w + x1i], -1)
    wts = jnp.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)
    return pix, wts


def bilinear_sample(features: jax.Array, grid: jax.Array) -> jax.Array:
    """Sample ``features`` (M, H, W, C) at ``grid`` (M, N, 2) positions ``(x, y)`` in [-1, 1]
    (clamped to the border). Returns (M, N, C). One gather of the four neighbouring rows of the
    flattened map (faster on CPU than four gathers: 1.4 s vs 2.0 s forward+backward for 8000
    neurons on 128 frames of 36x64x64)."""
    m, h, w, c = features.shape
    flat = features.reshape(m * h * w, c)
    pix, wts = _corner_pixels(grid, h, w)                                                 # (M, N, 4)
    idx = pix + (jnp.arange(m, dtype=jnp.int32) * (h * w))[:, None, None]
    v = flat.at[idx].get(mode="promise_in_bounds")                                        # (M, N, 4, C)
    return jnp.einsum("mnkc,mnk->mnc", v, wts)


# Gaussian pooling reads each neuron's K points either from the feature map projected on every
# neuron's feature vector (frames x H x W x N floats, then K x 4 scalar gathers per neuron) or by
# sampling every channel (K x 4 x C gathered floats per neuron and frame). "auto" takes the one
# with the smaller intermediate: projecting whenever H x W <= 4 K C, i.e. at every map size the
# twin uses. Measured (2026-12-05, demo twin, 8 clips x 60 frames, 400 readout points x 16):
# compiled temporaries 0.99 GB projected vs 10.7 GB sampled; projecting is also ~2x faster
# forward + backward. ("project" / "sample" force one path; the tests compare them.)
POOL_PATH = "auto"


def pool_by_projection(h: int, w: int, k: int, c: int) -> bool:
    """Whether Gaussian pooling projects the (H, W, C) map on the feature vectors first (see
    ``POOL_PATH``): the projected map per neuron and frame (H W floats) is no larger than the
    gathered corners of sampling every channel (4 K C floats)."""
    if POOL_PATH in ("project", "sample"):
        return POOL_PATH == "project"
    return h * w <= 4 * k * c


def pooled_by_matmul(features: jax.Array, grid: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted sums over groups of ``K = len(weights)`` bilinear samples: ``features`` (M, H, W, C),
    ``grid`` (M, Q K, 2) positions as :func:`bilinear_sample` (each group's K points together).
    Returns (M, Q, C) = ``einsum("mqkc,k->mqc", bilinear_sample(features, grid) reshaped, weights)``.

    Computed as a matmul of the map with each group's (M, Q, H W) pixel weights, scattered from its
    4 K corners: the design of the Gaussian-pooled readout (:meth:`ScanReadout.design`) needs every
    channel at every point, and gathering 4 K C floats per group and frame cost 1.1 s for 4 trials
    of the demo twin (50 frames, 400 groups of 16 points, 96 channels, an 18 x 32 map) against
    0.16 s this way (2026-12-06; the same numbers to float rounding). Cheaper whenever H W <= 4 K C
    (:func:`pool_by_projection`)."""
    m, h, w, c = features.shape
    k = weights.shape[0]
    q = grid.shape[1] // k
    pix, wts = _corner_pixels(grid, h, w)                                               # (M, Q K, 4)
    pix = pix.reshape(m, q, 4 * k)
    wts = (wts.reshape(m, q, k, 4) * weights[None, None, :, None]).reshape(m, q, 4 * k)
    rows = jnp.broadcast_to(jnp.arange(q)[:, None], (q, 4 * k))

    def one(p, v):
        return jnp.zeros((q, h * w), features.dtype).at[rows, p].add(v)

    dense = jax.vmap(one)(pix, wts)                                                     # (M, Q, H W)
    return jnp.einsum("mqp,mpc->mqc", dense, features.reshape(m, h * w, c))


def bilinear_sample_per_unit(maps: jax.Array, grid: jax.Array) -> jax.Array:
    """Sample each unit's own map: ``maps`` (M, H, W, N), ``grid`` (M, N, K, 2) positions ``(x, y)``
    in [-1, 1] (clamped to the border), as :func:`bilinear_sample`. Returns (M, N, K)."""
    m, h, w, n = maps.shape
    flat = maps.reshape(m * h * w * n)
    pix, wts = _corner_pixels(grid, h, w)                                                 # (M, N, K, 4)
    base = (jnp.arange(m, dtype=jnp.int32) * (h * w * n))[:, None, None] + jnp.arange(n, dtype=jnp.int32)[:, None]
    # one gather of the four corners (and so one scatter in the backward pass): forward+backward
    # 60 ms vs 110 ms for four gathers at the demo's size (120 frames of 18 x 32, 400 points x 16;
    # a training run shared the cores)
    idx = pix * n + base[..., None]
    return jnp.sum(flat.at[idx].get(mode="promise_in_bounds") * wts, -1)


class Dense(nnx.Module):
    """y = x W + b with W ~ Normal(0, 1/fan_in) (NumPy init), b = 0."""

    def __init__(self, fan_in: int, fan_out: int, *, rng: np.random.Generator):
        self.kernel = init_param(rng, (fan_in, fan_out), fan_in)
        self.bias = nnx.Param(jnp.zeros((fan_out,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel[...] + self.bias[...]


class MLP(nnx.Module):
    """Dense layers with tanh between them (and on the output if ``out_tanh``)."""

    def __init__(self, sizes: list[int], *, rng: np.random.Generator, out_tanh: bool = False, zero_last: bool = False):
        self.layers = nnx.List([Dense(a, b, rng=rng) for a, b in zip(sizes[:-1], sizes[1:])])
        if zero_last:
            last = self.layers[-1]
            last.kernel[...] = jnp.zeros_like(last.kernel[...])
        self.out_tanh = out_tanh

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1 or self.out_tanh:
                x = jnp.tanh(x)
        return x


class ExtraComponents(nnx.Module):
    """The readout's components beyond the first: positions (N, K, 2) in grid units, position
    covariance factors (N, K, 2, 2) and feature vectors (N, K, C)."""

    def __init__(self, mu: nnx.Param, chol: nnx.Param, features: nnx.Param):
        self.mu, self.chol, self.features = mu, chol, features


class ScanReadout(nnx.Module):
    """Everything specific to one scan: Gaussian readout (+ optional grid predictor), shifter,
    modulator and the scan's behaviour normalisation statistics."""

    def __init__(self, n_units: int, channels: int, cfg: ModelConfig, *, rng: np.random.Generator,
                 behaviour_mean: np.ndarray | None = None, behaviour_std: np.ndarray | None = None,
                 cortical_xyz: np.ndarray | None = None, mean_response: np.ndarray | None = None,
                 init_positions: np.ndarray | None = None):
        rc = cfg.readout
        self.n_units = n_units
        mu = rng.uniform(-rc.init_mu_range, rc.init_mu_range, (n_units, 2))
        if init_positions is not None:
            mu = np.clip(np.asarray(init_positions, float), -1, 1)
        self.mu = nnx.Param(jnp.asarray(mu, jnp.float32))
        self.chol = nnx.Param(jnp.asarray(np.tile(np.eye(2) * rc.init_sigma, (n_units, 1, 1)), jnp.float32))
        self.features = init_param(rng, (n_units, channels), channels)
        if (expected := rc.components_problem()) is not None:
            raise ValueError(f"model.readout.components: expected {expected}, got {rc.components}")
        extra = None
        if rc.components > 1:
            # extra subfields: started one init_sigma from the first position in random directions,
            # with zero features (so they begin as the one-component readout)
            k = rc.components - 1
            ang = rng.uniform(0, 2 * np.pi, (n_units, k))
            start = mu[:, None, :] + rc.init_sigma * np.stack([np.cos(ang), np.sin(ang)], -1)
            extra = ExtraComponents(
                mu=nnx.Param(jnp.asarray(np.clip(start, -1, 1), jnp.float32)),
                chol=nnx.Param(jnp.asarray(np.tile(np.eye(2) * rc.init_sigma, (n_units, k, 1, 1)), jnp.float32)),
                features=nnx.Param(jnp.zeros((n_units, k, channels), jnp.float32)))
        self.extra = extra
        if (expected := rc.surround_problem()) is not None:
            raise ValueError(f"model.readout.surround: expected {expected}, got {rc.surround}")
        # surround: per Gaussian component a feature vector read over the component's Gaussian
        # widened ``surround`` times; zero at the start (the readout begins as without it)
        self.surround = float(rc.surround)
        self.surround_features = (nnx.Param(jnp.zeros((n_units, rc.components, channels), jnp.float32))
                                  if rc.surround else None)
        # bias so that ELU(bias) + 1 starts at the unit's mean response
        mean = np.full(n_units, 1.0) if mean_response is None else np.maximum(mean_response, 1e-3)
        bias = np.where(mean >= 1, mean - 1, np.log(np.maximum(mean, 1e-3)))
        self.bias = nnx.Param(jnp.asarray(bias, jnp.float32))
        self.beh_mean = Const(jnp.asarray(np.zeros(4) if behaviour_mean is None else behaviour_mean, jnp.float32))
        self.beh_std = Const(jnp.asarray(np.ones(4) if behaviour_std is None else behaviour_std, jnp.float32))
        if rc.grid_predictor:
            xyz = np.zeros((n_units, 3)) if cortical_xyz is None else np.asarray(cortical_xyz, float)
            xyz = (xyz - xyz.mean(0)) / (xyz.std(0) + 1e-6)
            self.cortical = Const(jnp.asarray(xyz, jnp.float32))
        self.grid_predictor = (MLP([3, rc.grid_predictor_hidden, rc.grid_predictor_hidden, 2], rng=rng,
                                   out_tanh=True) if rc.grid_predictor else None)
        sc, mc = cfg.shifter, cfg.modulator
        # zero last layer: the shifter starts at identity (no shift), like the modulator's gain 1
        self.shifter = (MLP([2] + [sc.hidden] * (sc.layers - 1) + [2], rng=rng, out_tanh=True, zero_last=True)
                        if sc.enabled else None)
        self.modulator = (MLP([2, mc.hidden, n_units], rng=rng, zero_last=True) if mc.enabled else None)
        if (expected := rc.pooling_problem()) is not None:
            raise ValueError(f"model.readout.pooling: expected {expected}, got {rc.pooling}")
        offsets = weights = None
        if rc.pooling >= 2:
            x, w = np.polynomial.hermite.hermgauss(rc.pooling)      # weight exp(-x^2)
            gx, gy = np.meshgrid(x, x, indexing="xy")
            # standard-normal offsets (sqrt(2) x) and weights summing to 1
            offsets = Const(jnp.asarray(np.sqrt(2.0) * np.stack([gx.ravel(), gy.ravel()], -1), jnp.float32))
            weights = Const(jnp.asarray(np.outer(w, w).ravel() / np.pi, jnp.float32))
        self.pool_offsets, self.pool_weights = offsets, weights
        if (expected := rc.mask_problem()) is not None:
            raise ValueError(f"model.readout.mask: expected {expected}, got {rc.mask}")
        mask = None
        if rc.mask:
            r = np.arange(rc.mask) - rc.mask // 2
            g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * rc.mask_init_sigma ** 2))
            mask = nnx.Param(jnp.asarray(np.tile((g / g.sum()).ravel(), (n_units, 1)), jnp.float32))
        self.mask_weights = mask

    def positions(self) -> jax.Array:
        """Mean readout positions (N, 2) in grid units [-1, 1] (x, y)."""
        if self.grid_predictor is not None:
            return self.grid_predictor(self.cortical[...])
        return jnp.clip(self.mu[...], -1.0, 1.0)

    def covariance_factor(self) -> jax.Array:
        """Lower-triangular factor L (N, 2, 2) of each neuron's position covariance L L^T (with
        ``model.readout.mask`` component 0 reads a weight patch instead and this stays unused)."""
        return jnp.tril(self.chol[...])

    # the module's own parameters with one entry per neuron on axis 0 (besides ``extra``'s and the
    # modulator's output layer)
    _PER_NEURON = frozenset({"mu", "chol", "features", "bias", "surround_features", "mask_weights", "cortical"})

    def select_units(self, idx: jax.Array) -> "ScanReadout":
        """A copy of this readout answering for neurons ``idx`` (M,) only, in that order: every
        per-neuron parameter gathered (the extra components' and the modulator's output columns
        too); the shifter, the modulator's hidden layer and the pooling points shared. Pure, so
        it works under jit and vmap with a traced ``idx``: per-neuron inputs (MEIs, gradients)
        read one neuron instead of the whole scan (:meth:`TwinModel.readout_units`)."""
        gd, st = nnx.split(self)
        last = None if self.modulator is None else len(self.modulator.layers) - 1

        def axis(names: list) -> int | None:
            if names[0] in self._PER_NEURON and len(names) == 2:        # (name, "value")
                return 0
            if names[0] == "extra":
                return 0
            if names[0] == "modulator" and names[2] == last:
                return 1 if names[3] == "kernel" else 0
            return None

        def pick(path, leaf):
            names = [getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path]
            ax = axis(names)
            return leaf if ax is None else jnp.take(leaf, idx, axis=ax)

        sub = nnx.merge(gd, jax.tree_util.tree_map_with_path(pick, st))
        sub.n_units = int(idx.shape[0])
        return sub

    def normalised_behaviour(self, behaviour: dict | None, b: int, t: int) -> jax.Array:
        """(B, T, 4) z-scored [running, pupil, eye_x, eye_y]; zeros (the mean state) if None."""
        if behaviour is None:
            return jnp.zeros((b, t, 4), jnp.float32)
        raw = jnp.concatenate([jnp.asarray(behaviour["running"])[..., None],
                               jnp.asarray(behaviour["pupil"])[..., None],
                               jnp.asarray(behaviour["eye_position"])], axis=-1)
        return (raw - self.beh_mean[...]) / self.beh_std[...]

    def __call__(self, features: jax.Array, behaviour: dict | None = None,
                 key: jax.Array | None = None) -> jax.Array:
        """features (B, T, H, W, C) -> pre-nonlinearity response (B, T, N) and gain (B, T, N).

        With ``key`` the positions are sampled from each neuron's Gaussian (one draw per clip);
        without, the mean positions are used (evaluation)."""
        b, t = features.shape[:2]
        beh = self.normalised_behaviour(behaviour, b, t)
        shift = None if self.shifter is None else self.shifter(beh[..., 2:4])           # (B, T, 2)
        mu, chol, weights = self.positions(), self.covariance_factor(), self.features[...]
        n, c = weights.shape
        # Gaussian components as extra readout points of the same neuron: one projection and one
        # gather for all of them, rows ordered (neuron, component), summed per neuron. Component 0
        # is among them unless it reads a weight patch.
        gauss = [] if self.mask_weights is not None else [(mu[:, None], chol[:, None], weights[:, None])]
        if self.extra is not None:
            gauss.append((jnp.clip(self.extra.mu[...], -1.0, 1.0), jnp.tril(self.extra.chol[...]),
                          self.extra.features[...]))
        out = 0.0 if self.mask_weights is None else self._masked(features, mu, weights, shift)
        if self.surround_features is not None:   # the same Gaussians widened, own feature vectors
            sm, sc = (jnp.concatenate(parts, 1) for parts in list(zip(*gauss))[:2])
            gauss.append((sm, sc * self.surround, self.surround_features[...]))
        if gauss:
            gm, gc, gw = (jnp.concatenate(parts, 1) for parts in zip(*gauss))
            pts = self._component(features, gm.reshape(-1, 2), gc.reshape(-1, 2, 2), gw.reshape(-1, c), shift, key)
            out = out + pts.reshape(b, t, n, -1).sum(-1)
        out = out + self.bias[...]
        gain = jnp.ones_like(out) if self.modulator is None else jax.nn.elu(self.modulator(beh[..., :2])) + 1.0
        return out, gain

    def _component(self, features: jax.Array, mu: jax.Array, chol: jax.Array, weights: jax.Array,
                   shift: jax.Array | None, key: jax.Array | None) -> jax.Array:
        """Gaussian readout points without bias: features (B, T, H, W, C), positions mu (N, 2),
        covariance factors chol (N, 2, 2), feature vectors weights (N, C), the shifter's grid
        shift (B, T, 2) or None -> (B, T, N)."""
        b, t, h, w, c = features.shape
        n = mu.shape[0]
        grid = jnp.broadcast_to(mu, (b, t) + mu.shape)
        if self.pool_offsets is not None:
            # k^2 fixed points of each neuron's Gaussian; the readout is their weighted mean
            offs = jnp.einsum("nij,kj->nki", chol, self.pool_offsets[...])   # (N, K, 2)
            grid = (mu[:, None, :] + offs).reshape(-1, 2)
            grid = jnp.broadcast_to(grid, (b, t) + grid.shape)
        elif key is not None:
            eps = jax.random.normal(key, (b, n, 2))
            offset = jnp.einsum("nij,bnj->bni", chol, eps)
            grid = grid + offset[:, None]
        if shift is not None:
            grid = grid + shift[:, :, None, :]
        if self.pool_offsets is not None:
            k = self.pool_weights.shape[0]
            fmap = features.reshape(b * t, h, w, c)
            if pool_by_projection(h, w, k, c):
                # project the map on every neuron's feature vector first (one matmul), then sample
                # scalars: K x 4 gathers per neuron instead of K x 4 x C (2x faster fwd+bwd on CPU)
                proj = jnp.einsum("mhwc,nc->mhwn", fmap, weights)
                v = bilinear_sample_per_unit(proj, grid.reshape(b * t, n, k, 2))    # (M, N, K)
            else:
                sampled = bilinear_sample(fmap, grid.reshape(b * t, -1, 2)).reshape(b * t, n, k, c)
                v = jnp.einsum("mnkc,nc->mnk", sampled, weights)
            return jnp.einsum("mnk,k->mn", v, self.pool_weights[...]).reshape(b, t, -1)
        sampled = bilinear_sample(features.reshape(b * t, h, w, c), grid.reshape(b * t, -1, 2))
        return jnp.einsum("mnc,nc->mn", sampled, weights).reshape(b, t, -1)

    def feature_weights(self) -> jax.Array:
        """(N, G, C) the feature vectors of each neuron's G readout components (component 0 first),
        the weights :meth:`design` is read with."""
        w = [self.features[...][:, None]]
        if self.extra is not None:
            w.append(self.extra.features[...])
        if self.surround_features is not None:
            w.append(self.surround_features[...])
        return jnp.concatenate(w, 1)

    def set_feature_weights(self, w) -> None:
        """Write (N, G, C) feature vectors back in :meth:`feature_weights`' order."""
        w = jnp.asarray(w, jnp.float32)
        n_surround = 0 if self.surround_features is None else self.surround_features.shape[1]
        self.features[...] = w[:, 0]
        if self.extra is not None:
            self.extra.features[...] = w[:, 1:w.shape[1] - n_surround]
        if self.surround_features is not None:
            self.surround_features[...] = w[:, w.shape[1] - n_surround:]

    def design(self, features: jax.Array, behaviour: dict | None = None) -> tuple[jax.Array, jax.Array]:
        """What the evaluation-mode readout reads before its feature weights: features
        (B, T, H, W, C) -> (x (B, T, N, G, C), gain (B, T, N)) with
        ``self(features, behaviour)[0] == einsum("btngc,ngc->btn", x, feature_weights()) + bias``.

        Each component's channels pooled at its (shifted) mean position, over its Gaussian's fixed
        points with ``pooling``, or over its weight patch with ``mask``. The readout is linear in
        its feature vectors and bias given this design, which :mod:`twin.train.refit` uses."""
        b, t, h, w, c = features.shape
        beh = self.normalised_behaviour(behaviour, b, t)
        shift = None if self.shifter is None else self.shifter(beh[..., 2:4])           # (B, T, 2)
        fmap = features.reshape(b * t, h, w, c)
        parts = []
        if self.mask_weights is not None:
            fm = fmap
            if shift is not None:
                gx, gy = jnp.meshgrid(jnp.linspace(-1.0, 1.0, w), jnp.linspace(-1.0, 1.0, h))
                grid = jnp.stack([gx, gy], -1).reshape(1, h * w, 2) + shift.reshape(b * t, 1, 2)
                fm = bilinear_sample(fm, grid).reshape(b * t, h, w, c)
            parts.append(jnp.einsum("mhwc,nhw->mnc", fm, self.dense_mask(self.positions(), h, w))[:, :, None])
        mus, chols = [], []
        if self.mask_weights is None:
            mus.append(self.positions()[:, None])
            chols.append(self.covariance_factor()[:, None])
        if self.extra is not None:
            mus.append(jnp.clip(self.extra.mu[...], -1.0, 1.0))
            chols.append(jnp.tril(self.extra.chol[...]))
        if self.surround_features is not None:
            mus.append(jnp.concatenate(mus, 1))
            chols.append(jnp.concatenate(chols, 1) * self.surround)
        if mus:
            mu, chol = jnp.concatenate(mus, 1), jnp.concatenate(chols, 1)                # (N, G', 2[, 2])
            n, g = mu.shape[:2]
            if self.pool_offsets is not None:
                offs = jnp.einsum("ngij,kj->ngki", chol, self.pool_offsets[...])
                pts = mu[:, :, None] + offs                                              # (N, G', K, 2)
            else:
                pts = mu[:, :, None]
            k = pts.shape[2]
            grid = jnp.broadcast_to(pts.reshape(-1, 2), (b, t, n * g * k, 2))
            if shift is not None:
                grid = grid + shift[:, :, None, :]
            pw = self.pool_weights[...] if self.pool_offsets is not None else jnp.ones((1,), fmap.dtype)
            if pool_by_projection(h, w, k, c):
                parts.append(pooled_by_matmul(fmap, grid.reshape(b * t, -1, 2), pw).reshape(b * t, n, g, c))
            else:
                s = bilinear_sample(fmap, grid.reshape(b * t, -1, 2)).reshape(b * t, n, g, k, c)
                parts.append(jnp.einsum("mngkc,k->mngc", s, pw))
        x = jnp.concatenate(parts, 2)
        x = x.reshape(b, t, *x.shape[1:])
        gain = (jnp.ones(x.shape[:3], x.dtype) if self.modulator is None
                else jax.nn.elu(self.modulator(beh[..., :2])) + 1.0)
        return x, gain

    def dense_mask(self, mu: jax.Array, h: int, w: int) -> jax.Array:
        """(N, h, w) each neuron's patch weights placed on an h x w feature map around its position
        ``mu`` (N, 2) (bilinearly between pixels, so the position keeps its gradient); points off
        the map dropped."""
        n, kk = self.mask_weights.shape
        k = int(round(np.sqrt(kk)))
        px = (jnp.clip(mu[:, 0], -1, 1) + 1) * 0.5 * (w - 1)
        py = (jnp.clip(mu[:, 1], -1, 1) + 1) * 0.5 * (h - 1)
        x0, y0 = jnp.floor(px), jnp.floor(py)
        fx, fy = px - x0, py - y0
        off = jnp.arange(k, dtype=jnp.int32) - k // 2
        wts = self.mask_weights[...].reshape(n, k, k)
        unit = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32)[:, None, None], (n, k, k))
        dense = jnp.zeros((n, h, w), wts.dtype)
        for dy, dx, cw in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            yy = jnp.broadcast_to(y0.astype(jnp.int32)[:, None, None] + off[None, :, None] + dy, (n, k, k))
            xx = jnp.broadcast_to(x0.astype(jnp.int32)[:, None, None] + off[None, None, :] + dx, (n, k, k))
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            vals = jnp.where(ok, wts * cw[:, None, None], 0.0)
            dense = dense.at[unit, jnp.clip(yy, 0, h - 1), jnp.clip(xx, 0, w - 1)].add(vals)
        return dense

    def _masked(self, features: jax.Array, mu: jax.Array, weights: jax.Array, shift: jax.Array | None) -> jax.Array:
        """Component 0 through the weight patches: features (B, T, H, W, C) -> (B, T, N)."""
        b, t, h, w, c = features.shape
        fmap = features.reshape(b * t, h, w, c)
        if shift is not None:
            # the map resampled at every pixel + the frame's shift: reading it at the position is
            # reading the original at position + shift, as the Gaussian readout does
            gx, gy = jnp.meshgrid(jnp.linspace(-1.0, 1.0, w), jnp.linspace(-1.0, 1.0, h))
            grid = jnp.stack([gx, gy], -1).reshape(1, h * w, 2) + shift.reshape(b * t, 1, 2)
            fmap = bilinear_sample(fmap, grid).reshape(b * t, h, w, c)
        # patch-weighted channels first: (frames, neurons, channels) stays small where the
        # projected maps (frames, H, W, neurons) would not (8,000 neurons on 36 x 64 maps)
        pooled = jnp.einsum("mhwc,nhw->mnc", fmap, self.dense_mask(mu, h, w))
        return jnp.einsum("mnc,nc->mn", pooled, weights).reshape(b, t, -1)

    def mask_penalty(self) -> jax.Array:
        """Mean over neurons of the absolute sum of their patch weights (0 without a mask)."""
        if self.mask_weights is None:
            return jnp.zeros(())
        return jnp.mean(jnp.sum(jnp.abs(self.mask_weights[...]), axis=-1))

    def net_features(self) -> jax.Array:
        """(N, C) each neuron's net weight on each core channel: the feature vectors of all its
        components (and surrounds, ``model.readout.surround``) summed (component 0's alone when
        ``components`` is 1 without surround)."""
        f = self.features[...]
        if self.extra is not None:
            f = f + jnp.sum(self.extra.features[...], axis=1)
        if self.surround_features is not None:
            f = f + jnp.sum(self.surround_features[...], axis=1)
        return f

    def l1_penalty(self) -> jax.Array:
        """Mean absolute readout feature weight (per neuron sum over all components, averaged
        over neurons)."""
        l1 = jnp.sum(jnp.abs(self.features[...]), axis=-1)
        if self.extra is not None:
            l1 = l1 + jnp.sum(jnp.abs(self.extra.features[...]), axis=(-2, -1))
        if self.surround_features is not None:
            l1 = l1 + jnp.sum(jnp.abs(self.surround_features[...]), axis=(-2, -1))
        return jnp.mean(l1)

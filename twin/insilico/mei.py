"""Most exciting inputs (MEIs) and varied exciting inputs (VEIs) by gradient ascent.

Images are static and shown as clips of ``n_frames`` repeated frames (burn-in included, at
least burn-in + 2; the objective is the mean rate over the frames after burn-in), since a static
image needs no temporal dimension and the models' temporal filters settle within the burn-in.

Optimisation runs on *waves* of neurons (:mod:`twin.insilico.engine`): every neuron has its own
image(s), one model pass per step serves the whole wave, every wave has the same shape (one
compilation for the whole run), and an ensemble's members are optimised together (the gradient
is that of the ensemble mean). Per step:

1. jitter: the wave's images are rolled by one random shift of up to ``jitter_px`` pixels
   (default 0: on the planted neurons any jitter lowers the MEI's unjittered response);
2. gradient of the summed objective with respect to the contrast images ``c = x - 127.5``;
3. Gaussian blur of the gradient (``blur_sigma_px``), normalised per image;
4. step of ``lr_t`` times the norm, then projection onto the fixed L2 norm
   ``||c|| = rms_contrast * 127.5 * sqrt(H W)`` and clipping to grey levels 0..255.

MEIs start near grey (random noise at ``init_contrast`` of the norm), so the first step (step
size ``lr_start``) points the image along the neuron's input gradient (its local linear RF);
``lr_t`` then decays (cosine) from ``lr_start`` to ``lr``. After the first step and at a quarter
of the steps each image is replaced by its negative where that drives its neuron more (a
rectified cell started on the wrong sign has no gradient back). On the planted neurons of the
default mouse this reaches in 16 steps a median 99.9% (10th percentile 97%) of the response of a
400-step ascent, where a fixed step of 0.05 from full-contrast noise needs ~400 steps.

VEIs: ``k`` images per neuron, initialised from the MEI plus noise; objective
``sum_k min(r_k / r_MEI, fraction + 0.05) - diversity_weight * mean_{k != l} corr(c_k, c_l)``, so
each image is pushed up to the target fraction and, once there, away from the others; an image
whose response (evaluated for the gradient, so no extra model pass) is below ``fraction + 0.02``
is pulled 20% of the way back to the MEI before the step. The diversity score is
``1 - mean pairwise Pearson r`` of the k images; ``vei_reached`` the fraction of them whose
response is at least ``fraction`` of the MEI's.

MEIs of the first ``max_units`` neurons of each scan only (``has_mei``) when per-neuron cost
matters (a twin's core pass per image step); VEIs and bipartite invariance follow the MEIs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from twin.insilico.common import dataset, static_frames


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix of a 1D Gaussian blur (radius ceil(3 sigma), zero padding: 'SAME')."""
    if sigma <= 0:
        return np.eye(n, dtype=np.float32)
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    d = np.arange(n)[None, :] - np.arange(n)[:, None]          # j - i
    return np.where(np.abs(d) <= r, k[np.clip(d + r, 0, 2 * r)], 0.0).astype(np.float32)


def _blur(g, mats):
    """Separable Gaussian blur of (..., H, W) by the (H, H) and (W, W) matrices ``mats``; two
    small matmuls (XLA's CPU convolution with one channel is ~30x slower)."""
    import jax.numpy as jnp

    kh, kw = mats
    return jnp.einsum("ij,...jk,lk->...il", kh, g, kw)


def target_norm(image_shape: tuple[int, int], rms_contrast: float) -> float:
    """The fixed L2 norm of a contrast image (grey levels minus 127.5)."""
    return float(rms_contrast * 127.5 * np.sqrt(image_shape[0] * image_shape[1]))


def _project(c, norm):
    import jax.numpy as jnp

    n = jnp.sqrt((c ** 2).sum((-2, -1), keepdims=True))
    c = c * (norm / jnp.maximum(n, 1e-6))
    return jnp.clip(c, -127.5, 127.5)


def lr_schedule(n_steps: int, lr: float, lr_start: float | None) -> np.ndarray:
    """Step sizes (fraction of the norm): cosine decay from ``lr_start`` to ``lr`` (constant
    ``lr`` when ``lr_start`` is None or not larger)."""
    n = max(int(n_steps), 1)
    if lr_start is None or lr_start <= lr or n == 1:
        return np.full(n, lr, np.float32) if n_steps > 0 else np.zeros(0, np.float32)
    t = np.arange(n) / (n - 1)
    return (lr + 0.5 * (lr_start - lr) * (1 + np.cos(np.pi * t))).astype(np.float32)


def _step_fn(plan, model, n_frames: int, cfg, norm: float, objective, post):
    """The jitted ascent step of one plan: (P, cols, c (W, M, H, W), key, lr, extra) -> (c, r)."""
    import jax
    import jax.numpy as jnp

    from twin.insilico.engine import own_response_fn

    own = own_response_fn(plan, model.burn_in, n_frames)
    h, wd = model.image_shape
    mats = (jnp.asarray(_blur_matrix(h, cfg.blur_sigma_px)), jnp.asarray(_blur_matrix(wd, cfg.blur_sigma_px)))
    j = int(cfg.jitter_px)

    def step(P, cols, c, key, lr, extra):
        shift = jax.random.randint(key, (2,), -j, j + 1) if j > 0 else jnp.zeros(2, jnp.int32)

        def obj(c):
            r = own(P, cols, jnp.roll(c, (shift[0], shift[1]), axis=(2, 3)))
            return objective(r, c, extra), r

        g, r = jax.grad(obj, has_aux=True)(c)
        g = _blur(g, mats)
        g = g / jnp.maximum(jnp.sqrt((g ** 2).sum((2, 3), keepdims=True)), 1e-12)
        if post is not None:   # on this step's responses (no extra model pass)
            c = post(c, r, extra)
        c = _project(c + lr * norm * g, norm)
        return c, r

    return step


def ascend(model, wave, c0: np.ndarray, k: int, cfg, n_steps: int, lrs: np.ndarray, seed: int, n_frames: int,
           objective=None, post=None, extra=None, name: tuple = ("mei",), flip_at: tuple[int, ...] = ()) -> np.ndarray:
    """Gradient ascent for one wave: ``c0`` (W, m*k, H, W) contrast images, image ``i`` of group
    ``w`` scored on column ``wave.cols[w, i // k]``; after the steps in ``flip_at`` each image is
    replaced by its negative when that drives its neuron more. ``name`` must identify
    ``objective`` and ``post`` (with every constant they close over): the jitted step is cached
    on the plan under it. Returns the final images."""
    import jax
    import jax.numpy as jnp

    h, w = model.image_shape
    norm = target_norm((h, w), cfg.rms_contrast)
    if objective is None:
        def objective(r, c, extra):
            return r.sum()
    plan = wave.plan
    step = plan.jit(tuple(name) + (n_frames, cfg.jitter_px, cfg.blur_sigma_px, cfg.rms_contrast),
                    lambda: _step_fn(plan, model, n_frames, cfg, norm, objective, post))
    # every argument committed to the device, as the step's outputs are: an uncommitted first
    # argument would compile the step a second time
    dev = jax.devices()[0]
    P = jax.device_put(plan.take(wave.groups), dev)
    cols = jax.device_put(np.repeat(wave.cols, k, axis=1), dev)
    key = jax.random.PRNGKey(seed)
    c = jax.device_put(np.asarray(c0, np.float32), dev)
    ex = jax.device_put(jnp.zeros(()) if extra is None else extra, dev)
    lrs = [jax.device_put(np.float32(v), dev) for v in lrs[:n_steps]]
    flip = None
    if flip_at:
        from twin.insilico.engine import own_response_fn

        def build():
            own = own_response_fn(plan, model.burn_in, n_frames)

            def f(P, cols, c):
                better = own(P, cols, -c) > own(P, cols, c)
                return jnp.where(better[..., None, None], -c, c)

            return f

        flip = plan.jit(("flip", n_frames), build)
    for i in range(n_steps):
        key, sub = jax.random.split(key)
        c, _ = step(P, cols, c, sub, lrs[i], ex)
        if flip is not None and i + 1 in flip_at:
            c = flip(P, cols, c)
    return np.asarray(c)


def _init(rng: np.random.Generator, shape, norm: float, contrast: float) -> np.ndarray:
    c = rng.standard_normal(shape).astype(np.float32)
    c *= (contrast * norm) / np.sqrt((c ** 2).sum((-2, -1), keepdims=True))
    return c


def compute_meis(model, units: pd.DataFrame, cfg, seed: int, progress=None) -> np.ndarray:
    """MEIs of every unit row of ``units``: (n, H, W) grey levels (static images)."""
    from twin.insilico.engine import unit_waves

    h, w = model.image_shape
    norm = target_norm((h, w), cfg.rms_contrast)
    T = static_frames(model, cfg.n_frames)
    lrs = lr_schedule(cfg.n_steps, cfg.lr, cfg.lr_start)
    out = np.zeros((len(units), h, w), np.float32)
    # one seeded start image per unit row, whatever the wave it lands in
    start = _init(np.random.default_rng(seed), (len(units), h, w), norm, cfg.init_contrast)
    # polarity checks: a rectified (simple) cell whose first steps chose the wrong sign sits where
    # its gradient vanishes; the negated image is tried after the first step and at a quarter
    flips = tuple(sorted({1, max(1, cfg.n_steps // 4)})) if cfg.n_steps > 1 else ()
    for i, wv in enumerate(unit_waves(model, units, cfg.unit_batch, cfg.chunk)):
        rows = np.where(wv.rows >= 0, wv.rows, wv.rows.max())
        c = ascend(model, wv, start[rows], 1, cfg, cfg.n_steps, lrs, seed + i, T, flip_at=flips)
        ok = wv.rows >= 0
        out[wv.rows[ok]] = c[ok]
        if progress is not None:
            progress.update(int(ok.sum()))
    return out + 127.5


def random_responses(model, units: pd.DataFrame, cfg, seed: int) -> np.ndarray:
    """Mean scored rate of every unit over ``n_random`` random static images of the MEI norm
    (the same images for every neuron: one model pass serves them all). Returns (n_units,)."""
    from twin.insilico.engine import predict_all

    h, w = model.image_shape
    norm = target_norm((h, w), cfg.rms_contrast)
    noise = _init(np.random.default_rng(seed), (max(cfg.n_random, 1), h, w), norm, 1.0)
    imgs = np.clip(noise + 127.5, 0, 255)
    T = static_frames(model, cfg.n_frames)
    clips = np.broadcast_to(imgs[:, None], (len(imgs), T, h, w))
    r = predict_all(model, units, clips, max(1, min(len(imgs), cfg.unit_batch)))
    return r[:, int(model.burn_in):].mean((0, 1)).astype(np.float64)


def mei_rows(units: pd.DataFrame, max_units: int) -> np.ndarray:
    """Rows of ``units`` that get MEIs: all, or the first ``max_units`` of each scan."""
    if max_units <= 0:
        return np.arange(len(units))
    rid = units["recording_id"].astype(str).to_numpy()
    rank = units.groupby(rid, sort=False).cumcount().to_numpy()
    return np.flatnonzero(rank < max_units)


def with_mei(units: pd.DataFrame, mei: xr.Dataset) -> np.ndarray:
    """Rows of ``units`` that have an MEI in ``mei`` (the output of :func:`run_mei`)."""
    if "has_mei" in mei:
        return np.flatnonzero(mei["has_mei"].values.astype(bool))
    return np.arange(len(units))


def run_mei(model, units: pd.DataFrame, cfg, seed: int, progress=None) -> xr.Dataset:
    """MEIs for ``units`` (all, or the first ``cfg.max_units`` of each scan: ``has_mei``; the
    others are NaN): ``mei`` (unit, y, x) grey levels, ``mei_response``, ``random_response`` (mean
    over ``n_random`` random images of the same norm), ``mei_effective`` (MEI response > 1.2 x
    random), ``mei_norm``."""
    from twin.insilico.engine import own_responses

    h, w = model.image_shape
    n = len(units)
    rows = mei_rows(units, cfg.max_units)
    sub = units.iloc[rows].reset_index(drop=True)
    meis = np.full((n, h, w), np.nan, np.float32)
    resp = np.full(n, np.nan)
    meis[rows] = compute_meis(model, sub, cfg, seed, progress)
    resp[rows] = own_responses(model, sub, meis[rows][:, None], cfg.n_frames, cfg.unit_batch, cfg.chunk)[:, 0]
    rand = random_responses(model, units, cfg, seed + 7)
    has = np.zeros(n, bool)
    has[rows] = True
    return dataset(units, {"mei": (("unit", "y", "x"), meis), "mei_response": ("unit", resp),
                           "random_response": ("unit", rand), "has_mei": ("unit", has),
                           "mei_effective": ("unit", has & (np.nan_to_num(resp) > 1.2 * rand)),
                           "mei_norm": ("unit", np.sqrt(((meis - 127.5) ** 2).sum((1, 2))))},
                   attrs={"static": f"static image shown for {static_frames(model, cfg.n_frames)} frames "
                                    "(burn-in included)",
                          "rms_contrast": cfg.rms_contrast, "n_steps": cfg.n_steps})


def compute_veis(model, units: pd.DataFrame, meis: np.ndarray, mei_response: np.ndarray, mcfg, vcfg,
                 seed: int, progress=None) -> np.ndarray:
    """VEIs: (n, k, H, W) grey levels for unit rows ``units`` with MEIs ``meis`` (n, H, W)."""
    import jax.numpy as jnp

    from twin.insilico.engine import unit_waves

    n, k = len(units), vcfg.k
    h, w = model.image_shape
    norm = target_norm((h, w), mcfg.rms_contrast)
    T = static_frames(model, mcfg.n_frames)
    rng = np.random.default_rng(seed)
    base = np.asarray(meis, np.float32) - 127.5
    noise = _init(rng, (n, k, h, w), norm, 1.0)
    start = base[:, None] + noise
    ref_all = np.maximum(np.asarray(mei_response, np.float32), 1e-9)
    target = vcfg.fraction + 0.05
    lam = vcfg.diversity_weight

    def objective(r, c, extra):
        ref = extra[0]                                      # (W, m*k)
        frac = jnp.minimum(r / ref, target)
        W, M = r.shape
        z = c.reshape(W, M // k, k, -1)
        z = z - z.mean(-1, keepdims=True)
        z = z / jnp.maximum(jnp.sqrt((z ** 2).sum(-1, keepdims=True)), 1e-6)
        corr = jnp.einsum("wnkp,wnlp->wnkl", z, z)
        off = (corr.sum((2, 3)) - k) / max(k * (k - 1), 1)
        return frac.sum() - lam * k * off.sum()

    def post(c, r, extra):
        # images below the target fraction are pulled back toward their MEI (a rectified
        # neuron far from its MEI has no gradient to climb back with)
        ref, anchor = extra
        low = (r / ref < vcfg.fraction + 0.02)[..., None, None]
        return jnp.where(low, _project(0.8 * c + 0.2 * anchor, norm), c)

    lrs = lr_schedule(vcfg.n_steps, vcfg.lr, None)
    out = np.zeros((n, k, h, w), np.float32)
    ub = max(1, mcfg.unit_batch // k) if vcfg.unit_batch <= 0 else vcfg.unit_batch
    for i, wv in enumerate(unit_waves(model, units, ub, mcfg.chunk)):
        rows = np.where(wv.rows >= 0, wv.rows, wv.rows.max())
        W, m = rows.shape
        c0 = start[rows].reshape(W, m * k, h, w)
        ref = jnp.asarray(np.repeat(ref_all[rows], k, axis=1))
        anchor = jnp.asarray(np.repeat(base[rows], k, axis=1))
        c = ascend(model, wv, c0, k, mcfg, vcfg.n_steps, lrs, seed + i, T, objective, post, (ref, anchor),
                   name=("vei", k, vcfg.fraction, vcfg.diversity_weight))
        ok = wv.rows >= 0
        out[wv.rows[ok]] = c.reshape(W, m, k, h, w)[ok]
        if progress is not None:
            progress.update(int(ok.sum()))
    return out + 127.5


def diversity(images: np.ndarray) -> np.ndarray:
    """``1 - mean pairwise Pearson r`` over the k images of each neuron: (n, k, H, W) -> (n,)."""
    n, k = images.shape[:2]
    z = np.asarray(images, np.float64).reshape(n, k, -1)
    z = z - z.mean(-1, keepdims=True)
    z /= np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
    corr = np.einsum("nkp,nlp->nkl", z, z)
    return 1.0 - (corr.sum((1, 2)) - k) / max(k * (k - 1), 1)


def run_vei(model, units: pd.DataFrame, mei: xr.Dataset, mcfg, vcfg, seed: int, progress=None) -> xr.Dataset:
    """VEIs for the ``units`` that have MEIs, given the MEI output (NaN for the others): ``vei``
    (unit, k, y, x), ``vei_response`` (unit, k), ``vei_fraction`` (response / MEI response),
    ``vei_reached``, ``vei_diversity``."""
    from twin.insilico.engine import own_responses

    n, k = len(units), vcfg.k
    h, w = model.image_shape
    rows = with_mei(units, mei)
    sub = units.iloc[rows].reset_index(drop=True)
    meis = mei["mei"].values[rows]
    ref = mei["mei_response"].values[rows]
    veis = np.full((n, k, h, w), np.nan, np.float32)
    resp = np.full((n, k), np.nan)
    if len(rows):
        veis[rows] = compute_veis(model, sub, meis, ref, mcfg, vcfg, seed, progress)
        resp[rows] = own_responses(model, sub, veis[rows], mcfg.n_frames, mcfg.unit_batch, mcfg.chunk)
    frac = resp / np.maximum(mei["mei_response"].values, 1e-12)[:, None]
    # a neuron no static image drives (MEI response within 20% of random inputs') has no VEIs
    eff = mei["mei_effective"].values.astype(bool) if "mei_effective" in mei else np.ones(n, bool)
    div = np.full(n, np.nan)
    div[rows] = diversity(veis[rows])
    return dataset(units, {"vei": (("unit", "k", "y", "x"), veis), "vei_response": (("unit", "k"), resp),
                           "vei_fraction": (("unit", "k"), frac),
                           "vei_reached": ("unit", np.where(np.isfinite(frac).all(1), (frac >= vcfg.fraction).mean(1),
                                                            np.nan)),
                           "vei_diversity": ("unit", np.where(eff, div, np.nan))},
                   attrs={"fraction": vcfg.fraction, "n_steps": vcfg.n_steps})

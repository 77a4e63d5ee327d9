"""Most exciting inputs (MEIs) and varied exciting inputs (VEIs) by gradient ascent.

Images are static and shown as clips of ``n_frames`` repeated frames (burn-in included, at
least burn-in + 2; the
objective is the mean rate over the frames after burn-in), since a static image needs no
temporal dimension and the models' temporal filters settle within the burn-in.

Optimisation (per step, for a batch of neurons at once: input ``u`` of the batch is scored
for its own neuron, so one model pass serves the whole batch; an ensemble's ``predict`` is the
members' mean, so the gradient is that of the model average):

1. jitter: the whole batch is rolled by a random shift of up to ``jitter_px`` pixels;
2. gradient of the summed objective with respect to the contrast images ``c = x - 127.5``;
3. Gaussian blur of the gradient (``blur_sigma_px``), normalised per image;
4. step of ``lr`` times the norm, then projection onto the fixed L2 norm
   ``||c|| = rms_contrast * 127.5 * sqrt(H W)`` and clipping to grey levels 0..255.

VEIs: ``k`` images per neuron, initialised from the MEI plus noise; objective
``sum_k min(r_k / r_MEI, fraction + 0.05) - diversity_weight * mean_{k != l} corr(c_k, c_l)``, so
each image is pushed up to the target fraction and, once there, away from the others; after
each step an image below ``fraction + 0.02`` is pulled 20% of the way back to the MEI. The
diversity score is ``1 - mean pairwise Pearson r`` of the k images; ``vei_reached`` the
fraction of them whose response is at least ``fraction`` of the MEI's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from twin.insilico.common import by_scan, dataset, static_frames


def _blur_kernel(sigma: float) -> np.ndarray:
    if sigma <= 0:
        return np.ones((1, 1), np.float32)
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    k = np.outer(k, k)
    return (k / k.sum()).astype(np.float32)


def _blur(g, kernel):
    """Gaussian blur of (M, H, W) with a 2D kernel (SAME padding)."""
    import jax

    if kernel.shape == (1, 1):
        return g
    out = jax.lax.conv_general_dilated(g[:, None], kernel[None, None], (1, 1), "SAME")
    return out[:, 0]


def target_norm(image_shape: tuple[int, int], rms_contrast: float) -> float:
    """The fixed L2 norm of a contrast image (grey levels minus 127.5)."""
    return float(rms_contrast * 127.5 * np.sqrt(image_shape[0] * image_shape[1]))


def _project(c, norm):
    import jax.numpy as jnp

    n = jnp.sqrt((c ** 2).sum((-2, -1), keepdims=True))
    c = c * (norm / jnp.maximum(n, 1e-6))
    return jnp.clip(c, -127.5, 127.5)


def _own_response_fn(model, rid: str, n_frames: int):
    """f(c (M, H, W) contrast, idx (M,)) -> (M,) mean scored rate of neuron idx[m] to image m."""
    import jax.numpy as jnp

    b = int(model.burn_in)
    n_frames = static_frames(model, n_frames)

    def f(c, idx):
        clip = jnp.broadcast_to((c + 127.5)[:, None], (c.shape[0], n_frames) + c.shape[1:])
        r = model.predict(clip, rid)[:, b:, :]          # (M, T', N)
        return jnp.take_along_axis(r, idx[:, None, None], axis=2)[:, :, 0].mean(1)

    return f


def own_responses(model, rid: str, images: np.ndarray, idx: np.ndarray, n_frames: int, batch: int = 64) -> np.ndarray:
    """Mean scored rate of neuron ``idx[m]`` to static grey-level image ``images[m]`` (M, H, W)."""
    import jax
    import jax.numpy as jnp

    f = jax.jit(_own_response_fn(model, rid, n_frames))
    out = []
    m = len(images)
    batch = max(1, min(batch, m))
    for s in range(0, m, batch):
        im = np.asarray(images[s:s + batch], np.float32) - 127.5
        ix = np.asarray(idx[s:s + batch])
        pad = batch - len(im)
        if pad:
            im = np.concatenate([im, np.repeat(im[-1:], pad, 0)])
            ix = np.concatenate([ix, np.repeat(ix[-1:], pad)])
        out.append(np.asarray(f(jnp.asarray(im), jnp.asarray(ix)))[:batch - pad])
    return np.concatenate(out)


def _ascent(model, rid, c0, idx, objective_extra, cfg, n_steps, lr, seed, n_frames, norm, post=None):
    """Shared loop: maximise sum(own response term) over contrast images c (M, H, W)."""
    import jax
    import jax.numpy as jnp

    f = _own_response_fn(model, rid, n_frames)
    kern = jnp.asarray(_blur_kernel(cfg.blur_sigma_px))
    j = int(cfg.jitter_px)

    def obj(c, shift):
        cs = jnp.roll(c, shift, axis=(1, 2))
        return objective_extra(f(cs, idx), c)

    @jax.jit
    def step(c, key):
        shift = jax.random.randint(key, (2,), -j, j + 1) if j > 0 else jnp.zeros(2, jnp.int32)
        g = jax.grad(obj)(c, (shift[0], shift[1]))
        g = _blur(g, kern)
        g = g / jnp.maximum(jnp.sqrt((g ** 2).sum((1, 2), keepdims=True)), 1e-12)
        c = _project(c + lr * norm * g, norm)
        return c if post is None else post(c, f(c, idx))

    key = jax.random.PRNGKey(seed)
    c = _project(jnp.asarray(c0, jnp.float32), norm)
    for _ in range(n_steps):
        key, sub = jax.random.split(key)
        c = step(c, sub)
    return np.asarray(c)


def compute_meis(model, rid: str, idx: np.ndarray, cfg, seed: int) -> np.ndarray:
    """MEIs of neurons ``idx`` of scan ``rid``: (n, H, W) grey levels (static images)."""
    h, w = model.image_shape
    norm = target_norm((h, w), cfg.rms_contrast)
    rng = np.random.default_rng(seed)
    c0 = rng.standard_normal((len(idx), h, w)).astype(np.float32)
    import jax.numpy as jnp

    c = _ascent(model, rid, c0, jnp.asarray(idx), lambda r, c: r.sum(), cfg, cfg.n_steps, cfg.lr, seed,
                cfg.n_frames, norm)
    return c + 127.5


def compute_veis(model, rid: str, idx: np.ndarray, meis: np.ndarray, mei_response: np.ndarray, mcfg, vcfg,
                 seed: int) -> np.ndarray:
    """VEIs: (n, k, H, W) grey levels for neurons ``idx`` with MEIs ``meis`` (n, H, W)."""
    import jax.numpy as jnp

    n, k = len(idx), vcfg.k
    h, w = model.image_shape
    norm = target_norm((h, w), mcfg.rms_contrast)
    rng = np.random.default_rng(seed)
    base = (np.asarray(meis, np.float32) - 127.5)[:, None]
    noise = rng.standard_normal((n, k, h, w)).astype(np.float32)
    noise *= norm / np.sqrt((noise ** 2).sum((2, 3), keepdims=True))
    c0 = (base + noise).reshape(n * k, h, w)
    ref = jnp.asarray(np.repeat(np.maximum(mei_response, 1e-9), k), jnp.float32)
    target = vcfg.fraction + 0.05
    lam = vcfg.diversity_weight

    def objective(r, c):
        frac = jnp.minimum(r / ref, target)
        z = c.reshape(n, k, -1)
        z = z - z.mean(-1, keepdims=True)
        z = z / jnp.maximum(jnp.sqrt((z ** 2).sum(-1, keepdims=True)), 1e-6)
        corr = jnp.einsum("nkp,nlp->nkl", z, z)
        off = (corr.sum((1, 2)) - k) / max(k * (k - 1), 1)
        return frac.sum() - lam * k * off.sum()

    anchor = jnp.asarray(np.repeat(base[:, 0], k, 0))

    def post(c, r):
        # images below the target fraction are pulled back toward their MEI (a rectified
        # neuron far from its MEI has no gradient to climb back with)
        low = (r / ref < vcfg.fraction + 0.02)[:, None, None]
        return jnp.where(low, _project(0.8 * c + 0.2 * anchor, norm), c)

    c = _ascent(model, rid, c0, jnp.asarray(np.repeat(idx, k)), objective, mcfg, vcfg.n_steps, vcfg.lr, seed,
                mcfg.n_frames, norm, post)
    return c.reshape(n, k, h, w) + 127.5


def diversity(images: np.ndarray) -> np.ndarray:
    """``1 - mean pairwise Pearson r`` over the k images of each neuron: (n, k, H, W) -> (n,)."""
    n, k = images.shape[:2]
    z = np.asarray(images, np.float64).reshape(n, k, -1)
    z = z - z.mean(-1, keepdims=True)
    z /= np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
    corr = np.einsum("nkp,nlp->nkl", z, z)
    return 1.0 - (corr.sum((1, 2)) - k) / max(k * (k - 1), 1)


def run_mei(model, units: pd.DataFrame, cfg, seed: int, progress=None) -> xr.Dataset:
    """MEIs for ``units``: ``mei`` (unit, y, x) grey levels, ``mei_response``, ``random_response``
    (mean over ``n_random`` random images of the same norm), ``mei_norm``."""
    h, w = model.image_shape
    n = len(units)
    meis = np.zeros((n, h, w), np.float32)
    resp = np.zeros(n)
    rand = np.zeros(n)
    norm = target_norm((h, w), cfg.rms_contrast)
    rng = np.random.default_rng(seed + 7)
    for rid, rows, idx in by_scan(units):
        for s in range(0, len(idx), cfg.unit_batch):
            sl = slice(s, s + cfg.unit_batch)
            meis[rows[sl]] = compute_meis(model, rid, idx[sl], cfg, seed + s)
            if progress is not None:
                progress.update(len(idx[sl]))
        resp[rows] = own_responses(model, rid, meis[rows], idx, cfg.n_frames, cfg.unit_batch)
        noise = rng.standard_normal((cfg.n_random, h, w))
        noise = noise * norm / np.sqrt((noise ** 2).sum((1, 2), keepdims=True))
        noise = np.clip(noise + 127.5, 0, 255)
        imgs = np.repeat(noise[None], len(idx), 0).reshape(-1, h, w)
        rand[rows] = own_responses(model, rid, imgs, np.repeat(idx, cfg.n_random), cfg.n_frames,
                                   cfg.unit_batch).reshape(len(idx), cfg.n_random).mean(1)
    return dataset(units, {"mei": (("unit", "y", "x"), meis), "mei_response": ("unit", resp),
                           "random_response": ("unit", rand),
                           "mei_effective": ("unit", resp > 1.2 * rand),
                           "mei_norm": ("unit", np.sqrt(((meis - 127.5) ** 2).sum((1, 2))))},
                   attrs={"static": f"static image shown for {cfg.n_frames} frames (burn-in included)",
                          "rms_contrast": cfg.rms_contrast})


def run_vei(model, units: pd.DataFrame, mei: xr.Dataset, mcfg, vcfg, seed: int, progress=None) -> xr.Dataset:
    """VEIs for ``units`` given the MEI output: ``vei`` (unit, k, y, x), ``vei_response`` (unit, k),
    ``vei_fraction`` (response / MEI response), ``vei_reached``, ``vei_diversity``."""
    h, w = model.image_shape
    n, k = len(units), vcfg.k
    veis = np.zeros((n, k, h, w), np.float32)
    resp = np.zeros((n, k))
    meis = mei["mei"].values
    ref = mei["mei_response"].values
    for rid, rows, idx in by_scan(units):
        for s in range(0, len(idx), vcfg.unit_batch):
            r = rows[s:s + vcfg.unit_batch]
            veis[r] = compute_veis(model, rid, idx[s:s + vcfg.unit_batch], meis[r], ref[r], mcfg, vcfg, seed + s)
            if progress is not None:
                progress.update(len(r))
        resp[rows] = own_responses(model, rid, veis[rows].reshape(-1, h, w), np.repeat(idx, k), mcfg.n_frames,
                                   mcfg.unit_batch).reshape(len(idx), k)
    frac = resp / np.maximum(ref, 1e-12)[:, None]
    # a neuron no static image drives (MEI response within 20% of random inputs') has no VEIs
    eff = mei["mei_effective"].values.astype(bool) if "mei_effective" in mei else np.ones(n, bool)
    return dataset(units, {"vei": (("unit", "k", "y", "x"), veis), "vei_response": (("unit", "k"), resp),
                           "vei_fraction": (("unit", "k"), frac),
                           "vei_reached": ("unit", (frac >= vcfg.fraction).mean(1)),
                           "vei_diversity": ("unit", np.where(eff, diversity(veis), np.nan))},
                   attrs={"fraction": vcfg.fraction})

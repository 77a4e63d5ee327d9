"""Initial readout positions from the data: where oriented stimulus energy predicts each neuron.

A Gaussian readout position only gets gradient from the feature-map cells around it, so a
neuron whose random initial position is far from its receptive field stays there, and the core
learns spatially global features to serve it. On the default synthetic mouse the learned
positions of the demo twin were uncorrelated with the planted RF centres (median distance ~33
deg, 8-12% within one RF sigma).

This module gives every neuron a starting position before training: the frames (average-pooled
2x) are filtered by a small quadrature Gabor bank (8 orientations x 2 spatial frequencies),
whose local energies at each cell of a coarse grid are the features; a ridge regression of the
neuron's training responses (frames after burn-in, stimulus 1-2 frames earlier) on the features
of each cell gives a correlation map, smoothed over neighbouring cells, and its peak is the
initial position. On the default mouse (seed 0) this puts 30% / 36% of the neurons of scans 1 / 2
within one RF sigma of the planted centre (scan 1: median distance 23 deg).

Retinotopy makes neighbours in cortex see neighbouring parts of the visual field, so when the
scan's units carry cortical coordinates (``cortical_x`` / ``cortical_y``, um) each neuron's map
can borrow evidence from its neighbours: the maps, z-scored per neuron, are summed with Gaussian
weights of the lateral cortical distance (``pool_um``, default 100 um, ~5 deg of retinotopic
shift in mouse V1) before the peak is taken. On the default mouse this moves 56% / 55% of the
neurons within one RF sigma (median distance 8.8 / 8.3 deg; pooling over 30 / 60 / 150 um:
34 / 47 / 56% for scan 1).
"""

from __future__ import annotations

import numpy as np

SFS_CPD = (0.03, 0.06)
N_ORIENTATIONS = 8
LAGS = (1, 2)


def ridge_corr_maps(features: np.ndarray, responses: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Correlation of a per-cell ridge readout with each neuron's responses.

    Args:
      features: (M, P, C) features of M frames at P cells.
      responses: (M, N) responses of N neurons on the same frames.
      ridge: Tikhonov weight relative to the mean diagonal of each cell's Gram matrix.
    Returns:
      (P, N) in-sample Pearson correlations (0 where a neuron or a cell is constant).
    """
    c = features.shape[2]
    f = np.asarray(features, np.float32)
    # (P, C, M) contiguous, so that both products below are BLAS matmuls (einsum was 3x slower)
    x = np.ascontiguousarray(np.moveaxis(f - f.mean(0, keepdims=True), 0, 2))
    y = (responses - responses.mean(0, keepdims=True)).astype(np.float32)
    gram = np.matmul(x, x.transpose(0, 2, 1)).astype(np.float64)                          # (P, C, C)
    scale = np.trace(gram, axis1=1, axis2=2)[:, None, None] / c
    xy = (x.reshape(-1, x.shape[2]) @ y).reshape(x.shape[0], c, -1).astype(np.float64)    # (P, C, N)
    w = np.linalg.solve(gram + ridge * np.maximum(scale, 1e-12) * np.eye(c)[None], xy)     # (P, C, N)
    # corr(x w, y) from Gram statistics: cov = w' X'y, var(pred) = w' X'X w
    num = np.einsum("pcn,pcn->pn", w, xy)
    var = np.einsum("pcn,pcd,pdn->pn", w, gram, w)
    den = np.sqrt(np.maximum(var, 0.0) * (y.astype(np.float64) ** 2).sum(0)[None])
    return np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)


def gabor_bank(pixel_deg: float, radius: int = 4) -> np.ndarray:
    """(2r+1, 2r+1, 2 x SFs x orientations) quadrature Gabor pairs (even, odd interleaved) on a
    grid of ``pixel_deg`` degrees per pixel; the even filters have zero mean."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1] * pixel_deg
    bank = []
    for sf in SFS_CPD:
        sigma = 0.25 / sf
        env = np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
        for th in np.arange(N_ORIENTATIONS) * np.pi / N_ORIENTATIONS:
            u = xx * np.cos(th) + yy * np.sin(th)
            even = env * np.cos(2 * np.pi * sf * u)
            even -= env * even.sum() / env.sum()
            bank += [even, env * np.sin(2 * np.pi * sf * u)]
    return np.stack(bank, -1)


def energy_features(stimulus: np.ndarray, pixel_size_deg: float, pool: int = 2, chunk: int = 2048) -> np.ndarray:
    """Local oriented energy: stimulus (B, T, H, W) grey levels -> (B, T, H//pool, W//pool, C)
    with C = 2 spatial frequencies x 8 orientations of quadrature Gabor energy (zero padding at
    the edges). One XLA convolution of ``chunk`` frames at a time with the whole bank: on 1,000
    random frames (2026-12-06, cores shared) 0.6 s against 3.2 s for an FFT convolution per filter."""
    import jax
    import jax.numpy as jnp

    b, t, h, w = stimulus.shape
    x = (np.asarray(stimulus, np.float32) - 127.5) / 64.0
    x = x[:, :, : h // pool * pool, : w // pool * pool]
    x = x.reshape(b, t, h // pool, pool, w // pool, pool).mean((3, 5))
    hh, ww = x.shape[2:]
    flat = x.reshape(-1, hh, ww, 1)
    bank = jnp.asarray(gabor_bank(pixel_size_deg * pool)[:, :, None, :], jnp.float32)       # HWIO

    @jax.jit
    def energy(z):
        out = jax.lax.conv_general_dilated(z, bank, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sqrt(jnp.sum(out.reshape(out.shape[:3] + (-1, 2)) ** 2, -1))

    chunk = min(chunk, len(flat))
    out = np.empty((len(flat), hh, ww, bank.shape[3] // 2), np.float32)
    for i in range(0, len(flat), chunk):
        z = flat[i:i + chunk]
        n = len(z)
        if n < chunk:                          # one compiled shape: the last chunk padded
            z = np.concatenate([z, np.zeros((chunk - n,) + z.shape[1:], z.dtype)])
        out[i:i + n] = np.asarray(energy(z))[:n]
    return out.reshape(b, t, hh, ww, -1)


def pool_over_cortex(maps: np.ndarray, cortical_xy: np.ndarray, pool_um: float) -> np.ndarray:
    """Sum of the per-neuron maps (P, N), each z-scored over cells, weighted by
    ``exp(-d^2 / 2 pool_um^2)`` of the lateral cortical distance d (um) between neurons
    (``cortical_xy`` (N, 2)), over the neighbours within 3 ``pool_um`` (KD-tree pairs, so memory
    grows with the neighbours, not N^2; neurons at the same position pool with weight 1).
    Returns (P, N)."""
    from scipy import sparse
    from scipy.spatial import cKDTree

    xy = np.asarray(cortical_xy, np.float64)
    n = len(xy)
    z = (maps - maps.mean(0, keepdims=True)) / (maps.std(0, keepdims=True) + 1e-12)
    i, j = cKDTree(xy).query_pairs(3.0 * pool_um, output_type="ndarray").T.reshape(2, -1)
    w = np.exp(-0.5 * (np.linalg.norm(xy[i] - xy[j], axis=1) / pool_um) ** 2)
    pairs = sparse.coo_matrix((np.r_[w, w, np.ones(n)], (np.r_[i, j, np.arange(n)], np.r_[j, i, np.arange(n)])),
                              shape=(n, n)).tocsr()
    return np.asarray(pairs @ z.T).T


def energy_rf_positions(stimulus: np.ndarray, response: np.ndarray, n_frames: np.ndarray,
                        image_shape: tuple[int, int], pixel_size_deg: float, burn_in: int,
                        pool: int = 2, max_frames: int = 20000, cortical_xy: np.ndarray | None = None,
                        pool_um: float = 100.0) -> np.ndarray:
    """(N, 2) initial readout positions (x, y) in grid units [-1, 1] (x right, y down, the
    readout's convention) from training trials: stimulus (B, T, H, W), response (B, T, N),
    n_frames (B,). Uses the first trials holding about ``max_frames`` frames (memory). With
    ``cortical_xy`` (N, 2) lateral cortical positions in um (all finite) and ``pool_um`` > 0,
    each map is pooled over cortical neighbours first (:func:`pool_over_cortex`)."""
    from scipy.ndimage import gaussian_filter

    keep = max(1, int(np.searchsorted(np.cumsum(n_frames), max_frames)) + 1)
    stimulus, response, n_frames = stimulus[:keep], response[:keep], n_frames[:keep]
    e = energy_features(stimulus, pixel_size_deg, pool)                  # (B, T, h, w, C)
    b, t, hh, ww, c = e.shape
    start = max(burn_in, max(LAGS))
    xs, ys = [], []
    for i in range(b):
        m = int(n_frames[i])
        if m <= start:
            continue
        xs.append(np.mean([e[i, start - lag:m - lag] for lag in LAGS], axis=0))
        ys.append(response[i, start:m])
    n = response.shape[2]
    if not xs:
        return np.zeros((n, 2))
    x = np.concatenate(xs).reshape(-1, hh * ww, c)
    y = np.concatenate(ys)
    corr = ridge_corr_maps(x, y).reshape(hh, ww, n)
    corr = gaussian_filter(corr, (1.0, 1.0, 0.0)).reshape(hh * ww, n)
    if cortical_xy is not None and pool_um > 0 and np.all(np.isfinite(cortical_xy)):
        corr = pool_over_cortex(corr, cortical_xy, pool_um)
    best = corr.argmax(0)
    iy, ix = np.unravel_index(best, (hh, ww))
    # cell centres in pixels of the full image, then grid units over the pixel centres
    h, w = image_shape
    px = ix * pool + (pool - 1) / 2.0
    py = iy * pool + (pool - 1) / 2.0
    gx = px / max(w - 1, 1) * 2 - 1
    gy = py / max(h - 1, 1) * 2 - 1
    return np.stack([gx, gy], -1)


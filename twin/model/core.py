"""The shared core: factorised space/time convolutions followed by a convolutional GRU.

Layout is channels-last with time folded into the batch for the spatial convolutions
(``(B*T, H, W, C)``), which XLA's CPU backend runs as dense convolutions (PERFORMANCE.md: its
grouped/depthwise convolutions are slow). The causal temporal convolution is a sum of
``temporal_kernel`` shifted matrix products over channels. All layers keep the spatial size
("SAME" padding), so the core's feature map is aligned with the stimulus pixels, unless
``downsample > 1`` average-pools the features before the GRU (the GRU's per-frame cost falls by
``downsample**2``; readout positions still span [-1, 1] over the whole image). ``input_downsample
> 1`` average-pools the normalised frames before the first convolution (every layer's cost falls
by ``input_downsample**2`` and the same kernels cover a larger part of the visual field).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from twin.model.config import CoreConfig, layer_kernels

_DN = ("NHWC", "HWIO", "NHWC")


# Input elements per XLA call: XLA CPU's convolutions (their weight gradient above all), the
# temporal matmuls and the GRU's im2col scan slow down more than linearly with the batch (7x7
# 64->64 on 36x64 frames, forward+backward: 0.73 s for 32 frames, 3.2-4.0 s for 128), so big
# batches run in equal pieces of at most this many input elements (same numbers either way). The
# Sensorium-size core (32 clips x 4 frames, 4 x 64 channels, GRU 64) took 23.0 s forward+backward
# unsplit, 19.0 s in pieces of 2^23 elements, 13.4 s of 2^22, 10.9 s of 2^21, 11.4 s of 2^20.
CONV_CHUNK_ELEMENTS = 1 << 21

# The GRU's input convolution with kernels other than 3 x 3 runs as im2col matmuls in pieces of
# at most this many input elements. Measured on 3 x 3 before Winograd (below) took it over:
# forward+backward 3x3 64->192 on 128 frames of 36x64 1.49 s vs 1.86 s for XLA's convolution
# (pieces of 2^21: 1.66 s); 3x3 32->96 on 120 frames of 18x32 118 ms vs 148 ms. (At 5x5 32->32
# im2col took 2.8x XLA's time, so the convolution layers keep XLA's.)
IM2COL_CHUNK_ELEMENTS = 1 << 19
# ... and as Winograd's F(2x2, 3x3) (3 x 3 kernels, conv2d_winograd) in pieces of at most this
# many: 3x3 64->192 on 120 frames of 36x64 (17.7M elements) forward+backward 0.85 s in one piece,
# 1.02-1.12 s in pieces of 2^19-2^23.
WINOGRAD_CHUNK_ELEMENTS = 1 << 24
# Winograd only from this many input channels: it won at 32 and 64 (the demo's and the Sensorium
# size's GRUs), while its transforms cost compile time (a 3-channel test GRU: 1.8 s vs 0.8 s) for
# nothing on narrow layers.
WINOGRAD_MIN_CHANNELS = 16


def in_pieces(fn, x: jax.Array, per_item: int | None = None, limit: int | None = None) -> jax.Array:
    """``fn(x)`` computed on equal pieces of ``x`` along axis 0, each of at most ``limit``
    (default CONV_CHUNK_ELEMENTS) elements (``per_item`` elements per item; default: x's own),
    and concatenated. ``fn`` must treat the items of axis 0 independently."""
    n = x.shape[0]
    per_item = max(1, int(np.prod(x.shape[1:])) if per_item is None else int(per_item))
    most = max(1, (CONV_CHUNK_ELEMENTS if limit is None else limit) // per_item)
    if n <= most:
        return fn(x)
    size = -(-n // -(-n // most))      # equal pieces
    return jnp.concatenate([fn(x[i:i + size]) for i in range(0, n, size)], 0)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """Dense 2D convolution: x (N, H, W, Cin), kernel (k, k, Cin, Cout). Stride 1: 'SAME' padding.
    Stride s > 1: (k - 1) / 2 zeros on every side, so output j is centred on input pixel s * j and
    the output has ceil(H / s) x ceil(W / s) pixels. Large N runs in pieces (:func:`in_pieces`)."""
    return in_pieces(lambda v: _conv2d(v, kernel, stride), x)


def _conv2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    if stride == 1:
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DN)
    kh, kw = kernel.shape[:2]
    pad = [((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)]
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), pad, dimension_numbers=_DN)


# conv_impl = "fft" leaves layers with fewer input channels than this to XLA's convolution: with
# few input channels transforming every output map costs more than the products it saves. 7x7 on
# 128 frames of 36x64 to 64 channels, forward+backward, XLA vs FFT: 1 input channel 0.31 vs 0.41 s
# (9x9), 4: 0.63 vs 0.61, 16: 0.91 vs 0.76, 32: 2.1 vs 0.86; 7x7 1->32 on 240 frames of 18x32:
# 0.03 vs 0.10 s.
FFT_MIN_CHANNELS = 4

# conv_impl = "auto" (the default) takes the FFT where it was measured to win or tie on XLA CPU:
# stride 1, kernels of 5 and more, at least this many input channels, and the CPU backend (on a
# GPU XLA's convolutions are cuDNN's). Inside the Sensorium-sized training step (4 x 64 channels,
# 7x7) XLA's convolutions made the step 23.0 s against 7.85 s with the FFT (tcmalloc). Timed
# alone, forward+backward, 7x7 64->64 on 120 frames of 36x64: XLA 3.16 s, FFT 0.86 s, torch's
# conv3d 1.5 s (2026-12-06; a day earlier 128 frames gave 0.91-0.94 s vs 0.89-0.90 s, not
# reproduced, and 1.6-2.9 s vs 1.34 s on an earlier machine); at the demo's size (120 frames of
# 18x32 to 32 channels) 5x5 from 32 channels 56-60 vs 56-59 ms, from 16 38-50 vs 38 ms, 7x7 from
# 32 76-94 vs 75-78 ms. 3x3 kernels stay with XLA (the earlier machine: 1.9 s vs 3.0 s at 64
# channels; 0.88 s both on the later one).
FFT_AUTO_MIN_CHANNELS = 16
FFT_AUTO_MIN_KERNEL = 5


def use_fft(impl: str, stride: int, cin: int, k: int) -> bool:
    """Whether a convolution layer's spatial convolution runs through the FFT (``conv_impl``)."""
    if stride != 1:
        return False
    if impl == "fft":
        return cin >= FFT_MIN_CHANNELS
    if impl == "auto":
        return cin >= FFT_AUTO_MIN_CHANNELS and k >= FFT_AUTO_MIN_KERNEL and jax.default_backend() == "cpu"
    return False


def fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (a length the FFT handles fast)."""
    best = 1 << max(0, int(n - 1).bit_length())
    p3 = 1
    while p3 < best:
        p35 = p3
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 5
        p3 *= 3
    return best


def conv2d_fft(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """:func:`conv2d` (stride 1, 'SAME') through the FFT: x (N, H, W, Cin), kernel (kh, kw,
    Cin, Cout). The frames and the flipped kernel are zero-padded to at least (H + kh // 2,
    W + kw // 2) (the wrap-around lands outside the output kept), multiplied per frequency with
    a sum over input channels, and transformed back; the crop starts where XLA's 'SAME' padding
    puts output pixel 0. Unlike :func:`conv2d` it runs in one piece: in pieces of
    CONV_CHUNK_ELEMENTS the 7x7 64->64 convolution of 128 frames of 36x64 took 2.5 s forward +
    backward, in one 1.4 s (1.34 s since the shorter circular length below)."""
    return _conv2d_fft(x, kernel)


def _conv2d_fft(x: jax.Array, kernel: jax.Array) -> jax.Array:
    h, w = x.shape[1], x.shape[2]
    kh, kw = kernel.shape[:2]
    # The circular convolution is exact on the output rows kept below when its length is at least
    # h + kh // 2 (not the full h + kh - 1): the wrapped-around rows land outside them. The
    # channel sums run with the frequencies leading (one batched matmul per frequency without a
    # transpose inside the dot). 7x7 64->64 on 128 frames of 36x64: 1.34 s vs 1.61 s.
    fh, fw = fft_length(h + kh // 2), fft_length(w + kw // 2)
    xf = jnp.fft.rfft2(x, s=(fh, fw), axes=(1, 2))
    kf = jnp.fft.rfft2(kernel[::-1, ::-1], s=(fh, fw), axes=(0, 1))
    prod = jnp.moveaxis(jnp.einsum("nhwc,hwcd->hwnd", xf, kf), 2, 0)
    y = jnp.fft.irfft2(prod, s=(fh, fw), axes=(1, 2))
    # cross-correlation = full convolution with the flipped kernel, shifted by kh - 1 - pad_low
    oh, ow = kh - 1 - (kh - 1) // 2, kw - 1 - (kw - 1) // 2
    return y[:, oh:oh + h, ow:ow + w].astype(x.dtype)


def conv2d_im2col(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same convolution as :func:`conv2d` as one matmul over k*k shifted copies of ``x``.

    Used inside ``lax.scan`` (the ConvGRU's hidden-state convolutions): there XLA's CPU
    convolution backward pass was measured ~9x slower than this (7.1 s vs 0.8 s for a 30-frame
    GRU on (16, 36, 64, 8))."""
    kh, kw, cin, cout = kernel.shape
    ph, pw = kh // 2, kw // 2
    h, w = x.shape[1], x.shape[2]
    xp = jnp.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    cols = jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)], axis=-1)
    return cols @ kernel.reshape(kh * kw * cin, cout)


# Winograd's minimal filtering F(2 x 2, 3 x 3): each 2 x 2 block of outputs of a 3 x 3
# convolution from its 4 x 4 input tile with 16 products per channel pair instead of 36.
# B^T maps a tile, G a kernel, A^T a product back to outputs (Lavin & Gray, 2016).
_WINO_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_WINO_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)
_WINO_AT = ((1, 1, 1, 0), (0, 1, -1, -1))


def _signed_sum(rows: tuple, parts: list) -> list:
    """``[sum_j rows[i][j] * parts[j] for i]`` for coefficients in {-1, 0, 1}, as adds."""
    out = []
    for row in rows:
        acc = None
        for c, v in zip(row, parts):
            if c:
                acc = (v if c > 0 else -v) if acc is None else (acc + v if c > 0 else acc - v)
        out.append(acc)
    return out


def conv2d_winograd(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same 3 x 3 convolution as :func:`conv2d` (stride 1, 'SAME') by Winograd's F(2x2, 3x3).

    The frame is cut into overlapping 4 x 4 tiles at a stride of 2; each tile and the kernel are
    transformed, multiplied as 16 matmuls over channels (2.25x fewer products than the direct
    convolution), and transformed back into 2 x 2 outputs. The tiles hold 4x the input, against
    9x for im2col. Forward+backward 3x3 64->192 on 120 frames of 36x64: 0.85 s vs 1.50 s for
    im2col (alone on the 2 cores); values agree to ~1e-6 relative."""
    n, h, w, cin = x.shape
    cout = kernel.shape[-1]
    th, tw = -(-h // 2), -(-w // 2)                                   # tiles down and across
    xp = jnp.pad(x, ((0, 0), (1, 2 * th + 1 - h), (1, 2 * tw + 1 - w), (0, 0)))
    rows = _signed_sum(_WINO_BT, [xp[:, i:i + 2 * th:2] for i in range(4)])      # B^T d
    v = [c for r in rows for c in _signed_sum(_WINO_BT, [r[:, :, j:j + 2 * tw:2] for j in range(4)])]  # (B^T d) B
    v = jnp.stack(v, 0).reshape(16, n * th * tw, cin)
    u = jnp.einsum("ai,bj,ijcd->abcd", _WINO_G, _WINO_G, kernel).reshape(16, cin, cout)  # G g G^T
    m = jnp.einsum("kpc,kcd->kpd", v, u).reshape(4, 4, n, th, tw, cout)
    rows = _signed_sum(_WINO_AT, [m[i] for i in range(4)])                        # A^T m
    y = jnp.stack([jnp.stack(_signed_sum(_WINO_AT, [r[j] for j in range(4)]), -2) for r in rows], 2)  # (A^T m) A
    return y.reshape(n, 2 * th, 2 * tw, cout)[:, :h, :w]


def uses_winograd(kernel: jax.Array) -> bool:
    """Whether :func:`gru_conv` takes Winograd for this (k, k, Cin, Cout) kernel."""
    return kernel.shape[0] == kernel.shape[1] == 3 and kernel.shape[2] >= WINOGRAD_MIN_CHANNELS


def gru_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The ConvGRU's convolutions: Winograd for 3 x 3 kernels from WINOGRAD_MIN_CHANNELS input
    channels, im2col matmuls otherwise."""
    if uses_winograd(kernel):
        return conv2d_winograd(x, kernel)
    return conv2d_im2col(x, kernel)


def causal_temporal_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Causal conv over time: x (B, T, H, W, C), kernel (kt, C, Cout); output frame t sees
    frames t-kt+1..t (earlier frames are zero-padded). Returns (B, T, H, W, Cout). Clips of up
    to 2 kt frames run as matmuls, longer ones as a 1-D convolution over time. Large B runs in
    pieces (:func:`in_pieces`)."""
    return in_pieces(lambda v: _temporal(v, kernel), x)


def _temporal(x: jax.Array, kernel: jax.Array) -> jax.Array:
    kt, _, cout = kernel.shape
    t = x.shape[1]
    if t > 2 * kt:
        return _temporal_conv1d(x, kernel)
    # Short clips: no zero padding is multiplied. Each of the first kt - 1 frames is one matmul
    # over the frames it has (concatenated along channels), the rest a sum of kt matmuls over
    # shifted views. With 4-frame clips and kt = 5 (the Sensorium size) most of a padded sum is
    # zeros: forward+backward 0.31 s vs 0.64 s per 64->64 layer (0.71 s vs 0.85 s as a 1-D
    # convolution, cores shared with a training run).
    head = [jnp.concatenate([x[:, s - j] for j in range(s + 1)], -1) @ kernel[:s + 1].reshape(-1, cout)
            for s in range(min(t, kt - 1))]                                        # kernel[j]: j frames back
    if t < kt:
        return jnp.stack(head, 1)
    body = 0.0
    for j in range(kt):
        body = body + jnp.einsum("bthwc,cd->bthwd", x[:, kt - 1 - j: t - j], kernel[j])
    return jnp.concatenate([jnp.stack(head, 1), body], 1) if head else body


def _temporal_conv1d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    # Longer clips: time moved next to the channels and every pixel a batch row of one 1-D XLA
    # convolution. At the demo's size (4 x 30 frames of 18 x 32, 32 -> 32, kt = 5) forward+backward
    # 40 ms vs 102 ms for the shifted-view matmuls (cores shared with a training run), whose time
    # jumps between 10 and 16 frames; the two transposes cost less than that. At large.toml's
    # size (16 x 30 frames of 36 x 64, 64 -> 64) 1.24 s vs 1.70 s.
    b, t, h, w, c = x.shape
    xt = x.transpose(0, 2, 3, 1, 4).reshape(b * h * w, t, c)
    y = jax.lax.conv_general_dilated(xt, kernel[::-1], (1,), [(kernel.shape[0] - 1, 0)],
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return y.reshape(b, h, w, t, -1).transpose(0, 3, 1, 2, 4)


def avg_pool(x: jax.Array, f: int) -> jax.Array:
    """Average-pool (B, T, H, W, C) by ``f`` in H and W (edges cropped to a multiple of f)."""
    b, t, h, w, c = x.shape
    x = x[:, :, : h // f * f, : w // f * f]
    return x.reshape(b, t, h // f, f, w // f, f, c).mean(axis=(3, 5))


def init_param(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> nnx.Param:
    """Normal(0, 1/fan_in) weights drawn with NumPy (no per-shape XLA compilation at start-up)."""
    return nnx.Param(jnp.asarray(rng.standard_normal(shape) * np.sqrt(1.0 / fan_in), jnp.float32))


class FactorisedConv3d(nnx.Module):
    """Spatial k x k conv per frame, then a causal temporal conv of ``kt`` frames, plus bias."""

    def __init__(self, cin: int, cout: int, k: int, kt: int, *, rng: np.random.Generator, stride: int = 1,
                 impl: str = "auto"):
        self.spatial = init_param(rng, (k, k, cin, cout), k * k * cin)
        self.temporal = init_param(rng, (kt, cout, cout), kt * cout)
        self.bias = nnx.Param(jnp.zeros((cout,)))
        self.stride = stride
        # the spatial convolution through the FFT or XLA's (model.core.conv_impl; use_fft)
        self.impl = "fft" if use_fft(impl, stride, cin, k) else "xla"

    def __call__(self, x: jax.Array) -> jax.Array:
        """x (B, T, H, W, Cin) -> (B, T, H', W', Cout) (H' = ceil(H / stride))."""
        b, t, h, w, c = x.shape
        flat = x.reshape(b * t, h, w, c)
        if self.impl == "fft":
            y = conv2d_fft(flat, self.spatial[...])
        else:
            y = conv2d(flat, self.spatial[...], self.stride)
        y = y.reshape((b, t) + y.shape[1:])
        return causal_temporal_conv(y, self.temporal[...]) + self.bias[...]


class ConvGRU(nnx.Module):
    """Convolutional GRU over time. Input-to-hidden convolutions run for all frames at once
    (time folded into batch, in pieces); only the hidden-to-hidden convolutions run inside
    ``lax.scan``. Both are matmuls: Winograd's F(2x2, 3x3) for 3 x 3 kernels from 16 input
    channels, im2col otherwise (:func:`gru_conv`).
    ``reset_after``: the candidate is ``tanh(W_x x + r * (W_hn h))`` instead of
    ``tanh(W_x x + W_hn (r * h))`` (same weights; see ``CoreConfig.gru_reset_after``)."""

    def __init__(self, cin: int, ch: int, k: int, *, rng: np.random.Generator, reset_after: bool = False,
                 k_hidden: int | None = None):
        kh = k if k_hidden is None else int(k_hidden)
        self.w_x = init_param(rng, (k, k, cin, 3 * ch), k * k * cin)
        self.w_h = init_param(rng, (kh, kh, ch, 2 * ch), kh * kh * ch)
        self.w_hn = init_param(rng, (kh, kh, ch, ch), kh * kh * ch)
        self.bias = nnx.Param(jnp.zeros((3 * ch,)))
        self.ch = ch
        self.reset_after = bool(reset_after)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x (B, T, H, W, Cin) -> hidden states (B, T, H, W, ch), starting from h = 0."""
        b, t, h, w, c = x.shape
        ch = self.ch
        w_x = self.w_x[...]
        limit = WINOGRAD_CHUNK_ELEMENTS if uses_winograd(w_x) else IM2COL_CHUNK_ELEMENTS
        gx = in_pieces(lambda v: gru_conv(v, w_x), x.reshape(b * t, h, w, c), limit=limit)
        gx = gx.reshape(b, t, h, w, 3 * ch) + self.bias[...]
        w_hn = self.w_hn[...]
        # hidden weights of one matmul per frame: z and r (and, reset-after, the candidate's)
        w_hid = jnp.concatenate([self.w_h[...], w_hn], axis=-1) if self.reset_after else self.w_h[...]

        def step(hid, g):
            gh = gru_conv(hid, w_hid)
            z = jax.nn.sigmoid(g[..., :ch] + gh[..., :ch])
            r = jax.nn.sigmoid(g[..., ch:2 * ch] + gh[..., ch:2 * ch])
            hidden_n = r * gh[..., 2 * ch:] if self.reset_after else gru_conv(r * hid, w_hn)
            new = (1.0 - z) * hid + z * jnp.tanh(g[..., 2 * ch:] + hidden_n)
            return new, new

        def run(g):  # (b', T, H, W, 3 ch) -> hidden states (b', T, H, W, ch)
            # the first frame starts from h = 0, where every hidden-to-hidden convolution is 0:
            # h_1 = z * tanh(g_n) without them (a quarter of the GRU's hidden work at 4 frames)
            first = jax.nn.sigmoid(g[:, 0, ..., :ch]) * jnp.tanh(g[:, 0, ..., 2 * ch:])
            if t == 1:
                return first[:, None]
            _, hs = jax.lax.scan(step, first, jnp.moveaxis(g[:, 1:], 1, 0))
            return jnp.concatenate([first[:, None], jnp.moveaxis(hs, 0, 1)], 1)

        # clips are independent: large batches run in pieces, sized by k * k copies of one frame's
        # hidden state (one clip of 36 x 64 x 64 per piece; the scan slows down more than linearly,
        # as conv2d does)
        return in_pieces(run, gx, per_item=h * w * ch * self.w_h.shape[0] * self.w_h.shape[1])


def gaussian_blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix M with rows summing to 1 so that ``M @ v`` blurs v with a Gaussian of
    ``sigma`` samples (renormalised at the edges)."""
    i = np.arange(n)
    m = np.exp(-0.5 * ((i[:, None] - i[None, :]) / max(sigma, 1e-6)) ** 2)
    return (m / m.sum(1, keepdims=True)).astype(np.float32)


class DivisiveNorm(nnx.Module):
    """``y_c = x_c / sqrt(s_c^2 + G * sum_d w_cd x_d^2)``: divisive normalisation by the local
    energy of all channels. ``w`` = softplus(param) >= 0 mixes channel energies, ``G`` is a
    fixed Gaussian spatial pool (two small matmuls over H and W), ``s`` = softplus(param) the
    semi-saturation constant per channel."""

    def __init__(self, channels: int, pool_px: float):
        self.mix = nnx.Param(jnp.full((channels, channels), -2.0, jnp.float32))   # softplus ~0.13
        self.semi = nnx.Param(jnp.full((channels,), 0.5413, jnp.float32))         # softplus = 1
        self.pool_px = float(pool_px)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x (B, T, H, W, C) -> same shape."""
        h, w = x.shape[2], x.shape[3]
        gh = jnp.asarray(gaussian_blur_matrix(h, self.pool_px))
        gw = jnp.asarray(gaussian_blur_matrix(w, self.pool_px))
        e = (x * x) @ jax.nn.softplus(self.mix[...])
        e = jnp.einsum("ih,bthwc->btiwc", gh, e)
        e = jnp.einsum("jw,bthwc->bthjc", gw, e)
        return x * jax.lax.rsqrt(jax.nn.softplus(self.semi[...]) ** 2 + e)


class Core(nnx.Module):
    """Shared core: (B, T, H, W) normalised frames -> features (B, T, H', W', out_channels):
    the GRU's hidden states, after the convolution layers' outputs if ``skip_features``, mapped
    linearly to ``projection`` channels if that is set."""

    def __init__(self, cfg: CoreConfig, *, rng: np.random.Generator):
        if (problem := cfg.kernel_problem()) is not None:
            raise ValueError(f"model.core.{problem[0]}: expected {problem[1]}, got {problem[2]}")
        if cfg.projection < 0:
            raise ValueError(f"model.core.projection: expected 0 (none) or a number of channels, got {cfg.projection}")
        ks = layer_kernels(cfg)
        chans = [1] + [cfg.channels] * cfg.layers
        strided = cfg.input_downsample_mode == "stride" and cfg.input_downsample > 1
        self.convs = nnx.List([FactorisedConv3d(chans[i], chans[i + 1], ks[i], cfg.temporal_kernel, rng=rng,
                                                stride=cfg.input_downsample if strided and i == 0 else 1,
                                                impl=cfg.conv_impl)
                               for i in range(cfg.layers)])
        self.gru = ConvGRU(chans[-1], cfg.gru_channels, cfg.gru_kernel, rng=rng,
                           reset_after=cfg.gru_reset_after, k_hidden=cfg.gru_hidden_kernel)
        self.skip = bool(cfg.skip_features)
        features = cfg.gru_channels + (cfg.layers * cfg.channels if self.skip else 0)
        # drawn after every other weight, so a config without it starts from the same weights
        self.projection = init_param(rng, (features, cfg.projection), features) if cfg.projection > 0 else None
        self.out_channels = cfg.projection if cfg.projection > 0 else features
        self.downsample = cfg.downsample
        self.input_downsample = 1 if strided else cfg.input_downsample
        self.norm = DivisiveNorm(cfg.channels, cfg.norm_pool_px) if cfg.normalization == "divisive" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x[..., None]
        if self.input_downsample > 1:
            y = avg_pool(y, self.input_downsample)
        skips = []                                      # each conv layer's output, if skip_features
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i == 0 and self.norm is not None:
                y = self.norm(y)
            y = jax.nn.elu(y)
            if self.skip:
                skips.append(y)
        if self.downsample > 1:
            y = avg_pool(y, self.downsample)
            skips = [avg_pool(v, self.downsample) for v in skips]
        out = self.gru(y)
        out = jnp.concatenate(skips + [out], axis=-1) if skips else out
        return out if self.projection is None else out @ self.projection[...]

    def laplace_penalty(self) -> jax.Array:
        """Sum of squared 3x3 Laplacians of the first layer's spatial filters over the sum of
        their squares (scale-free smoothness penalty)."""
        w = self.convs[0].spatial[...]  # (k, k, 1, C)
        k, _, cin, cout = w.shape
        lap = jnp.array([[0.5, 1.0, 0.5], [1.0, -6.0, 1.0], [0.5, 1.0, 0.5]], w.dtype)
        x = jnp.transpose(w, (2, 3, 0, 1)).reshape(cin * cout, k, k, 1)
        y = conv2d(x, lap[:, :, None, None])
        return jnp.sum(y ** 2) / (jnp.sum(w ** 2) + 1e-8)

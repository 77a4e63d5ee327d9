"""A PyTorch peer of the twin's architecture, for speed comparisons only (not part of `twin`).

The same network the twin trains (SCIENCE.md section 2, Sensorium 2023 lineage):

    frames (B, 1, T, H, W)
      -> factorised 3D conv core: per layer a spatial conv (1, k, k), a temporal conv (kt, 1, 1)
         (causal: left-padded in time) with bias, ELU
      -> ConvGRU over time (input conv C -> 3C; hidden convs C -> 2C for z, r and C -> C on
         r * h for the candidate; kernel k_rnn)
      -> per frame, per scan: neuralpredictors' FullGaussian2d readout (full 2x2 covariance,
         position sampled per image in training, bilinear grid_sample, feature vector, bias),
         its grid shifted by a per-scan MLP shifter of eye position (neuralpredictors MLP)
      -> ELU + 1, times a per-neuron modulator gain ELU(W mlp(running, pupil)) + 1
    loss: Poisson, rate - y log(rate + eps) over frames after burn-in, + L1 on readout features
    + Laplacian smoothness of the first-layer filters; global-norm clipping, AdamW.

If neuralpredictors is not installed, an equivalent readout and shifter written here are used
(``HAVE_NEURALPREDICTORS`` says which). Sizes come from :class:`PeerSpec`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

try:
    from neuralpredictors.layers.readouts import FullGaussian2d
    from neuralpredictors.layers.shifters.mlp import MLP as MLPShifter
    HAVE_NEURALPREDICTORS = True
except ImportError:  # pragma: no cover - the benchmark says which one it used
    HAVE_NEURALPREDICTORS = False


@dataclasses.dataclass(frozen=True)
class PeerSpec:
    """Sizes of one benchmark (shared by the twin side and the peer)."""

    batch: int = 32
    frames: int = 4
    height: int = 36
    width: int = 64
    n_neurons: int = 8000
    channels: tuple[int, ...] = (64, 64, 64, 64)
    spatial_kernels: tuple[int, ...] = (9, 7, 7, 7)
    temporal_kernels: tuple[int, ...] = (5, 5, 5, 5)
    rnn_channels: int = 64
    rnn_kernel: int = 3
    rnn_reset_after: bool = False  # n = tanh(Wx x + r * (Wh h)) (PyTorch's nn.GRU) instead of Wh (r * h)
    rnn_hidden_kernel: int | None = None  # hidden-to-hidden kernel (None: rnn_kernel)
    skip_features: bool = False  # the readout also sees every conv layer's output (the twin's core.skip_features)
    shifter_hidden: int = 5
    shifter_layers: int = 3
    modulator_hidden: int = 8
    burn_in: int = 1
    downsample: int = 1  # average-pool the core features by this factor before the GRU
    input_downsample: int = 1  # average-pool the frames by this factor before the first conv
    normalization: bool = False  # divisive normalisation after the first layer (the twin's core.normalization)
    norm_pool_px: float = 2.0  # its Gaussian spatial pool's s.d. in feature pixels
    lr: float = 1e-3

    @property
    def rnn_hidden(self) -> int:
        """The GRU's effective hidden-to-hidden kernel size."""
        return self.rnn_kernel if self.rnn_hidden_kernel is None else self.rnn_hidden_kernel

    @property
    def core_hw(self) -> tuple[int, int]:
        """(H, W) of the conv layers' feature maps: the frames average-pooled by input_downsample."""
        return self.height // self.input_downsample, self.width // self.input_downsample


class DivisiveNorm(nn.Module):
    """As the twin's: y_c = x_c / sqrt(s_c^2 + G * sum_d w_cd x_d^2), w = softplus(param) mixing
    channel energies, G a fixed separable Gaussian spatial pool, s = softplus(param)."""

    def __init__(self, channels: int, height: int, width: int, pool_px: float):
        super().__init__()
        self.mix = nn.Parameter(torch.full((channels, channels), -2.0))
        self.semi = nn.Parameter(torch.full((channels,), 0.5413))
        from twin.model.core import gaussian_blur_matrix   # the twin's pool, numpy only (imported when used)

        self.register_buffer("gh", torch.from_numpy(gaussian_blur_matrix(height, pool_px)))
        self.register_buffer("gw", torch.from_numpy(gaussian_blur_matrix(width, pool_px)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        e = torch.einsum("bcthw,cd->bdthw", x * x, F.softplus(self.mix))
        e = torch.einsum("ih,bcthw,jw->bctij", self.gh, e, self.gw)
        return x * torch.rsqrt(F.softplus(self.semi)[None, :, None, None, None] ** 2 + e)


class FactorisedCore(nn.Module):
    """Stacked layers: spatial k x k conv per frame -> causal temporal conv (+ bias) -> ELU, with
    the first layer divisively normalised before its ELU if ``spec.normalization``."""

    def __init__(self, spec: PeerSpec):
        super().__init__()
        self.norm = DivisiveNorm(spec.channels[0], *spec.core_hw, spec.norm_pool_px) if spec.normalization else None
        layers = []
        c_in = 1
        for c, k, kt in zip(spec.channels, spec.spatial_kernels, spec.temporal_kernels):
            layers.append(nn.ModuleDict({
                "spatial": nn.Conv3d(c_in, c, (1, k, k), padding=(0, k // 2, k // 2), bias=False),
                "temporal": nn.Conv3d(c, c, (kt, 1, 1), bias=True),
            }))
            c_in = c
        self.layers = nn.ModuleList(layers)
        self.temporal_kernels = spec.temporal_kernels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # (B, C, T, H, W) -> each layer's output
        outs = []
        for i, (layer, kt) in enumerate(zip(self.layers, self.temporal_kernels)):
            x = layer["spatial"](x)
            x = layer["temporal"](F.pad(x, (0, 0, 0, 0, kt - 1, 0)))  # causal in time
            if i == 0 and self.norm is not None:
                x = self.norm(x)
            x = F.elu(x)
            outs.append(x)
        return outs

    def laplace_penalty(self) -> torch.Tensor:
        """Scale-free smoothness of the first layer's spatial filters (as the twin's)."""
        w = self.layers[0]["spatial"].weight[:, :, 0]  # (C, 1, k, k)
        lap = w.new_tensor([[0.5, 1.0, 0.5], [1.0, -6.0, 1.0], [0.5, 1.0, 0.5]])[None, None]
        y = F.conv2d(w.reshape(-1, 1, *w.shape[-2:]), lap, padding=1)
        return (y ** 2).sum() / ((w ** 2).sum() + 1e-8)


class ConvGRU(nn.Module):
    """Convolutional GRU over the time axis of (B, C, T, H, W), as the twin's: the candidate sees
    r * h, n = tanh(Wx x + Whn (r * h)), or with ``reset_after`` r scales the hidden conv's
    output, n = tanh(Wx x + r * (Whn h)), computed with one conv for all three gates;
    h' = (1 - z) h + z n."""

    def __init__(self, c_in: int, c: int, k: int, reset_after: bool = False, k_hidden: int | None = None):
        super().__init__()
        kh = k if k_hidden is None else k_hidden
        self.x_conv = nn.Conv2d(c_in, 3 * c, k, padding=k // 2)
        self.reset_after = reset_after
        if reset_after:
            self.h_conv = nn.Conv2d(c, 3 * c, kh, padding=kh // 2, bias=False)
        else:
            self.h_conv = nn.Conv2d(c, 2 * c, kh, padding=kh // 2, bias=False)
            self.hn_conv = nn.Conv2d(c, c, kh, padding=kh // 2, bias=False)
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        # the input convolution of all frames at once, as one big conv
        xs = self.x_conv(x.transpose(1, 2).reshape(b * t, -1, h, w)).reshape(b, t, 3 * self.c, h, w)
        state = x.new_zeros(b, self.c, h, w)
        out = []
        for i in range(t):
            xz, xr, xn = xs[:, i].chunk(3, dim=1)
            if self.reset_after:
                hz, hr, hn = self.h_conv(state).chunk(3, dim=1)
                z, r = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
                n = torch.tanh(xn + r * hn)
            else:
                hz, hr = self.h_conv(state).chunk(2, dim=1)
                z = torch.sigmoid(xz + hz)
                r = torch.sigmoid(xr + hr)
                n = torch.tanh(xn + self.hn_conv(r * state))
            state = (1 - z) * state + z * n
            out.append(state)
        return torch.stack(out, dim=1)  # (B, T, C, H, W)


class _Readout(nn.Module):
    """FullGaussian2d equivalent, used only if neuralpredictors is missing."""

    def __init__(self, in_shape: tuple[int, int, int], n: int):
        super().__init__()
        c = in_shape[0]
        self._mu = nn.Parameter(torch.empty(1, n, 1, 2).uniform_(-0.1, 0.1))
        self.sigma = nn.Parameter(torch.empty(1, n, 2, 2).uniform_(-0.1, 0.1))
        self.features = nn.Parameter(torch.full((1, c, n), 1.0 / c))
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        norm = x.new_empty(b, self._mu.shape[1], 1, 2).normal_() if self.training else \
            x.new_zeros(b, self._mu.shape[1], 1, 2)
        grid = torch.clamp(torch.einsum("ancd,bnid->bnic", self.sigma, norm) + self._mu, -1, 1)
        if shift is not None:
            grid = grid + shift[:, None, None, :]
        y = F.grid_sample(x, grid, align_corners=True).squeeze(-1)
        return (y * self.features).sum(1) + self.bias


class PeerModel(nn.Module):
    """Core + ConvGRU + Gaussian readout + shifter + modulator gain, for one scan.

    Differences from the twin that do not change the work: neuralpredictors' readout draws a
    position per image (frame), the twin one per clip."""

    def __init__(self, spec: PeerSpec):
        super().__init__()
        self.spec = spec
        self.core = FactorisedCore(spec)
        self.rnn = ConvGRU(spec.channels[-1], spec.rnn_channels, spec.rnn_kernel, spec.rnn_reset_after,
                           spec.rnn_hidden)
        n_features = spec.rnn_channels + (sum(spec.channels) if spec.skip_features else 0)
        in_shape = (n_features, spec.core_hw[0] // spec.downsample, spec.core_hw[1] // spec.downsample)
        if HAVE_NEURALPREDICTORS:
            self.readout = FullGaussian2d(in_shape, spec.n_neurons, bias=True, gauss_type="full")
            self.shifter = MLPShifter(2, spec.shifter_hidden, spec.shifter_layers)
        else:
            self.readout = _Readout(in_shape, spec.n_neurons)
            self.shifter = nn.Sequential(nn.Linear(2, spec.shifter_hidden), nn.Tanh(),
                                         nn.Linear(spec.shifter_hidden, spec.shifter_hidden),
                                         nn.Tanh(), nn.Linear(spec.shifter_hidden, 2), nn.Tanh())
        self.modulator = nn.Sequential(nn.Linear(2, spec.modulator_hidden), nn.Tanh(),
                                       nn.Linear(spec.modulator_hidden, spec.n_neurons))

    def forward(self, frames: torch.Tensor, behaviour: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
        """frames (B, T, H, W) standardised; behaviour (B, T, 2); eye (B, T, 2) -> rates (B, T, N)."""
        b, t, h, w = frames.shape
        x = frames[:, None]                                        # (B, 1, T, H, W)
        if self.spec.input_downsample > 1:
            x = F.avg_pool3d(x, (1, self.spec.input_downsample, self.spec.input_downsample))
        layers = self.core(x)                                      # each (B, C, T, H, W)
        f = self.spec.downsample
        if f > 1:
            layers = [F.avg_pool3d(v, (1, f, f)) for v in layers]
        x = self.rnn(layers[-1])                                   # (B, T, C, H', W')
        if self.spec.skip_features:
            x = torch.cat([v.transpose(1, 2) for v in layers] + [x], dim=2)
        x = x.reshape(b * t, *x.shape[2:])
        shift = self.shifter(eye.reshape(b * t, 2))
        y = self.readout(x, shift=shift)                           # (B*T, N)
        gain = F.elu(self.modulator(behaviour.reshape(b * t, 2))) + 1
        return ((F.elu(y) + 1) * gain).reshape(b, t, -1)


def poisson_loss(rate: torch.Tensor, y: torch.Tensor, burn_in: int, eps: float = 1e-8) -> torch.Tensor:
    """Mean over frames after burn-in of rate - y log(rate + eps)."""
    rate, y = rate[:, burn_in:], y[:, burn_in:]
    return (rate - y * torch.log(rate + eps)).mean()


def make_batch(spec: PeerSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random data of the benchmark's size (the twin side uses the same arrays)."""
    g = torch.Generator().manual_seed(seed)
    b, t = spec.batch, spec.frames
    return {
        "frames": torch.randn(b, t, spec.height, spec.width, generator=g),
        "behaviour": torch.randn(b, t, 2, generator=g),
        "eye": 0.1 * torch.randn(b, t, 2, generator=g),
        "response": torch.poisson(torch.full((b, t, spec.n_neurons), 0.5), generator=g),
    }


def time_training(spec: PeerSpec, steps: int = 3, warmup: int = 1, threads: int = 2,
                  batch: dict[str, Any] | None = None) -> dict[str, float]:
    """Median seconds per Adam step of the peer at ``spec`` on ``threads`` CPU threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = PeerModel(spec)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=1e-4)
    batch = batch or make_batch(spec)
    batch = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in batch.items()}

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        rate = model(batch["frames"], batch["behaviour"], batch["eye"])
        loss = poisson_loss(rate, batch["response"], spec.burn_in)
        loss = loss + 0.01 * model.readout.features.abs().sum() / spec.n_neurons \
            + 0.1 * model.core.laplace_penalty()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        return float(loss.detach())

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    return {"step_s": med, "frames_per_s": spec.batch * spec.frames / med,
            "n_params": float(sum(p.numel() for p in model.parameters())),
            "neuralpredictors": float(HAVE_NEURALPREDICTORS)}


def forward_flops(spec: PeerSpec) -> dict[str, float]:
    """Analytic multiply-add FLOPs (2 per MAC) of one forward pass, by layer group."""
    h, w = spec.core_hw
    px = spec.batch * spec.frames * h * w
    out: dict[str, float] = {}
    c_in = 1
    for i, (c, k, kt) in enumerate(zip(spec.channels, spec.spatial_kernels, spec.temporal_kernels)):
        out[f"core{i}.spatial"] = 2.0 * px * c_in * c * k * k
        out[f"core{i}.temporal"] = 2.0 * px * c * c * kt
        if i == 0 and spec.normalization:  # channel mix of the energies + separable spatial pool
            out["core0.norm"] = 2.0 * px * c * (c + h + w)
        c_in = c
    c = spec.rnn_channels
    px = px / spec.downsample ** 2
    out["rnn.input"] = 2.0 * px * c_in * 3 * c * spec.rnn_kernel ** 2
    out["rnn.hidden"] = 2.0 * px * c * 3 * c * spec.rnn_hidden ** 2  # C->2C and C->C
    # bilinear sampling (4 taps) + feature dot product, per neuron per frame
    c_read = c + (sum(spec.channels) if spec.skip_features else 0)
    out["readout"] = 2.0 * spec.batch * spec.frames * spec.n_neurons * c_read * 5
    out["modulator"] = 2.0 * spec.batch * spec.frames * spec.n_neurons * spec.modulator_hidden
    return out


def train_step_flops(spec: PeerSpec) -> float:
    """Forward + backward (~2x forward: input and weight gradients) of one step."""
    return 3.0 * math.fsum(forward_flops(spec).values())

"""Model configuration: the sizes of the core, readout, shifter and modulator (TOML ``[model]``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class CoreConfig:
    """Shared core: ``layers`` factorised 3D convolutions (spatial ``kernel`` x ``kernel`` per frame,
    then a causal temporal conv over ``temporal_kernel`` frames), ELU, then a ConvGRU.

    ``kernel`` may hold one size per layer (the first is usually larger), or one for all.
    The feature map is ``input_downsample * downsample`` times smaller than the frames.
    """

    channels: int = 16
    layers: int = 3
    kernel: tuple[int, ...] = (9, 7)
    temporal_kernel: int = 5
    gru_channels: int = 16
    gru_kernel: int = 3
    # kernel of the hidden-to-hidden convolutions (None: ``gru_kernel``). With k > 1 every frame
    # widens what one location's hidden state has seen by (k - 1) / 2 pixels per side, so after
    # 30 frames a 3 x 3 GRU mixes the whole demo screen into each location; 1 keeps the recurrence
    # per location (spatial mixing only through the input convolution) and costs k^2 times less
    gru_hidden_kernel: int | None = None
    # True: the readout sees the convolution layers' features (after ELU) beside the GRU's, as
    # one feature vector of ``layers * channels + gru_channels`` per location (skip connections
    # around the GRU; the readouts get more neuron-specific features at no extra core cost)
    skip_features: bool = False
    # False: the classic GRU, n = tanh(W_x x + W_h (r * h)); True: the reset gate scales the
    # hidden-state convolution's output, n = tanh(W_x x + r * (W_h h)) (PyTorch's and cuDNN's GRU),
    # so one im2col matmul per frame computes all three gates' hidden terms (the GRU's
    # forward+backward 1.3x faster on demo.toml's 32-channel core)
    gru_reset_after: bool = False
    downsample: int = 1           # average-pool the conv features by this factor before the GRU
    input_downsample: int = 1     # average-pool the (normalised) frames by this factor before the convs
    # how the frames are brought down by ``input_downsample``: "pool" averages them before the first
    # convolution; "stride" runs the first convolution on the full-resolution frames with that
    # stride (its kernel is in full-resolution pixels), keeping the fine spatial frequencies that
    # averaging aliases away
    input_downsample_mode: Literal["pool", "stride"] = "pool"
    # "divisive": each first-layer channel is divided by the local energy of all channels
    # (learned non-negative channel weights, Gaussian spatial pool of ``norm_pool_px`` feature
    # pixels, learned per-channel semi-saturation), as in divisive-normalisation models of V1
    # (Heeger 1992; Burg et al. 2021); "none": no normalisation stage
    normalization: Literal["none", "divisive"] = "none"
    norm_pool_px: float = 2.0
    # 0: the readouts see the core's features as they are; n > 0: a learned linear map, shared by
    # every scan and part of the core (frozen with it), takes each location's features to n
    # channels first. The readouts' per-neuron projection of the feature map and the refit's design
    # shrink by features / n. On demo.toml's ensemble (96 features to 32, 2026-12-07) the steps
    # were 6% faster and the refits 1.7x, the training 46.3 min vs 51.0, but held-out natural
    # movies fell to 0.798 of the truth from 0.808 (demo.toml), so the demo leaves it off
    projection: int = 0
    # how the convolution layers' spatial convolutions run (stride 1; the same numbers to ~1e-6):
    # "xla", XLA's convolution; "fft", rfft2 of the frames and the flipped kernel, products summed
    # over input channels per frequency, irfft2, in the layers with at least core.FFT_MIN_CHANNELS
    # (4) input channels (the first layer sees one and keeps XLA's); "auto", the FFT in the layers
    # where it was measured to win or tie on XLA CPU (kernels of 5 and more from at least 16
    # channels, on the CPU backend; core.use_fft), XLA's elsewhere and on GPUs. The
    # Sensorium-sized training step (7x7, 64 channels) took 7.45 s with "auto" vs 23.0 s with
    # "xla" (2026-12-05; 6.65 s with "auto" since the GRU's Winograd convolutions;
    # benchmarks/README.md). The GRU's convolutions are matmuls either way (Winograd's F(2x2, 3x3)
    # for 3 x 3 kernels from 16 input channels, im2col otherwise).
    conv_impl: Literal["auto", "xla", "fft"] = "auto"
    # smoothness of the first-layer spatial filters; the Poisson loss it is added to is a mean per
    # neuron-frame (~1), so weights of 1e-2 and more blur away oriented filters (demo.toml)
    laplace_weight: float = 1e-4

    def kernel_problem(self) -> tuple[str, str, object] | None:
        """(field, expected, value) for the first GRU kernel that is not a positive odd size."""
        for name, k in (("gru_kernel", self.gru_kernel), ("gru_hidden_kernel", self.gru_hidden_kernel)):
            if k is not None and (k < 1 or k % 2 == 0):
                return name, "a positive odd kernel size (the GRU keeps the feature map's size)", k
        return None


@dataclass(frozen=True)
class ReadoutConfig:
    """Per-scan Gaussian readout; ``feature_l1`` weights the L1 penalty on feature vectors."""

    init_mu_range: float = 0.8     # initial positions uniform in [-r, r]^2
    init_sigma: float = 0.2        # initial std of the position Gaussian, grid units ([-1, 1])
    feature_l1: float = 0.01
    grid_predictor: bool = False   # predict positions from cortical coordinates with an MLP
    # "uniform": initial positions uniform in [-init_mu_range, init_mu_range]^2; "energy": where
    # oriented stimulus energy best predicts each neuron's training responses (twin.train.rf_init)
    position_init: Literal["uniform", "energy"] = "uniform"
    # with "energy": pool each neuron's energy map over cortical neighbours within ~this lateral
    # distance (um) when the units have cortical_x / cortical_y (retinotopy); 0 turns it off
    position_init_pool_um: float = 100.0
    grid_predictor_hidden: int = 16
    # 0: point readout at the mean position (sampled from the position Gaussian in training, as
    # Lurz et al. 2021). k >= 2: Gaussian pooling: the features averaged over the position
    # Gaussian by k x k Gauss-Hermite points, the same in training and evaluation, so each
    # neuron's covariance is its learned spatial pooling extent (its RF size beyond the core's)
    pooling: int = 0
    # Gaussian readout components per neuron: 1 is the usual readout; with 2 or more each neuron
    # also reads extra positions (own Gaussian and feature vector each; started near the first,
    # with zero features), summed before the output nonlinearity, for RFs with subfields at
    # different places (the bipartite cells' texture subfield). Component 0 stays the neuron's
    # position and feature vector for the in-silico and connectomics consumers.
    components: int = 1
    # 0: off. k (odd, >= 3): component 0 reads its neuron's projected feature map (features .
    # feature vector) over a k x k patch of feature-map pixels centred on its position, with
    # learned per-neuron weights (started as a Gaussian of ``mask_init_sigma``) instead of the
    # position Gaussian: a localised form of the factorised readout (Klindt et al. 2017). The
    # position still moves the patch (and is what positions() reports). Signed weights
    # can extend a phase-sensitive channel coherently over a larger RF or add a surround, which a
    # Gaussian average cannot. Patch points off the map read zero. ``mask_l1`` weights the L1
    # penalty on the patch weights (mean over neurons of their absolute sum; 1 at the start).
    mask: int = 0
    mask_init_sigma: float = 1.0   # s.d. (feature pixels) of the Gaussian the patch weights start as
    mask_l1: float = 0.0
    # surround > 1: each Gaussian component also reads the features averaged over the same
    # Gaussian widened ``surround`` times, with its own feature vector (started at zero): a
    # per-neuron surround (or wider RF) in the core's channels. 0: off. Not with ``mask``.
    surround: float = 0.0

    def surround_problem(self) -> str | None:
        """What ``surround`` should be, when it is not a valid value (None when it is)."""
        if self.surround != 0 and not self.surround > 1:
            return "0 (off) or a widening factor > 1"
        if self.surround and self.mask:
            return "0 when model.readout.mask is used"
        return None

    def mask_problem(self) -> str | None:
        """What ``mask`` should be, when it is not a valid value (None when it is)."""
        ok = self.mask == 0 or (self.mask >= 3 and self.mask % 2 == 1)
        return None if ok else "0 (Gaussian component 0) or an odd patch size of at least 3 feature pixels"

    def pooling_problem(self) -> str | None:
        """What ``pooling`` should be, when it is not a valid value (None when it is)."""
        ok = self.pooling == 0 or self.pooling >= 2
        return None if ok else "0 (point readout) or at least 2 Gauss-Hermite points per axis"

    def components_problem(self) -> str | None:
        """What ``components`` should be, when it is not a valid value (None when it is)."""
        return None if self.components >= 1 else "at least 1 readout component per neuron"


@dataclass(frozen=True)
class ShifterConfig:
    """Per-scan eye-position MLP giving a shift of the readout grid (Sensorium: 3 layers, 5 hidden)."""

    enabled: bool = True
    layers: int = 3
    hidden: int = 5


@dataclass(frozen=True)
class ModulatorConfig:
    """Per-scan MLP on running and pupil giving a per-neuron gain ``ELU(.) + 1``."""

    enabled: bool = True
    hidden: int = 8


@dataclass(frozen=True)
class ModelConfig:
    core: CoreConfig = field(default_factory=CoreConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    shifter: ShifterConfig = field(default_factory=ShifterConfig)
    modulator: ModulatorConfig = field(default_factory=ModulatorConfig)


def feature_pixel_map(core: CoreConfig | dict, n: int) -> tuple[int, float, int]:
    """For an image axis of ``n`` pixels: (factor f, offset c, size m) such that feature-map index
    j (0..m-1) is centred on stimulus pixel ``j * f + c``."""
    get = core.get if isinstance(core, dict) else (lambda k, d: getattr(core, k, d))
    s, d = int(get("input_downsample", 1)), int(get("downsample", 1))
    if get("input_downsample_mode", "pool") == "stride" and s > 1:
        return s * d, (s * d - s) / 2, -(-n // s) // d
    return s * d, (s * d - 1) / 2, n // s // d


def layer_kernels(core: CoreConfig) -> list[int]:
    """Spatial kernel size of each core layer (the last entry of ``core.kernel`` repeats)."""
    ks = list(core.kernel) or [3]
    return [ks[min(i, len(ks) - 1)] for i in range(core.layers)]

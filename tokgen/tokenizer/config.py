"""`TokenizerConfig`: every architecture default of the C-ViViT tokenizer lives here, once.

Presets in ``conf/tokenizer/*.yaml`` set only the fields that differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from tokgen.dataclass_dict import from_fields

QUANTIZERS = ("vq", "fsq", "lfq")
LEGACY_DEAD_CODE_KEY = "dead_code_threshold"


@dataclass
class TokenizerConfig:
    """Shape, width and quantizer of a C-ViViT tokenizer.

    A clip of ``T`` frames becomes ``t = 1 + (T - 1) // temporal_patch`` latent frames of
    ``(H // patch_size) x (W // patch_size)`` codes: frame 0 is patched alone, later frames in
    tubelets of ``temporal_patch`` frames (Phenaki, section 2.1).
    """

    channels: int = 3
    patch_size: int = 8
    temporal_patch: int = 2
    dim: int = 256
    spatial_depth: int = 2
    temporal_depth: int = 2
    heads: int = 8
    dim_head: int = 32
    ff_mult: float = 4.0
    # Pixel refinement: each token is drawn as its own patch, so patch borders show seams; > 0 adds a
    # residual per-frame pair of 3x3 convolutions with this many channels over the decoded pixels.
    refine_channels: int = 0
    # Overlapping patches: each token sees this many pixels of its neighbours' patches on every side
    # (input), and its decoded patch reaches as far into theirs, summed where they overlap (output).
    # 0: the plain non-overlapping patches of ViViT. Per frame, so causality and chunking are unchanged.
    patch_overlap: int = 0
    # Causal temporal attention sees at most this many latent frames (itself included); None = all.
    # A finite window bounds the memory of chunked encode/decode of long videos and lets
    # positions generalise to any length (with rotary temporal positions).
    temporal_window: int | None = 8
    quantizer: str = "vq"
    # vq: cosine-similarity codebook of low-dimensional codes (improves usage, ViT-VQGAN sec. 3.2).
    codebook_size: int = 8192
    codebook_dim: int = 32
    vq_ema: bool = True  # EMA codebook updates; False learns the codebook by gradient
    vq_decay: float = 0.99
    commitment_weight: float = 0.25
    # vq: restart a code on a random latent of the batch when its use (an EMA count) falls below this
    # share of the mean code's; 0 never restarts. vector-quantize-pytorch's dead_code_threshold_ratio.
    # 0.9, not the library's 0.1: the reference tokenizer after 400 steps on Shapes (held-out usage of
    # 8192 codes / perplexity) 0.1: 3.7% / 120, 0.5: 11.5% / 469, 0.9: 16.5% / 502. See from_dict for
    # the absolute `dead_code_threshold` of configs saved before.
    dead_code_ratio: float = 0.9
    # fsq: the product of levels is the codebook size.
    fsq_levels: list[int] = field(default_factory=lambda: [8, 8, 8, 4, 4])
    # fsq: weight of a pull of the encoder's latents towards the centres of their FSQ cells (the squared
    # distance to the nearest level, in level units). FSQ alone leaves latents anywhere in a cell, so
    # after longer training flat content drifts across cell borders and gets codes that the decoder
    # no longer tells apart but the transformer has to predict. 0: off. See conf/tokenizer/small.yaml.
    fsq_center_weight: float = 0.0
    # lfq: codebook_size must be a power of two.
    lfq_entropy_weight: float = 0.1

    def __post_init__(self) -> None:
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"TokenizerConfig.quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        for name in (
            "channels",
            "patch_size",
            "temporal_patch",
            "dim",
            "spatial_depth",
            "temporal_depth",
            "heads",
            "dim_head",
            "codebook_dim",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"TokenizerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.patch_overlap < 0 or self.patch_overlap > self.patch_size:
            raise ValueError(
                f"TokenizerConfig.patch_overlap must be in [0, patch_size={self.patch_size}], got {self.patch_overlap}"
            )
        if not 0.0 <= self.dead_code_ratio < 1.0:
            raise ValueError(
                f"TokenizerConfig.dead_code_ratio must be in [0, 1) (a share of the mean code's use; 0: no "
                f"restarts), got {self.dead_code_ratio}"
            )
        if self.fsq_center_weight < 0:
            raise ValueError(f"TokenizerConfig.fsq_center_weight must be >= 0 (0: off), got {self.fsq_center_weight}")
        if self.refine_channels < 0:
            raise ValueError(f"TokenizerConfig.refine_channels must be >= 0 (0: none), got {self.refine_channels}")
        if self.temporal_window is not None and self.temporal_window < 1:
            raise ValueError(f"TokenizerConfig.temporal_window must be >= 1 or None, got {self.temporal_window}")
        if self.quantizer == "fsq":
            self.fsq_levels = [int(x) for x in self.fsq_levels]
            if not self.fsq_levels or min(self.fsq_levels) < 2:
                raise ValueError(
                    f"TokenizerConfig.fsq_levels must be a non-empty list of ints >= 2, got {self.fsq_levels}"
                )
            self.codebook_size = math.prod(self.fsq_levels)
        if self.quantizer == "lfq" and (self.codebook_size < 2 or self.codebook_size & (self.codebook_size - 1)):
            raise ValueError(f"TokenizerConfig.codebook_size must be a power of two for lfq, got {self.codebook_size}")
        if self.codebook_size < 2:
            raise ValueError(f"TokenizerConfig.codebook_size must be >= 2, got {self.codebook_size}")

    @property
    def code_levels(self) -> list[int]:
        """Levels of the digits a code is made of (FSQ's ``fsq_levels``); empty for quantizers without digits."""
        return list(self.fsq_levels) if self.quantizer == "fsq" else []

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames for a clip of ``num_frames`` frames; raises if ``(T - 1) % temporal_patch != 0``."""
        if num_frames < 1 or (num_frames - 1) % self.temporal_patch:
            below = 1 + max(0, (num_frames - 1) // self.temporal_patch) * self.temporal_patch
            raise ValueError(
                f"a clip of {num_frames} frames does not fit temporal_patch={self.temporal_patch}: frames must "
                f"be 1 + k*{self.temporal_patch} (e.g. {below} or {below + self.temporal_patch})"
            )
        return 1 + (num_frames - 1) // self.temporal_patch

    def num_frames(self, latent_frames: int) -> int:
        """Pixel frames decoded from ``latent_frames`` latent frames."""
        return 1 + (latent_frames - 1) * self.temporal_patch

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TokenizerConfig:
        """Build from a plain dict (``config.json``, a checkpoint's hparams); unknown keys are an error.

        Configs saved before ``dead_code_ratio`` carry ``dead_code_threshold``, an absolute EMA count that
        vector-quantize-pytorch 1.34 no longer takes (it reads values >= 1 as ``value / codebook_size`` of
        the mean use, which restarted almost nothing: the codebook collapsed). It only steers training,
        never the saved weights or codes, so it is dropped and the default ratio applies (0, restarts
        off, stays off).
        """
        data = dict(data)
        if data.pop(LEGACY_DEAD_CODE_KEY, None) == 0:
            data.setdefault("dead_code_ratio", 0.0)
        return from_fields(cls, data)


@dataclass
class TokenizerTrainConfig:
    """Optimisation and loss settings of tokenizer training (architecture lives in TokenizerConfig)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    # Linear decay of the rate to 0 over this last fraction of the run (its steps or its max_time,
    # whichever ends it): tokgen.lr_schedule. 0 holds the rate to the end. The small tokenizer's
    # 15-minute run on Shapes: 27.3 dB with 0.3, 26.4 dB (26.7 at best) holding the rate.
    cooldown: float = 0.3
    grad_clip: float | None = 1.0
    recon_loss: str = "l1"  # l1 | l2
    quantizer_weight: float = 1.0
    # Quantizer warm-up: the decoder sees the encoder's continuous latents for quantizer_warmup_steps,
    # then a blend moving linearly onto the codes over quantizer_ramp_steps. Through a quantized
    # bottleneck from step 0 the small model stalls at grey blobs (it learns where objects are, never
    # their colour). Small preset, Shapes 17 frames, 450 steps, val PSNR: 100 continuous + 150 blended
    # 24.2 dB, 50 + 100 23.4 dB; a hard switch (old preset, 250 steps, FSQ 8x5x5x5) 21.8 dB at 556.
    quantizer_warmup_steps: int = 0
    quantizer_ramp_steps: int = 0
    # Adversarial loss: 0 disables it. Hinge loss, weight adapted to the reconstruction gradient
    # at the decoder's last layer (VQGAN, Esser et al. 2021, eq. 7), switched on at gan_start_step.
    gan_weight: float = 0.0
    gan_start_step: int = 2000
    disc_kind: str = "frames"  # frames | clips | both
    disc_dim: int = 64
    disc_lr: float | None = None  # None: same as lr
    adaptive_gan_weight: bool = True
    # Perceptual loss: 0 disables it; > 0 needs the VGG16 weights file (never downloaded).
    perceptual_weight: float = 0.0
    perceptual_weights: str | None = None
    usage_warn_below: float = 0.05  # warn when validation codebook usage falls below this fraction
    num_previews: int = 4
    # Execution switches (GPU scale; they change neither weights, outputs nor checkpoint keys): recompute
    # block activations in backward (memory for ~1/3 more compute); torch.compile each block at fit start.
    checkpointing: bool = False
    compile: bool = False

    def quantizer_mix(self, step: int) -> float:
        """How much of the codes (against the continuous latents) the decoder sees at ``step``."""
        if step < self.quantizer_warmup_steps:
            return 0.0
        return min(1.0, (step - self.quantizer_warmup_steps + 1) / (self.quantizer_ramp_steps + 1))

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if self.recon_loss not in ("l1", "l2"):
            raise ValueError(f"train.recon_loss must be 'l1' or 'l2', got {self.recon_loss!r}")
        for name in ("quantizer_warmup_steps", "quantizer_ramp_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.cooldown < 1.0:
            raise ValueError(f"train.cooldown must be in [0, 1) (a fraction of the run), got {self.cooldown}")
        if self.perceptual_weight > 0 and not self.perceptual_weights:
            raise ValueError(
                "train.perceptual_weight > 0 needs train.perceptual_weights: the path of a VGG16 features "
                "weights file (nothing is downloaded)"
            )

    @classmethod
    def from_dict(cls, data: dict) -> TokenizerTrainConfig:
        """Build from a plain dict; unknown keys are an error naming the known fields."""
        return from_fields(cls, data)

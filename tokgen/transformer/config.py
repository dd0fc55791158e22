"""`TransformerConfig`: every architecture default of the masked video transformer lives here, once.

Presets in ``conf/transformer/*.yaml`` set only the fields that differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from tokgen.dataclass_dict import from_fields

# Models trained with label smoothing (ours: 0.1 over 1024 codes) keep ~10% of every prediction spread
# evenly over all codes, so sampling from the whole vocabulary drops a random code into ~1 token in 10
# (stray specks, wrong colours). The generator's default samples among the 16 likeliest codes: on
# Shapes (small presets, 64 held-out captions, guidance 3) colour right 0.75 -> 0.92, colour, shape and
# motion all right 0.41 -> 0.55. The sampler itself (tokgen.sampling.maskgit) defaults to every code.
DEFAULT_TOP_K = 16
# The generator samples codes at temperature 0.5. The 30-minute Shapes generator (6-minute tokenizer,
# 24-minute transformer on 20000 clips; 128 held-out captions, guidance 3, top-k 16), clips with colour,
# shape and motion all right: 0.64 at temperature 1 -> 0.69 with the first latent frame decoded before
# the rest -> 0.71 at 0.5 (0.75 at 0.4, 0.76 at 0 = argmax, whose only randomness is the order of
# decoding); squares came out ragged and read as circles (30 of 39) at temperature 1. `tokgen evaluate`
# at 0.5, first frame first: 0.75 (colour 0.98, shape 0.77, motion 0.98). Three-prompt stories adhering:
# 0.50 -> 0.60 at 0.5 (50 stories).
DEFAULT_TEMPERATURE = 0.5
# All latent frames are decoded together by default (``first_frame=False``). The first frame alone is a
# one-frame grid, which a transformer trained on clips only (``train.image_share`` 0) never saw; there it
# often took a wrong colour (a blue first frame before a red square). At temperature 0.5, on two
# 30-minute generators of one session (6-minute tokenizer, 24-minute transformers eager and compiled;
# 2 x 128 held-out captions each), decoding all frames together: colour right 0.61 -> 0.76 of clips,
# all right 0.39 -> 0.45 (higher in each of the four pairs); 50 three-prompt stories adhering
# 34% -> 38% and 22% -> 26%. The first-frame gain above (0.64 -> 0.69) was at temperature 1.
DEFAULT_FIRST_FRAME = False
# Classifier-free guidance 2.5 by default: the best setting depends on how long the transformer trained.
# All frames decoded together, temperature 0.5, top-k 16, 128 held-out captions (clips all right):
# - 30-minute Shapes generators (6-minute tokenizer, 24-minute transformers, ~4000-4700 steps): guidance
#   1 / 1.5 / 2 / 2.5 / 3 / 5 gave 0.11 / 0.44 / 0.63 / 0.60 / 0.50 / 0.25 on one, 0.52 / 0.50 / 0.46 at
#   2 / 2.5 / 3 on the other; guidance 3 over-steers them into specks of a neighbouring hue (a blue circle
#   with cyan patches, read as a second object). 50 stories adhering: 40% / 38% / 38% at 2 / 2.5 / 3.
# - the demo's 8-minute generator (1394 steps on a slow 2-core machine): 0.13 / 0.23 / 0.23 / 0.21 at
#   2 / 2.5 / 3 / 4: too little guidance leaves it drawing the wrong motion.
DEFAULT_GUIDANCE = 2.5


@dataclass
class TransformerConfig:
    """Vocabulary, geometry and width of the masked bidirectional transformer.

    The vocabulary is the tokenizer's ``codebook_size`` codes plus one ``[MASK]`` token whose id is
    ``codebook_size``. Any latent grid ``(t, h, w)`` up to ``(max_t, max_h, max_w)`` is accepted.
    """

    codebook_size: int = 8192
    # Largest latent grid: 16 latent frames = 31 pixel frames at temporal_patch 2; 32 x 32 codes =
    # 256 x 256 pixels at patch 8. Position tables cost (max_t + max_h + max_w) * dim parameters.
    max_t: int = 16
    max_h: int = 32
    max_w: int = 32
    dim: int = 512
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    ff_mult: int = 4
    text_dim: int = 384  # width of the text encoder's embeddings (all-MiniLM-L6-v2: 384, T5-base: 768)
    max_text_len: int = 32
    dropout: float = 0.0  # attention, feed-forward and embedding dropout
    # Levels of a factorized quantizer (the tokenizer's fsq_levels), or None. Given, every code's vector
    # also sums one learned vector per digit (FSQ: code = sum_d digit_d * prod(levels[:d])), so codes
    # that share a level along a latent axis share part of their vector, input and tied output alike.
    code_levels: list[int] | None = None
    # Rotary positions in self-attention, each head's dims split between the t, h and w axes (a quarter
    # to t): attention scores then see how far apart two codes are in time and space, not only where
    # each is (the learned tables stay). The base of the axes' frequency ladders (short axes: small).
    # Off by default so configs written before it load unchanged; on in ``transformer=small``, where it
    # was measured (see that preset).
    rotary: bool = False
    rotary_base: float = 100.0

    def __post_init__(self) -> None:
        for name in (
            "codebook_size",
            "max_t",
            "max_h",
            "max_w",
            "dim",
            "depth",
            "heads",
            "dim_head",
            "ff_mult",
            "text_dim",
            "max_text_len",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TransformerConfig.{name} must be an int >= 1, got {value!r}")
        if self.codebook_size < 2:
            raise ValueError(f"TransformerConfig.codebook_size must be >= 2, got {self.codebook_size}")
        if self.code_levels is not None:
            self.code_levels = [int(x) for x in self.code_levels]
            if not self.code_levels or min(self.code_levels) < 2 or math.prod(self.code_levels) != self.codebook_size:
                raise ValueError(
                    f"TransformerConfig.code_levels {self.code_levels} must be ints >= 2 whose product is "
                    f"codebook_size {self.codebook_size}"
                )
        if self.rotary and self.dim_head < 6:
            raise ValueError(f"TransformerConfig.rotary needs dim_head >= 6 (a pair per axis), got {self.dim_head}")
        if not self.rotary_base > 1.0:
            raise ValueError(f"TransformerConfig.rotary_base must be > 1, got {self.rotary_base}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig.dropout must be in [0, 1), got {self.dropout}")

    @property
    def mask_id(self) -> int:
        """Id of the ``[MASK]`` token: one past the last real code."""
        return self.codebook_size

    @property
    def vocab_size(self) -> int:
        """Input vocabulary: the codes plus ``[MASK]``."""
        return self.codebook_size + 1

    @property
    def max_latent_shape(self) -> tuple[int, int, int]:
        return (self.max_t, self.max_h, self.max_w)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TransformerConfig:
        """Build from a plain dict (``config.json``, a checkpoint's hparams); unknown keys are an error."""
        return from_fields(cls, data)


@dataclass
class TransformerTrainConfig:
    """Optimisation, masking and conditioning settings of transformer training."""

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.96)
    weight_decay: float = 0.05
    warmup_steps: int = 200
    # Linear decay of the rate to 0 over this last fraction of the run (its steps or its max_time,
    # whichever ends it): tokgen.lr_schedule. 0 holds the rate to the end. The small tokenizer's
    # 15-minute run on Shapes: 27.3 dB with 0.3, 26.4 dB (26.7 at best) holding the rate.
    cooldown: float = 0.3
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.1
    mask_schedule: str = "cosine"  # shared with sampling (tokgen.transformer.masking)
    # Classifier-free guidance is trained, not assumed: this fraction of clips sees the null prompt.
    text_dropout: float = 0.1
    # Known-token patterns (story mode, init= videos, image-to-video, interpolation): this fraction of
    # clips gets given (unmasked) latent frames, so the model learns to fill in around given codes.
    # By default a prefix of k frames, k uniform in [1, t - 1] (continuation); of those clips,
    # first_frame_share get only the first latent frame (image-to-video) and interpolation_share a
    # prefix and a suffix with frames to fill between (interpolation). See masking.given_frames.
    continuation_prob: float = 0.25
    first_frame_share: float = 0.2
    interpolation_share: float = 0.2
    # Image batches mixed with video: this fraction of each training batch's clips (its last rows) is
    # trained as images, their first latent frame alone on a one-frame grid, in a second forward pass.
    # The tokenizer is causal, so that frame's codes are exactly those of the clip's first pixel frame
    # encoded as an image: it is the grid generation decodes first (``maskgit_sample(first_frame=)``)
    # and the grid a text-to-image prompt gets. Shards of images (``t = 1``) train as images anyway.
    # Off by default: on Shapes (the 6-minute demo tokenizer's 20000 clips, 8 minutes of the small
    # preset, 128 held-out captions) 16 videos + 8 images a step gave clips all right 0.20 against
    # 0.51 for 24 videos (motion 0.52 against 0.89; generated objects changed shape and direction
    # between frames) and object codes predicted 23% against 34% at 30% masked, at an equal
    # validation loss. Measure before turning it on.
    image_share: float = 0.0
    # Validation: masked-token accuracy at this ratio, and this many sampled clips (needs a tokenizer).
    val_mask_ratio: float = 0.5
    num_samples: int = 4
    sample_steps: int = 12
    sample_guidance: float = DEFAULT_GUIDANCE
    sample_top_k: int | None = DEFAULT_TOP_K
    # Execution switches (GPU scale; neither changes the weights, outputs or checkpoint keys): recompute
    # each block's activations in the backward pass instead of storing them (memory for ~1/3 more
    # compute), and torch.compile the model when training starts.
    checkpointing: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        for name in ("text_dropout", "continuation_prob", "label_smoothing", "cooldown", "image_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"train.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("first_frame_share", "interpolation_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"train.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.first_frame_share + self.interpolation_share > 1.0:
            raise ValueError(
                "train.first_frame_share + train.interpolation_share must be <= 1 (shares of the "
                f"continuation_prob clips), got {self.first_frame_share} + {self.interpolation_share}"
            )
        if not 0.0 < self.val_mask_ratio <= 1.0:
            raise ValueError(f"train.val_mask_ratio must be in (0, 1], got {self.val_mask_ratio}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.sample_top_k is not None and self.sample_top_k < 1:
            raise ValueError(f"train.sample_top_k must be >= 1 or null (every code), got {self.sample_top_k}")

    @classmethod
    def from_dict(cls, data: dict) -> TransformerTrainConfig:
        """Build from a plain dict; unknown keys are an error naming the known fields."""
        return from_fields(cls, data)

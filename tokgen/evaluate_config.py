"""`EvaluateConfig`: the settings of `tokgen evaluate`, in a module light enough for the CLI to import."""

from __future__ import annotations

from dataclasses import dataclass

from tokgen.transformer.config import DEFAULT_FIRST_FRAME, DEFAULT_GUIDANCE, DEFAULT_TEMPERATURE, DEFAULT_TOP_K


@dataclass
class EvaluateConfig:
    """What `evaluate` measures and on how much data; the defaults are the written protocol.

    Args:
        num_clips: clips per set (generator: per seed, real and generated alike; tokenizer: in total).
        seeds: generator seeds 0..seeds-1, each with its own real split; mean ± std over them.
        batch_size: clips per forward pass.
        data: tokenizer data: ``shapes`` or a video folder.
        resolution: tokenizer clips' side in pixels (the generator uses its own).
        num_frames: tokenizer clip length (the generator uses the length it was trained on).
        steps, guidance, top_k, temperature, first_frame: MaskGIT sampling settings of the generator.
        diversity_prompts, diversity_seeds: prompts sampled with several seeds for diversity.
        stories: Shapes stories (3 prompts each) for per-segment adherence and seam jumps (0 skips).
        i3d: I3D weights file for the published FVD ('' skips it).
        clip: local CLIP folder for the CLIP score ('' skips it).
    """

    num_clips: int = 256
    seeds: int = 3
    batch_size: int = 16
    data: str = "shapes"
    resolution: int = 64
    num_frames: int = 17
    steps: int = 12
    guidance: float = DEFAULT_GUIDANCE
    top_k: int | None = DEFAULT_TOP_K
    temperature: float = DEFAULT_TEMPERATURE
    first_frame: bool = DEFAULT_FIRST_FRAME
    diversity_prompts: int = 8
    diversity_seeds: int = 4
    stories: int = 8
    i3d: str = ""
    clip: str = ""

    def __post_init__(self) -> None:
        for name in ("num_clips", "seeds", "batch_size", "steps", "diversity_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"evaluate: {name} must be >= 1, got {getattr(self, name)}")
        if self.stories < 0:
            raise ValueError(f"evaluate: stories must be >= 0, got {self.stories}")
        if self.num_clips < 2:
            raise ValueError(f"evaluate: num_clips must be >= 2 (a Gaussian needs two clips), got {self.num_clips}")
        if self.diversity_seeds < 2:
            raise ValueError(f"evaluate: diversity_seeds must be >= 2 to compare samples, got {self.diversity_seeds}")

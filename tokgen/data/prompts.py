"""`PromptDataset`: prompts to generate from (``predict``), one item per prompt with its seed."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from tokgen.sampling.prompts import read_prompt_lines

__all__ = ["PromptDataset", "read_prompt_lines"]  # read_prompt_lines lives in tokgen.sampling.prompts


class PromptDataset(Dataset):
    """Items ``{"prompt", "seed", "num_frames"}`` for generation.

    Args:
        prompts: a prompts file (one per line) or a list of prompts.
        seed: prompt ``i`` is sampled with seed ``seed + i``.
        repeats: samples per prompt (with consecutive seeds).
        num_frames: clip length; 0 means the length the model was trained on.
    """

    def __init__(
        self, prompts: str | Path | list[str], *, seed: int = 0, repeats: int = 1, num_frames: int = 0
    ) -> None:
        lines = list(prompts) if isinstance(prompts, (list, tuple)) else read_prompt_lines(prompts)
        if not lines:
            raise ValueError("PromptDataset needs at least one prompt")
        if repeats < 1 or num_frames < 0:
            raise ValueError(f"PromptDataset needs repeats >= 1 and num_frames >= 0, got {repeats}, {num_frames}")
        self.prompts = [p for p in lines for _ in range(repeats)]
        self.seed, self.num_frames = seed, num_frames

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int) -> dict:
        return {"prompt": self.prompts[i], "seed": self.seed + i, "num_frames": self.num_frames}

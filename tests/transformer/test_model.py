"""MaskedTransformer: shapes, [MASK] handling, contract errors, and that text and positions matter."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from tokgen.transformer import MaskedTransformer, TransformerConfig
from tokgen.transformer.model import masked_token_loss, rotary_angles

CONFIG = TransformerConfig(
    codebook_size=16,
    max_t=3,
    max_h=4,
    max_w=4,
    dim=32,
    depth=2,
    heads=2,
    dim_head=16,
    ff_mult=2,
    text_dim=8,
    max_text_len=6,
)


@pytest.fixture(scope="module")
def model() -> MaskedTransformer:
    torch.manual_seed(0)
    return MaskedTransformer(CONFIG).eval()


def inputs(batch: int = 2, grid: tuple[int, int, int] = (3, 4, 4), length: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, CONFIG.codebook_size + 1, (batch, *grid), generator=gen)  # incl. [MASK]
    text = torch.randn(batch, length, CONFIG.text_dim, generator=gen)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[:, -2:] = False
    return codes, text, mask


def test_output_shape_and_mask_token(model: MaskedTransformer) -> None:
    codes, text, mask = inputs()
    codes[0] = model.mask_id  # a fully masked sample is the first sampling step
    logits = model(codes, text, mask)
    assert model.mask_id == CONFIG.codebook_size == 16
    assert logits.shape == (2, 3, 4, 4, CONFIG.codebook_size)  # no logit for [MASK]
    assert torch.isfinite(logits).all()


def test_selected_positions_get_the_logits_of_the_full_output(model: MaskedTransformer) -> None:
    codes, text, mask = inputs()
    select = torch.rand(codes.shape, generator=torch.Generator().manual_seed(1)) < 0.4
    selected = model(codes, text, mask, select=select)
    assert selected.shape == (int(select.sum()), CONFIG.codebook_size)
    torch.testing.assert_close(selected, model(codes, text, mask)[select], atol=1e-6, rtol=1e-5)
    assert model(codes, text, mask, select=torch.zeros_like(select)).shape == (0, CONFIG.codebook_size)
    with pytest.raises(ValueError, match=r"select must be bool \(2, 3, 4, 4\) like codes, got torch.int64"):
        model(codes, text, mask, select=select.long())


@pytest.mark.parametrize("grid", [(1, 1, 1), (1, 4, 4), (2, 3, 1), (3, 4, 4)])
def test_any_smaller_grid_works(model: MaskedTransformer, grid: tuple[int, int, int]) -> None:
    codes, text, mask = inputs(grid=grid)
    assert model(codes, text, mask).shape == (2, *grid, CONFIG.codebook_size)


def test_empty_prompt_is_accepted(model: MaskedTransformer) -> None:
    codes, text, _ = inputs()
    no_tokens = torch.zeros(2, 5, dtype=torch.bool)  # e.g. an encoder that gives "" no real tokens
    assert torch.isfinite(model(codes, text, no_tokens)).all()
    assert torch.isfinite(model(codes, text[:, :0], no_tokens[:, :0])).all()


def test_text_changes_logits_and_padding_does_not(model: MaskedTransformer) -> None:
    codes, text, mask = inputs()
    logits = model(codes, text, mask)
    other = text.clone()
    other[:, 0] = other[:, 0].flip(-1)  # a different prompt (a constant shift would vanish in the LayerNorm)
    assert not torch.allclose(model(codes, other, mask), logits, atol=1e-5)
    padded = text.clone()
    padded[:, -2:] = 100.0  # masked-out text positions are ignored
    assert torch.allclose(model(codes, padded, mask), logits, atol=1e-5)


def test_positions_matter(model: MaskedTransformer) -> None:
    codes, text, mask = inputs(batch=1)
    codes = torch.arange(48).reshape(1, 3, 4, 4) % CONFIG.codebook_size
    logits = model(codes, text, mask).flatten(1, 3)  # (1, 48, v)
    perm = torch.randperm(48, generator=torch.Generator().manual_seed(3))
    permuted = model(codes.flatten(1)[:, perm].reshape(1, 3, 4, 4), text, mask).flatten(1, 3)
    # Without positions attention is permutation-equivariant and these would be equal.
    assert not torch.allclose(permuted, logits[:, perm], atol=1e-4)


def test_rotary_scores_depend_only_on_the_offset_along_each_axis() -> None:
    from x_transformers.x_transformers import apply_rotary_pos_emb

    grid, dim_head = (3, 4, 5), 16
    angles = rotary_angles(grid, dim_head, base=100.0)
    assert angles.shape == (1, 60, dim_head)
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(dim_head, generator=gen).expand(1, 60, dim_head) for _ in range(2))
    scores = apply_rotary_pos_emb(q, angles)[0] @ apply_rotary_pos_emb(k, angles)[0].T  # (60, 60)
    coords = torch.stack(torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij"), -1).reshape(60, 3)
    offsets = coords[None, :, :] - coords[:, None, :]  # (60, 60, 3): key minus query
    by_offset: dict[tuple[int, ...], list[float]] = {}
    for offset, score in zip(offsets.reshape(-1, 3).tolist(), scores.reshape(-1).tolist(), strict=True):
        by_offset.setdefault(tuple(offset), []).append(score)
    assert max(max(v) - min(v) for v in by_offset.values()) < 1e-4  # the same offset, the same score
    for axis in range(3):  # and every axis moves it
        step = tuple(int(a == axis) for a in range(3))
        assert abs(by_offset[step][0] - by_offset[(0, 0, 0)][0]) > 1e-3


def test_rotary_alone_tells_positions_apart() -> None:
    codes, text, mask = inputs(batch=1)
    codes = torch.arange(48).reshape(1, 3, 4, 4) % CONFIG.codebook_size
    perm = torch.randperm(48, generator=torch.Generator().manual_seed(3))
    permuted_codes = codes.flatten(1)[:, perm].reshape(1, 3, 4, 4)
    for rotary in (False, True):
        torch.manual_seed(0)
        model = MaskedTransformer(dataclasses.replace(CONFIG, rotary=rotary)).eval()
        with torch.no_grad():
            for table in (model.pos_t, model.pos_h, model.pos_w):
                table.zero_()  # no learned positions: only the rotary ones are left
            logits = model(codes, text, mask).flatten(1, 3)
            permuted = model(permuted_codes, text, mask).flatten(1, 3)
        # Without any positions attention is permutation-equivariant.
        assert torch.allclose(permuted, logits[:, perm], atol=1e-4) == (not rotary)


def test_gradients_reach_every_parameter(model: MaskedTransformer) -> None:
    codes, text, mask = inputs()
    model.zero_grad()
    model(codes, text, mask).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    model.zero_grad()
    assert not missing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c, t, m: (c + CONFIG.codebook_size + 1, t, m),
            r"codes \(2, 3, 4, 4\) hold values in \[17, 33\], outside \[0, 16\]",
        ),
        (lambda c, t, m: (c - 17, t, m), r"outside \[0, 16\]"),
        (lambda c, t, m: (c.float(), t, m), r"integer tensor \(B, t, h, w\)"),
        (
            lambda c, t, m: (torch.zeros(2, 4, 4, 4, dtype=torch.long), t, m),
            r"codes grid \(t, h, w\) = \(4, 4, 4\) exceeds the transformer maxima "
            r"\(max_t, max_h, max_w\) = \(3, 4, 4\)",
        ),
        (lambda c, t, m: (torch.zeros(2, 1, 5, 1, dtype=torch.long), t, m), r"\(1, 5, 1\) exceeds"),
        (
            lambda c, t, m: (c, torch.randn(2, 5, 12), m),
            r"text embedding width 12 does not match transformer text_dim 8 \(text \(2, 5, 12\)\)",
        ),
        (
            lambda c, t, m: (c, torch.randn(2, 7, 8), torch.ones(2, 7, dtype=torch.bool)),
            r"text length 7 exceeds max_text_len 6",
        ),
        (lambda c, t, m: (c, t, m.long()), r"text_mask must be bool \(B, L\) = \(2, 5\)"),
        (
            lambda c, t, m: (c, t, m[:, :3]),
            r"text_mask must be bool \(B, L\) = \(2, 5\), got torch.bool \(2, 3\)",
        ),
        (lambda c, t, m: (c[:1], t, m), r"batch mismatch: codes \(1, 3, 4, 4\) but text \(2, 5, 8\)"),
    ],
)
def test_contract_errors_name_the_shapes(model: MaskedTransformer, change, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model(*change(*inputs()))


def test_check_tokenizer(model: MaskedTransformer) -> None:
    model.check_tokenizer(16, (3, 4, 4))
    model.check_tokenizer(16, (1, 2, 2))
    with pytest.raises(ValueError, match="tokenizer codebook_size 1024 != transformer codebook_size 16"):
        model.check_tokenizer(1024, (3, 4, 4))
    with pytest.raises(ValueError, match=r"tokenizer codes shape \(t, h, w\) = \(9, 8, 8\) exceeds"):
        model.check_tokenizer(16, (9, 8, 8))


def test_config_checks_and_round_trip() -> None:
    assert TransformerConfig.from_dict(CONFIG.to_dict()) == CONFIG
    assert CONFIG.vocab_size == 17 and CONFIG.max_latent_shape == (3, 4, 4)
    with pytest.raises(ValueError, match="TransformerConfig.depth must be an int >= 1, got 0"):
        TransformerConfig(depth=0)
    with pytest.raises(ValueError, match="dropout"):
        TransformerConfig(dropout=1.0)
    with pytest.raises(ValueError, match=r"rotary needs dim_head >= 6 \(a pair per axis\), got 4"):
        TransformerConfig(rotary=True, dim_head=4)
    with pytest.raises(ValueError, match="rotary_base must be > 1, got 1.0"):
        TransformerConfig(rotary_base=1.0)
    # Configs written before a field existed load with its default.
    old = {k: v for k, v in CONFIG.to_dict().items() if k not in ("rotary", "rotary_base")}
    assert TransformerConfig.from_dict(old) == CONFIG
    with pytest.raises(ValueError, match=r"unknown TransformerConfig fields \['width'\]"):
        TransformerConfig.from_dict({"width": 3})


def test_cpu_bf16_uses_explicit_attention_with_the_same_logits(model: MaskedTransformer) -> None:
    """Under CPU bf16 autocast the layers attend explicitly (CPU flash is slow in bf16), in fp32 through SDPA."""
    codes, text, mask = inputs()
    mask[1] = False  # a fully masked text row: both kernels must zero it alike
    seen = []
    hook = model._attends[0].register_forward_pre_hook(lambda m, args: seen.append(m.flash))
    try:
        with torch.no_grad():
            ref = model(codes, text, mask)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                half = model(codes, text, mask)
            again = model(codes, text, mask)
    finally:
        hook.remove()
    assert seen == [True, False, True]
    torch.testing.assert_close(again, ref)
    assert (half.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_explicit_attention_keeps_bf16_weights_without_an_fp32_round_trip(model: MaskedTransformer) -> None:
    # x-transformers' default softmax upcasts every attention matrix to fp32 and back (slow on a CPU);
    # ours stays in bf16 and gives the very same weights.
    scores = (torch.randn(2, 2, 7, 7, generator=torch.Generator().manual_seed(0)) * 4).bfloat16()
    for attend in model._attends:
        weights = attend.attn_fn(scores)
        assert weights.dtype == torch.bfloat16
        assert torch.equal(weights, scores.softmax(-1, dtype=torch.float32).bfloat16())


def test_code_levels_split_codes_into_the_tokenizers_fsq_digits() -> None:
    from dataclasses import replace

    from vector_quantize_pytorch import FSQ

    levels = [3, 4, 5]  # mixed, so a wrong digit order or basis shows
    config = replace(CONFIG, codebook_size=60, code_levels=levels)
    torch.manual_seed(0)
    model = MaskedTransformer(config).eval()
    # FSQ's own index -> per-axis level index is the decomposition the digits must follow.
    expected = FSQ(levels).indices_to_level_indices(torch.arange(60))
    offsets = torch.tensor([0, 3, 7])
    assert torch.equal(model.code_digits, expected + offsets)
    table = model.code_table()
    assert table.shape == (61, CONFIG.dim)
    # Codes sharing a digit share that digit's vector; [MASK] (the last row) has no digits.
    digit = model.digit_emb.weight
    assert torch.allclose(table[23] - model.token_emb.weight[23], digit[expected[23] + offsets].sum(0))
    assert torch.equal(table[60], model.token_emb.weight[60])
    codes, text, mask = inputs()
    logits = model(codes, text, mask)
    assert logits.shape == (2, 3, 4, 4, 60)
    # The digit table learns: the loss reaches it.
    logits.logsumexp(-1).mean().backward()
    assert model.digit_emb.weight.grad is not None and model.digit_emb.weight.grad.abs().sum() > 0
    assert sorted(k for k in model.state_dict() if "emb" in k) == ["digit_emb.weight", "token_emb.weight"]


def test_code_levels_are_checked_against_the_config_and_the_tokenizer() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match=r"code_levels \[4, 2\] must be ints >= 2 whose product is codebook_size 16"):
        replace(CONFIG, code_levels=[4, 2])
    model = MaskedTransformer(replace(CONFIG, code_levels=[4, 4]))
    model.check_tokenizer(16, (3, 4, 4), [4, 4])
    model.check_tokenizer(16, (3, 4, 4))  # levels unknown (token shards): only the codebook is checked
    with pytest.raises(
        ValueError, match=r"code_levels \[4, 4\] do not match the tokenizer's quantizer levels \[2, 8\]"
    ):
        model.check_tokenizer(16, (3, 4, 4), [2, 8])
    with pytest.raises(ValueError, match="none: not an FSQ tokenizer"):
        model.check_tokenizer(16, (3, 4, 4), [])
    MaskedTransformer(CONFIG).check_tokenizer(16, (3, 4, 4), [2, 8])  # without code_levels any tokenizer fits
    from tokgen.tokenizer.config import TokenizerConfig

    assert TokenizerConfig(quantizer="fsq", fsq_levels=[2, 8]).code_levels == [2, 8]
    assert TokenizerConfig(quantizer="vq", codebook_size=16).code_levels == []


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_masked_token_loss_equals_cross_entropy_of_the_selected_positions(label_smoothing: float) -> None:

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 4, 4, 10, generator=g, requires_grad=True)
    codes = torch.randint(0, 10, (3, 2, 4, 4), generator=g)
    mask = torch.rand(3, 2, 4, 4, generator=g) < 0.4
    loss, accuracy = masked_token_loss(logits, codes, mask, label_smoothing=label_smoothing)
    want = F.cross_entropy(logits[mask], codes[mask], label_smoothing=label_smoothing)
    torch.testing.assert_close(loss, want)
    assert accuracy == (logits[mask].argmax(-1) == codes[mask]).float().mean()
    grad = torch.autograd.grad(loss, logits)[0]
    torch.testing.assert_close(grad, torch.autograd.grad(want, logits)[0])
    assert grad[~mask].abs().max() == 0  # unmasked positions get no gradient


def test_cross_attention_is_explicit_and_self_attention_fused() -> None:
    """Cross-attention to a few text tokens skips SDPA (its masked kernel is slow on GPUs); same outputs."""
    model = MaskedTransformer(TransformerConfig(dim=64, depth=2, heads=2, dim_head=32, codebook_size=16)).eval()
    kinds = {kind: [m for m in layer.modules() if type(m).__name__ == "Attend"] for kind, layer in zip(
        model.encoder.layer_types, model.encoder.layers, strict=True)}  # fmt: skip
    assert all(not a.flash for a in kinds["c"]) and all(a.flash for a in model._attends) and model._attends
    g = torch.Generator().manual_seed(0)
    codes, text = torch.randint(0, 17, (2, 2, 3, 3), generator=g), torch.randn(2, 5, 384, generator=g)
    mask = torch.tensor([[True] * 3 + [False] * 2, [False] * 5])  # the second: the null prompt, all masked
    with torch.no_grad():
        explicit = model(codes, text, mask)
        for attend in kinds["c"]:
            attend.flash = True
        torch.testing.assert_close(model(codes, text, mask), explicit, rtol=1e-5, atol=1e-5)

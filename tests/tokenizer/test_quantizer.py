"""The Quantizer wrapper gives VQ, FSQ and LFQ one interface."""

from __future__ import annotations

import pytest
import torch

from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.quantizer import Quantizer

KINDS = ["vq", "fsq", "lfq"]


def make(kind: str, **overrides: object) -> Quantizer:
    torch.manual_seed(0)
    fields = dict(dim=32, quantizer=kind, codebook_size=64, codebook_dim=8, fsq_levels=[4, 4, 4])
    return Quantizer(TokenizerConfig(**(fields | overrides)))


@pytest.mark.parametrize("kind", KINDS)
def test_forward_contract_and_embed_matches(kind: str) -> None:
    quantizer = make(kind).eval()
    x = torch.randn(2, 10, 32)
    out = quantizer(x)
    assert out.quantized.shape == (2, 10, 32) and out.quantized.dtype == torch.float32
    assert out.indices.shape == (2, 10) and out.indices.dtype == torch.long
    assert int(out.indices.min()) >= 0 and int(out.indices.max()) < quantizer.codebook_size
    assert out.loss.shape == () and float(out.loss) == 0.0
    torch.testing.assert_close(quantizer.embed(out.indices), out.quantized, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_same_input_same_codes(kind: str) -> None:
    quantizer = make(kind).eval()
    x = torch.randn(1, 7, 32)
    assert torch.equal(quantizer(x).indices, quantizer(x).indices)


@pytest.mark.parametrize("kind", KINDS)
def test_fp32_under_autocast(kind: str) -> None:
    quantizer = make(kind).eval()
    x = torch.randn(1, 5, 32).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = quantizer(x)
        embedded = quantizer.embed(out.indices)
    assert out.quantized.dtype == torch.float32 and embedded.dtype == torch.float32


@pytest.mark.parametrize("ema", [True, False])
def test_vq_training_loss_has_gradient(ema: bool) -> None:
    quantizer = make("vq", vq_ema=ema).train()
    x = torch.randn(2, 10, 32, requires_grad=True)
    out = quantizer(x)
    assert out.loss.item() > 0
    out.loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_fsq_loss_is_zero_in_training() -> None:
    out = make("fsq").train()(torch.randn(2, 10, 32, requires_grad=True))
    assert out.loss.item() == 0.0 and out.loss.shape == ()


def test_fsq_center_loss_measures_distance_from_the_codes_cells() -> None:
    """The pull's unrounded latents round to the library's own codes, and the loss is their distance."""
    quantizer = make("fsq", fsq_levels=[4, 5, 3], fsq_center_weight=2.0).train()
    x = torch.randn(3, 20, 32) * 3
    fsq = quantizer.impl
    half = (fsq._levels.float() - 1) * (1 + 1e-3) / 2
    offset = (fsq._levels % 2 == 0).float() * 0.5
    unrounded = torch.tanh(fsq.project_in(x) + torch.atanh(offset / half)) * half - offset
    library = fsq.bound(fsq.project_in(x)) * (fsq._levels // 2)  # the library's rounded levels
    assert torch.equal(unrounded.round(), library.round())
    expected = 2.0 * (unrounded - unrounded.round()).pow(2).mean()
    torch.testing.assert_close(quantizer(x).loss, expected)
    assert 0 < expected < 2.0 * 0.25  # at most half a level from a centre


def test_fsq_center_loss_pulls_latents_to_their_cell_centres() -> None:
    quantizer = make("fsq", fsq_center_weight=1.0).train()
    x = torch.randn(4, 16, 32)
    before = quantizer(x).loss.item()
    optimizer = torch.optim.SGD(quantizer.parameters(), lr=0.5)
    for _ in range(20):
        optimizer.zero_grad()
        quantizer(x).loss.backward()
        optimizer.step()
    assert quantizer(x).loss.item() < 0.5 * before
    assert quantizer.eval()(x).loss.item() == 0.0  # a training loss only


def test_fsq_center_weight_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="fsq_center_weight must be >= 0"):
        TokenizerConfig(quantizer="fsq", fsq_center_weight=-0.1)


def test_lfq_training_returns_entropy_loss() -> None:
    out = make("lfq").train()(torch.randn(2, 10, 32, requires_grad=True))
    assert out.loss.shape == () and out.loss.requires_grad


def _codes_after_the_latents_move(**overrides: object) -> int:
    """Distinct codes of 32 latents after training on others, then 10 steps on them (an encoder drifting)."""
    quantizer = make("vq", **overrides).train()
    before = torch.randn(32) + 0.3 * torch.randn(256, 32)
    after = torch.randn(32) + 0.3 * torch.randn(32, 32)
    for _ in range(40):
        quantizer(before[torch.randint(0, 256, (4, 32))])
    for _ in range(10):
        quantizer(after[torch.randint(0, 32, (4, 32))])
    return quantizer.eval()(after[None]).indices.unique().numel()


def test_vq_restarts_codes_the_moving_latents_left_behind() -> None:
    # The default restarts codes whose use fell below 0.9 of the mean's within a few steps, so latents
    # that moved elsewhere get codes of their own again. vector-quantize-pytorch 1.34 read the old
    # absolute threshold of 2 uses as a ratio of 2 / codebook_size: stale codes were restarted only
    # after hundreds of steps, and the moved latents shared one code (the reference tokenizer used 15
    # of 8192 codes after 400 steps on Shapes).
    assert _codes_after_the_latents_move() >= 28
    assert _codes_after_the_latents_move(dead_code_ratio=2 / 64) <= 2
    assert _codes_after_the_latents_move(dead_code_ratio=0.0) <= 8  # no restarts at all


def test_dead_code_ratio_must_be_a_share_below_one() -> None:
    with pytest.raises(ValueError, match=r"dead_code_ratio must be in \[0, 1\).*got 2"):
        TokenizerConfig(dead_code_ratio=2.0)


def test_configs_saved_with_the_absolute_dead_code_threshold_still_load() -> None:
    saved = TokenizerConfig(codebook_size=64).to_dict()
    del saved["dead_code_ratio"]
    assert TokenizerConfig.from_dict(saved | {"dead_code_threshold": 2.0}).dead_code_ratio == 0.9
    assert TokenizerConfig.from_dict(saved | {"dead_code_threshold": 0}).dead_code_ratio == 0.0  # off stays off
    with pytest.raises(ValueError, match="unknown TokenizerConfig fields"):
        TokenizerConfig.from_dict(saved | {"dead_code_treshold": 2.0})

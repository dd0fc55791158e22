"""VideoTokenizer behaviour at tiny size: causality, chunking, shapes, contracts, save/load, learning."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.model import TokenizerOutput, VideoTokenizer


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and on a busy machine thread hand-offs cost seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**overrides: object) -> VideoTokenizer:
    torch.manual_seed(0)
    fields = dict(
        patch_size=4,
        temporal_patch=2,
        dim=32,
        spatial_depth=1,
        temporal_depth=1,
        heads=2,
        dim_head=16,
        codebook_size=64,
        codebook_dim=8,
        temporal_window=2,
        fsq_levels=[4, 4, 4],
    )
    return VideoTokenizer(TokenizerConfig(**(fields | overrides))).eval()


def clip(frames: int = 9, height: int = 16, width: int = 16, batch: int = 2, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, height, width, generator=generator) * 2 - 1


@pytest.mark.parametrize(("window", "overlap"), [(2, 0), (None, 0), (2, 2)])
def test_encoder_is_causal(window: int | None, overlap: int) -> None:
    model, video = tiny(temporal_window=window, patch_overlap=overlap), clip(frames=13)
    codes = model.encode(video)
    assert codes.shape == (2, 7, 4, 4) and codes.dtype == torch.long
    for k in range(7):
        assert torch.equal(model.encode(video[:, :, : 1 + 2 * k]), codes[:, : 1 + k]), k


@pytest.mark.parametrize(("window", "refine", "overlap"), [(2, 0, 0), (None, 0, 0), (2, 4, 0), (2, 0, 2)])
def test_decoder_is_causal(window: int | None, refine: int, overlap: int) -> None:
    model = tiny(temporal_window=window, refine_channels=refine, patch_overlap=overlap)
    if refine:  # a trained refinement, not the identity it starts as
        torch.nn.init.normal_(model.refine.net[-1].weight, std=0.1)
    codes = model.encode(clip(frames=13))
    video = model.decode(codes)
    assert video.shape == (2, 3, 13, 16, 16)
    for k in range(7):
        torch.testing.assert_close(model.decode(codes[:, : 1 + k]), video[:, :, : 1 + 2 * k], atol=1e-5, rtol=0)


def test_pixel_refinement_starts_as_the_identity() -> None:
    model = tiny(refine_channels=4)
    codes = model.encode(clip())
    refined = model.decode(codes)
    refine, model.refine = model.refine, None
    assert torch.equal(refined, model.decode(codes))  # zero-initialised last convolution
    torch.nn.init.normal_(refine.net[-1].weight, std=0.1)  # as if trained: now it changes pixels
    model.refine = refine
    assert not torch.allclose(model.decode(codes), refined)


def test_overlapping_patches_reach_exactly_their_overlap_into_neighbours() -> None:
    model = tiny(patch_overlap=2)  # 4x4 patches seen and drawn as 8x8
    image = torch.zeros(1, 3, 1, 16, 16)
    image[0, 1, 0, 3, 5] = 1.0  # row 3 of patch row 0, column 5 of patch column 1
    seen = model._patch(image, 1).abs().sum(-1).view(4, 4) > 0
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0:2, 0:2] = True  # patch columns 0 ([-2, 6)) and 1 ([2, 10)); rows 0 and 1 likewise
    assert torch.equal(seen, expected)
    tokens = torch.zeros(1, 1, 16, 3 * 8 * 8)
    tokens[0, 0, 5] = 1.0  # token (1, 1): pixels [4, 8) of both axes, drawn into [2, 10)
    drawn = model._unpatch(tokens, 1, 4)[0, :, 0].abs().sum(0) > 0
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[2:10, 2:10] = True
    assert torch.equal(drawn, expected)


def test_plain_patches_lay_out_pixels_as_overlapping_ones_do() -> None:
    # The two paths share one weight layout (channel, frame, row, column): an overlap of 0 through
    # unfold would read the same vectors as the rearrange that plain patches use.
    model, video = tiny(), clip(frames=5)
    tubes = model._patch(video[:, :, 1:], 2)  # (b, t, s, c * pt * p * p)
    stacked = video[:, :, 1:].unflatten(2, (2, 2)).transpose(1, 2).flatten(0, 1).flatten(1, 2)  # (b t, c pt, H, W)
    unfolded = F.unfold(stacked, kernel_size=4, stride=4).transpose(1, 2).unflatten(0, (2, 2))
    assert torch.equal(tubes, unfolded)
    assert torch.equal(model._unpatch(tubes, 2, 4), video[:, :, 1:])


def test_image_is_a_one_frame_video() -> None:
    model, video = tiny(), clip()
    image_codes = model.encode(video[:, :, :1])
    assert image_codes.shape == (2, 1, 4, 4)
    assert torch.equal(image_codes, model.encode(video)[:, :1])
    assert model.decode(image_codes).shape == (2, 3, 1, 16, 16)


@pytest.mark.parametrize(("window", "refine", "overlap"), [(2, 0, 0), (3, 0, 0), (None, 0, 0), (2, 4, 0), (2, 0, 2)])
@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_equals_one_pass(window: int | None, refine: int, overlap: int, chunk: int) -> None:
    model = tiny(temporal_window=window, temporal_depth=2, refine_channels=refine, patch_overlap=overlap)
    if refine:
        torch.nn.init.normal_(model.refine.net[-1].weight, std=0.1)
    video = clip(frames=15)
    codes = model.encode(video)
    assert torch.equal(model.encode(video, chunk_frames=chunk), codes)
    torch.testing.assert_close(model.decode(codes, chunk_frames=chunk), model.decode(codes), atol=1e-5, rtol=0)


@pytest.mark.parametrize("frames", [1, 3, 5, 9, 33])
def test_any_length_works(frames: int) -> None:
    model = tiny()
    codes = model.encode(clip(frames=frames, batch=1))
    assert codes.shape == (1, model.codes_shape(frames, 16, 16)[0], 4, 4)
    assert model.decode(codes).shape == (1, 3, frames, 16, 16)


@pytest.mark.parametrize(("height", "width", "overlap"), [(16, 16, 0), (24, 32, 0), (8, 4, 0), (24, 32, 2), (8, 4, 4)])
def test_other_resolutions_work(height: int, width: int, overlap: int) -> None:
    model = tiny(patch_overlap=overlap)
    codes = model.encode(clip(height=height, width=width))
    assert codes.shape == (2, 5, height // 4, width // 4)
    assert model.decode(codes).shape == (2, 3, 9, height, width)
    out = model.train()(clip(height=height, width=width))
    assert isinstance(out, TokenizerOutput) and out.recon.shape == (2, 3, 9, height, width)
    assert out.codes.shape == codes.shape and out.quantizer_loss.shape == ()


@pytest.mark.parametrize("kind", ["vq", "fsq", "lfq"])
def test_every_quantizer_round_trips(kind: str) -> None:
    model, video = tiny(quantizer=kind), clip()
    codes = model.encode(video)
    assert int(codes.max()) < model.config.codebook_size
    torch.testing.assert_close(model.quantizer.embed(codes.flatten(1)).shape, torch.Size([2, 80, 32]))
    assert model.decode(codes).shape == video.shape
    out = model.train()(video)
    assert torch.isfinite(out.recon).all() and torch.isfinite(out.quantizer_loss)


@pytest.mark.parametrize("refine", [0, 4])
def test_save_load_round_trip_without_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refine: int) -> None:
    model = tiny(refine_channels=refine)
    model.train()(clip())  # move the EMA codebook away from its init so buffers matter
    model.eval()
    model.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["config.json", "model.safetensors"]

    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load (pickle) must not be used")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = VideoTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.config == model.config and not loaded.training
    reference, restored = model.state_dict(), loaded.state_dict()
    assert reference.keys() == restored.keys()
    for name, tensor in reference.items():
        assert torch.equal(tensor, restored[name]) and tensor.dtype == restored[name].dtype, name
    video = clip(frames=13)
    assert torch.equal(loaded.encode(video), model.encode(video))
    assert torch.equal(loaded.decode(model.encode(video)), model.decode(model.encode(video)))


def test_load_reports_mismatched_weights(tmp_path: Path) -> None:
    model = tiny()
    model.save_pretrained(tmp_path / "tok")
    config = model.config.to_dict() | {"spatial_depth": 2}
    (tmp_path / "tok" / "config.json").write_text(
        (tmp_path / "tok" / "config.json").read_text().replace('"spatial_depth": 1', '"spatial_depth": 2')
    )
    assert config["spatial_depth"] == 2
    with pytest.raises(ValueError, match=r"Missing key.*dec_space\.1\.") as error:
        VideoTokenizer.from_pretrained(tmp_path / "tok")
    assert str(tmp_path / "tok") in str(error.value)


def test_quantizer_loss_reaches_the_encoder() -> None:
    model = tiny(quantizer="vq").train()
    model(clip()).quantizer_loss.backward()  # commitment loss only, no reconstruction loss
    for name in (
        "embed_rest.weight",
        "enc_space.0.ff.0.weight",
        "enc_time.0.attn.to_qkv.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.get_parameter("to_rest.weight").grad is None  # the decoder plays no part in it


def test_quantizer_mix_zero_decodes_the_continuous_latents() -> None:
    # Quantizer warm-up: a perturbation far below one code cell leaves the codes, and so the quantized
    # reconstruction, unchanged, but moves the reconstruction decoded from the continuous latents.
    model = tiny(quantizer="fsq")
    video = clip()
    nudged = video + 1e-3 * torch.randn(video.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        quantized, nudged_quantized = model(video), model(nudged)
        continuous, nudged_continuous = model(video, quantizer_mix=0.0), model(nudged, quantizer_mix=0.0)
    assert torch.equal(quantized.codes, nudged_quantized.codes)
    assert torch.equal(quantized.recon, nudged_quantized.recon)
    assert not torch.allclose(continuous.recon, nudged_continuous.recon, atol=1e-7)
    assert not torch.allclose(continuous.recon, quantized.recon, atol=1e-3)
    assert torch.equal(continuous.codes, quantized.codes)  # codes are still reported


def test_quantizer_mix_blends_the_decoder_input_linearly() -> None:
    # The decoder sees x + mix * (q - x): its input at mix 0.25 is a quarter of the way from the
    # continuous latents to the codes, with straight-through gradients reaching the encoder.
    model = tiny(quantizer="fsq")
    seen = []
    model.dec_time.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    video = clip()
    outputs = {mix: model(video, quantizer_mix=mix) for mix in (0.0, 0.25, 1.0)}
    grid = model._grid(*outputs[1.0].codes.shape[2:], video)
    continuous, blended, quantized = (x - grid for x in seen)  # the decoder adds the position table first
    assert torch.allclose(blended, continuous + 0.25 * (quantized - continuous), atol=1e-5)
    assert not torch.allclose(outputs[0.25].recon, outputs[1.0].recon, atol=1e-4)
    outputs[0.25].recon.pow(2).mean().backward()
    assert model.embed_rest.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"quantizer_mix must be in \[0, 1\], got 1.5"):
        model(video, quantizer_mix=1.5)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 3, 4, 16, 16), r"\(2, 3, 4, 16, 16\).*4 frames"),  # (T - 1) % pt != 0
        ((2, 1, 9, 16, 16), r"3 channels.*\(2, 1, 9, 16, 16\)"),
        ((2, 3, 9, 18, 16), r"\(2, 3, 9, 18, 16\).*18x16"),
        ((2, 3, 9, 16, 14), r"\(2, 3, 9, 16, 14\)"),
        ((3, 9, 16, 16), r"\(3, 9, 16, 16\)"),
    ],
)
def test_bad_video_is_a_clear_error(shape: tuple[int, ...], message: str) -> None:
    model = tiny()
    with pytest.raises(ValueError, match=message):
        model.encode(torch.zeros(shape))
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_video_is_an_error(bad: float) -> None:
    video = clip()
    video[1, 2, 3, 4, 5] = bad
    with pytest.raises(ValueError, match=r"\(2, 3, 9, 16, 16\).*NaN or Inf"):
        tiny().encode(video)


@pytest.mark.parametrize("bad", [64, -1, 1000])
def test_out_of_range_codes_are_an_error(bad: int) -> None:
    codes = torch.zeros(1, 5, 4, 4, dtype=torch.long)
    codes[0, 2, 1, 1] = bad
    with pytest.raises(ValueError, match=rf"\(1, 5, 4, 4\).*{bad}.*\[0, 64\)"):
        tiny().decode(codes)
    with pytest.raises(ValueError, match=r"integer codes"):
        tiny().decode(codes.float())


def moving_blob(frames: int = 9, size: int = 16) -> torch.Tensor:
    """A soft orange disc sliding diagonally over black: smooth, so a tiny tokenizer can learn it."""
    coords = torch.arange(size, dtype=torch.float32)
    ys, xs = coords[:, None], coords[None, :]
    video = []
    for f in range(frames):
        cy, cx = 4.0 + 0.8 * f, 3.0 + f
        blob = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * 2.5**2))
        video.append(torch.stack([blob, 0.6 * blob, 0.2 * blob]))  # (c, h, w) in [0, 1]
    return torch.stack(video, dim=1)[None] * 2 - 1  # (1, c, t, h, w) in [-1, 1]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss((a.clamp(-1, 1) + 1) / 2, (b + 1) / 2).item()
    return 10 * math.log10(1 / mse)


def test_overfits_one_clip() -> None:
    # The default VQ (EMA codebook, 64 codes) reaches ~33 dB in 300 steps (~3 s on one core).
    model = tiny(quantizer="vq").train()
    video = moving_blob()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(300):
        out = model(video)
        loss = F.mse_loss(out.recon, video) + out.quantizer_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    assert psnr(model.decode(model.encode(video)), video) > 30


def test_rotary_real_form_under_compile_equals_the_complex_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokgen.tokenizer.blocks import rotary, rotate

    x = torch.randn(2, 3, 5, 8, generator=torch.Generator().manual_seed(0))
    rope = rotary(torch.arange(5), 8)
    complex_form = rotate(x, rope)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # the branch inductor traces
    torch.testing.assert_close(rotate(x, rope), complex_form, rtol=0, atol=1e-6)
    assert not torch.allclose(complex_form[..., 1:, :], x[..., 1:, :])  # positions > 0 really rotate


@pytest.mark.parametrize(("dtype", "length", "fused"), [(torch.float32, 64, True), (torch.bfloat16, 64, False)])
def test_attention_kernel_follows_length_and_precision(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, length: int, fused: bool
) -> None:
    """64 tokens: SDPA in fp32; explicit matmuls in bf16 on a CPU (its flash backward is slow there)."""
    from tokgen.tokenizer import blocks as tokenizer_blocks

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, length, 16, generator=g) for _ in range(3))
    reference = F.scaled_dot_product_attention(q, k, v)
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(
        tokenizer_blocks.F, "scaled_dot_product_attention", lambda *a, **kw: calls.append(1) or sdpa(*a, **kw)
    )
    out = tokenizer_blocks.attend(q.to(dtype), k.to(dtype), v.to(dtype), mask=None, causal=False)
    assert bool(calls) == fused
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), reference, atol=3e-2, rtol=3e-2)


def test_bf16_autocast_forward_matches_fp32() -> None:
    model, video = tiny(), clip()
    with torch.no_grad():
        ref = model(video).recon
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(video).recon
    assert half.dtype == torch.bfloat16
    assert (half.float() - ref).abs().mean() < 0.02 * ref.abs().mean() + 1e-3


def test_public_names_resolve_from_both_packages() -> None:
    import tokgen
    import tokgen.tokenizer

    assert tokgen.tokenizer.VideoTokenizer is VideoTokenizer is tokgen.VideoTokenizer
    assert tokgen.tokenizer.TokenizerConfig is TokenizerConfig is tokgen.TokenizerConfig
    with pytest.raises(AttributeError, match="tokgen.tokenizer.*Tokeniser"):
        tokgen.tokenizer.Tokeniser  # noqa: B018 -- a misspelt name is an error naming the package

"""PSNR and SSIM of videos: per clip, and in fp32 whatever autocast a caller runs them under."""

from __future__ import annotations

import torch

from tokgen.metrics.image import psnr, ssim


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 3, 32, 32, generator=g) * 2 - 1
    return (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(-1, 1), target


def test_metrics_are_per_clip_and_perfect_for_identical_videos() -> None:
    pred, target = _pair()
    assert psnr(pred, target).shape == ssim(pred, target).shape == (2,)
    assert torch.allclose(ssim(target, target), torch.ones(2))
    assert (psnr(pred, target) > 20).all() and (psnr(pred, target) < 40).all()


def test_ssim_under_bf16_autocast_equals_fp32() -> None:
    # Validation under bf16-mixed runs inside autocast. On Shapes-like frames (black, one bright
    # object) SSIM's variances are small differences of large means: with its Gaussian filter (a
    # conv2d) in bf16 this clip reads ~0.80 instead of 0.93. The metric must not follow the caller's precision.
    g = torch.Generator().manual_seed(0)
    target = torch.full((2, 3, 3, 32, 32), -1.0)
    target[:, 0, :, 8:20, 10:22] = 0.8
    pred = (target + 0.03 * torch.randn(target.shape, generator=g)).clamp(-1, 1)
    want = ssim(pred, target)
    assert (want > 0.9).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ssim(pred, target)
        got_psnr = psnr(pred, target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(got_psnr, psnr(pred, target), rtol=0, atol=1e-5)

"""FVD: the Fréchet distance against scipy's float64 reference, and the I3D loader on stand-in networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tokgen.metrics.fvd import (
    InceptionI3d,
    feature_statistics,
    frechet_distance,
    frechet_distance_of_features,
    i3d_features,
    i3d_inputs,
    load_i3d,
)


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root, all in float64."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("dim, n", [(4, 50), (32, 200), (64, 80)])
def test_frechet_distance_matches_the_scipy_reference(dim: int, n: int) -> None:
    rng = np.random.default_rng(dim)
    mix = rng.normal(size=(dim, dim))  # correlated features with a shifted mean
    a = rng.normal(size=(n, dim)) @ mix
    b = rng.normal(size=(n, dim)) @ (mix + 0.3 * rng.normal(size=(dim, dim))) + 0.5
    ours = frechet_distance_of_features(torch.from_numpy(a), torch.from_numpy(b))
    assert ours == pytest.approx(reference_frechet(a, b), rel=1e-7, abs=1e-7)
    # float32 input is promoted: same answer as the float64 statistics of the float32 values.
    a32 = torch.from_numpy(a).float()
    assert frechet_distance_of_features(a32, torch.from_numpy(b)) == pytest.approx(
        reference_frechet(a32.double().numpy(), b), rel=1e-7
    )


def test_frechet_distance_of_a_set_with_itself_is_zero_and_of_shifted_means_is_the_shift() -> None:
    features = torch.randn(300, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(frechet_distance_of_features(features, features)) < 1e-9
    mu, sigma = feature_statistics(features)
    shift = torch.full((16,), 0.5, dtype=torch.float64)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(16 * 0.25, rel=1e-9)


def test_frechet_distance_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(n, d\) and \(m, d\) of one width"):
        frechet_distance_of_features(torch.randn(10, 4), torch.randn(10, 5))
    with pytest.raises(ValueError, match="n >= 2"):
        feature_statistics(torch.randn(1, 4))


def test_i3d_inputs_follow_the_protocol() -> None:
    video = torch.rand(2, 3, 17, 64, 48) * 2 - 1
    x = i3d_inputs(video)
    assert x.shape == (2, 3, 16, 224, 224) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="16 frames per clip; got clips of 9"):
        i3d_inputs(video[:, :, :9])


TINY = dict(num_classes=10, width=0.0625)  # the real architecture at 1/16 of its channels


def test_i3d_state_dict_round_trip_on_a_tiny_stand_in(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = InceptionI3d(**TINY).eval()
    path = tmp_path / "rgb_tiny.pt"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)  # as saved from DataParallel
    loaded = load_i3d(path)
    assert isinstance(loaded, InceptionI3d) and loaded.logits.conv3d.out_channels == 10
    videos = torch.rand(2, 3, 17, 32, 32) * 2 - 1
    features = i3d_features(loaded, videos, batch_size=1)
    assert features.shape == (2, 10) and features.dtype == torch.float64
    with torch.no_grad():
        assert torch.allclose(features, net(i3d_inputs(videos)).double(), atol=1e-5)
    assert frechet_distance_of_features(features, features) == pytest.approx(0.0, abs=1e-6)


class _FlaggedStandIn(nn.Module):
    """Mimics the StyleGAN-V TorchScript signature: forward(x, rescale, resize, return_features)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 6)

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False):
        if rescale or resize or not return_features:  # the loader must ask for raw features, no rescaling
            return torch.zeros(x.shape[0], 1)
        return self.proj(x.mean(dim=(2, 3, 4)))


class _PlainStandIn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(2, 3, 4)) + x.std(dim=(2, 3, 4)))


@pytest.mark.parametrize("module, dim", [(_FlaggedStandIn, 6), (_PlainStandIn, 5)])
def test_i3d_torchscript_stand_in_loads_and_gives_features(tmp_path: Path, module: type, dim: int) -> None:
    torch.manual_seed(0)
    net = module().eval()
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(net).save(str(path))
    loaded = load_i3d(path)
    assert isinstance(loaded, torch.jit.ScriptModule)
    videos = torch.rand(4, 3, 16, 24, 24) * 2 - 1
    features = i3d_features(loaded, videos, batch_size=3)
    assert features.shape == (4, dim)
    with torch.no_grad():
        expected = net(i3d_inputs(videos), False, False, True) if dim == 6 else net(i3d_inputs(videos))
    assert torch.allclose(features, expected.double(), atol=1e-6)


def test_missing_or_foreign_weights_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"I3D weights not found at '.*i3d_torchscript.pt'.*TorchScript"):
        load_i3d(tmp_path / "i3d_torchscript.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an I3D state dict"):
        load_i3d(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_i3d(tmp_path / "junk.pt")

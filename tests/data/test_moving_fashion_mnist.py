"""Moving Fashion-MNIST on tiny fake idx files: items, determinism, bounces, captions, file checks."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from tokgen.data.moving_fashion_mnist import (
    CLASS_NAMES,
    DEFAULT_ROOT,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    PLURALS,
    MovingFashionMNIST,
    MovingFashionMNISTConfig,
    bounce,
    format_caption,
    read_idx,
)

NUMBERS = {2: "two", 3: "three"}
LABELS = np.array([9, 8, 7, 0, 3], dtype=np.uint8)  # ankle boot, bag, sneaker, T-shirt/top, dress


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    """An idx file: big-endian magic and dimensions, then the bytes."""
    return np.array([magic, *array.shape], dtype=">u4").tobytes() + array.astype(np.uint8).tobytes()


def write_split(
    root: Path, split: str = "train", images: np.ndarray | None = None, labels: np.ndarray = LABELS
) -> Path:
    """Write a fake gzipped split (random 28 x 28 garments, never black) into ``root``."""
    if images is None:
        images = np.random.default_rng(0).integers(1, 256, size=(len(labels), 28, 28), dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(IMAGE_MAGIC, images)))
    (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(LABEL_MAGIC, labels)))
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_split(tmp_path, "train")
    return write_split(tmp_path, "test", labels=LABELS[::-1].copy())


def test_item_shapes_range_and_keywords(root: Path) -> None:
    ds = MovingFashionMNIST(length=3, seed=1, root=root, resolution=32, num_frames=9, num_objects=2)
    item = ds[0]
    assert len(ds) == 3 and ds.config.resolution == 32 and ds.config.size == 14
    assert item["video"].shape == (3, 9, 32, 32) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1.0 and item["video"].max() <= 1.0 and item["video"].max() > -1.0
    assert item["skipped"] == 0
    gray = MovingFashionMNIST(length=1, root=root)[0]["video"]
    assert gray.shape == (3, 17, 64, 64) and torch.equal(gray[0], gray[1]) and torch.equal(gray[0], gray[2])
    with pytest.raises(TypeError, match="unknown MovingFashionMNIST arguments"):
        MovingFashionMNIST(root=root, colour=True)
    with pytest.raises(IndexError):
        ds[3]


def test_deterministic_by_seed_and_index(root: Path) -> None:
    a = MovingFashionMNIST(length=4, seed=3, root=root, num_objects=3, colorize=True)
    b = MovingFashionMNIST(length=4, seed=3, root=root, num_objects=3, colorize=True)
    for i in (2, 0, 3):  # any order
        assert torch.equal(a[i]["video"], b[i]["video"]) and a[i]["caption"] == b[i]["caption"]
    assert torch.equal(a[-1]["video"], a[3]["video"])
    other = MovingFashionMNIST(length=4, seed=4, root=root, num_objects=3, colorize=True)
    assert not torch.equal(a[0]["video"], other[0]["video"])
    # Tints are drawn last: colorize changes colors only, not garments or paths.
    gray = MovingFashionMNIST(length=4, seed=3, root=root, num_objects=3)
    assert np.array_equal(a.clip(1).positions, gray.clip(1).positions)
    assert a[1]["caption"] == gray[1]["caption"]
    tinted = a[1]["video"]
    assert not torch.equal(tinted[0], tinted[1]) or not torch.equal(tinted[1], tinted[2])


def test_garments_bounce_and_stay_inside(root: Path) -> None:
    # Fast garments over long clips hit the walls many times.
    config = MovingFashionMNISTConfig(resolution=40, num_frames=33, speed_range=(6.0, 9.0))
    ds = MovingFashionMNIST(length=20, root=root, config=config)
    span = config.resolution - config.size
    reversed_any = False
    for i in range(len(ds)):
        positions = ds.clip(i).positions[0]  # (t, 2)
        assert positions.min() >= 0 and positions.max() <= span
        steps = np.diff(positions, axis=0)
        reversed_any |= bool(((steps[1:] * steps[:-1]) < 0).any())
        # Every garment pixel is nonzero in the fake data, so the drawn box is whole in every frame.
        # Every fake garment pixel is nonzero, so each frame shows exactly the whole box at its position.
        for lit, (x, y) in zip(ds.frames(i).any(axis=-1), positions, strict=True):
            ys, xs = np.nonzero(lit)
            assert len(xs) == config.size**2
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == (
                x,
                y,
                x + config.size - 1,
                y + config.size - 1,
            )
    assert reversed_any, "no garment ever bounced"


def test_bounce_is_an_elastic_reflection() -> None:
    path = bounce(np.array([8.0, 1.0]), np.array([3.0, -2.0]), 5, span=10.0)
    assert np.allclose(path, [[8, 1], [9, 1], [6, 3], [3, 5], [0, 7]])
    assert np.allclose(bounce(np.array([0.0, 0.0]), np.array([5.0, 5.0]), 3, span=0.0), 0.0)


def test_captions_name_the_classes(root: Path) -> None:
    ds = MovingFashionMNIST(length=30, root=root, num_objects=3)
    for i in range(len(ds)):
        clip, text = ds.clip(i), ds[i]["caption"]
        counts = Counter(CLASS_NAMES[label] for label in ds.labels[clip.indices])
        expected = {
            f"{'an' if n[0] == 'a' else 'a'} {n}" if c == 1 else f"{NUMBERS[c]} {PLURALS[n]}" for n, c in counts.items()
        }
        assert set(text.split(" and ")) == expected
    assert format_caption([9]) == "an ankle boot"
    assert format_caption([9, 8]) == "an ankle boot and a bag"
    assert format_caption([7, 8, 7]) == "two sneakers and a bag"
    assert format_caption([0]) == "a T-shirt/top"


def test_test_split_and_uncompressed_files(root: Path, tmp_path: Path) -> None:
    test = MovingFashionMNIST(length=2, split="test", root=root)
    assert np.array_equal(test.labels, LABELS[::-1])
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (plain / name).write_bytes(gzip.decompress((root / f"{name}.gz").read_bytes()))
    assert np.array_equal(MovingFashionMNIST(root=plain).labels, LABELS)
    with pytest.raises(ValueError, match="split must be one of"):
        MovingFashionMNIST(root=root, split="val")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_objects", 0),
        ("num_objects", 4),
        ("speed_range", (2.0, 1.0)),
        ("garment_size", 80.0),
        ("num_frames", 0),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match="MovingFashionMNISTConfig"):
        MovingFashionMNISTConfig(**{field: value})


def test_malformed_files_name_the_file(tmp_path: Path) -> None:
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    bad_magic = tmp_path / "magic" / "train-images-idx3-ubyte.gz"
    write_split(bad_magic.parent)
    bad_magic.write_bytes(gzip.compress(idx_bytes(LABEL_MAGIC, images)))
    with pytest.raises(ValueError, match=f"{re.escape(str(bad_magic))}.*magic number 2049, expected 2051"):
        _ = MovingFashionMNIST(root=bad_magic.parent).images

    truncated = tmp_path / "short" / "train-images-idx3-ubyte.gz"
    write_split(truncated.parent)
    truncated.write_bytes(gzip.compress(idx_bytes(IMAGE_MAGIC, images)[:-100]))
    with pytest.raises(ValueError, match=f"{re.escape(str(truncated))}.*truncated"):
        _ = MovingFashionMNIST(root=truncated.parent).images

    cut_gzip = tmp_path / "cut" / "train-labels-idx1-ubyte.gz"
    write_split(cut_gzip.parent)
    cut_gzip.write_bytes(cut_gzip.read_bytes()[:-12])  # a download cut short mid-stream
    with pytest.raises(ValueError, match=f"{re.escape(str(cut_gzip))}.*gzip"):
        _ = MovingFashionMNIST(root=cut_gzip.parent).labels

    mismatch = write_split(tmp_path / "mismatch", labels=LABELS[:3])
    mismatch_images = mismatch / "train-images-idx3-ubyte.gz"
    mismatch_images.write_bytes(gzip.compress(idx_bytes(IMAGE_MAGIC, images)))
    with pytest.raises(ValueError, match="3 labels for 5 images"):
        _ = MovingFashionMNIST(root=mismatch).labels

    header_only = tmp_path / "tiny.gz"
    header_only.write_bytes(gzip.compress(b"\x00\x00"))
    with pytest.raises(ValueError, match="shorter than the 16-byte idx header"):
        read_idx(header_only, IMAGE_MAGIC)


def test_missing_root_or_file_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        MovingFashionMNIST(root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    write_split(tmp_path, "train")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"")  # the test split's labels are missing
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz.*apt-get install dataset-fashion-mnist"):
        MovingFashionMNIST(root=tmp_path, split="test")


@pytest.mark.skipif(not Path(DEFAULT_ROOT).exists(), reason=f"Fashion-MNIST not installed at {DEFAULT_ROOT}")
def test_real_fashion_mnist_clip_looks_sane() -> None:
    ds = MovingFashionMNIST(length=8, seed=0, split="test", num_objects=2, colorize=True)
    assert ds.images.shape == (10_000, 28, 28) and np.array_equal(np.unique(ds.labels), np.arange(10))
    item = ds[0]
    frames = ds.frames(0)
    assert item["video"].shape == (3, 17, 64, 64)
    lit = frames.any(axis=-1).mean(axis=(1, 2))  # share of nonzero pixels per frame
    assert (lit > 0.02).all() and (lit < 0.6).all(), lit
    assert any(name in item["caption"] for name in CLASS_NAMES)

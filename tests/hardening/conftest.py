"""Shared tiny models and data for the hardening catalogue (one of each per session: the catalogue stays fast)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.shards import write_tiny_shards
from tokgen.cli import compose_config
from tokgen.generator import Generator
from tokgen.text import TextEncoderConfig, build_text_encoder
from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.model import VideoTokenizer
from tokgen.transformer.config import TransformerConfig
from tokgen.transformer.model import MaskedTransformer


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny models gain nothing from more
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_configs() -> dict:
    """The tiny presets: tokenizer (16x16 frames, 4x4 patches, codebook 64), transformer, learned text."""
    tiny = compose_config(["experiment=transformer_tiny"])
    return {
        "tokenizer": OmegaConf.to_container(compose_config(["tokenizer=tiny"]).tokenizer),
        "transformer": OmegaConf.to_container(tiny.transformer),
        "text": OmegaConf.to_container(tiny.text),
    }


def tiny_tokenizer(configs: dict, seed: int = 0, **overrides: object) -> VideoTokenizer:
    torch.manual_seed(seed)
    return VideoTokenizer(TokenizerConfig.from_dict({**configs["tokenizer"], **overrides})).eval()


def tiny_generator(configs: dict, *, tokenizer: dict | None = None, transformer: dict | None = None) -> Generator:
    """An untrained generator for 9-frame clips (codes 5 x 4 x 4); ``*_overrides`` change one part."""
    tok = tiny_tokenizer(configs, **(tokenizer or {}))
    torch.manual_seed(0)
    tf = MaskedTransformer(TransformerConfig.from_dict({**configs["transformer"], **(transformer or {})}))
    text = build_text_encoder(TextEncoderConfig(**configs["text"]))
    return Generator(tok, tf, text, codes_shape=(5, 4, 4), text_config=configs["text"])


@pytest.fixture(scope="session")
def tokenizer_dir(tiny_configs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tokenizer(tiny_configs).save_pretrained(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture(scope="session")
def generator_dir(tiny_configs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_generator(tiny_configs).save_pretrained(tmp_path_factory.mktemp("gen") / "generator")


@pytest.fixture(scope="session")
def shards(tiny_configs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 Shapes clips as codes of the tiny tokenizer (transformer_tiny holds the first 4 out)."""
    tokenizer = tiny_tokenizer(tiny_configs)

    return write_tiny_shards(tokenizer, tmp_path_factory.mktemp("shards") / "shards", clips=24, batch_size=12)


def moving_square(frames: int = 9, height: int = 16, width: int = 16) -> np.ndarray:
    """uint8 ``(t, h, w, 3)``: an orange square moving right on gray."""
    video = np.full((frames, height, width, 3), 40, dtype=np.uint8)
    for i in range(frames):
        x = i % (width - 6)
        video[i, 4:10, x : x + 6] = (220, 60, 30)
    return video


def index_frames(t: int, h: int = 24, w: int = 32, step: int = 20) -> np.ndarray:
    """Flat gray frames whose brightness ``step * i`` tells frame ``i`` apart after coding."""
    return np.repeat((np.arange(t, dtype=np.uint8) * step)[:, None, None, None], h * w * 3).reshape(t, h, w, 3)


def files_in(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden temporaries included, sorted."""
    return sorted(p.name for p in folder.iterdir())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The tiny learned text encoder keeps 16 bytes of each Shapes caption: expected here, not news.
    # (test_prompts checks that warning itself with pytest.warns, which records it regardless.)
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:prompt .* is truncated:UserWarning"))

"""Every YAML in conf/ composes, and the typed schemas reject what they should."""

from __future__ import annotations

from importlib.resources import files

import pytest
from omegaconf import OmegaConf

from tokgen.cli import compose_config
from tokgen.text import TextEncoderConfig
from tokgen.tokenizer.config import TokenizerConfig, TokenizerTrainConfig
from tokgen.transformer.config import TransformerConfig, TransformerTrainConfig


def _options(group: str) -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml") for p in files("tokgen.conf").joinpath(group).iterdir() if p.name.endswith(".yaml")
    )


GROUPS = ["tokenizer", "transformer", "text", "model", "data", "trainer", "logger", "callbacks"]
# Values a user must give for some presets (folders, files).
REQUIRED = [
    "data.train.root=/nonexistent",
    "tokenize.out=/nonexistent",
    "tokenize.tokenizer=/nonexistent",
    "text.path=/nonexistent",
    "data.predict.prompts=/nonexistent",
]
CASES = [f"{group}={option}" for group in GROUPS for option in _options(group)]
CASES += [f"experiment={option}" for option in _options("experiment")]


def _required(cfg) -> list[str]:
    """Fill the values a preset leaves to the user (``???`` or an unset ``null``)."""
    out = []
    for item in REQUIRED:
        parent, _, leaf = item.split("=")[0].rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None)
        if (
            node is not None
            and leaf in node.keys()  # noqa: SIM118 (`in node` is False for '???' values)
            and (
                OmegaConf.is_missing(node, leaf)
                or (node[leaf] is None and (parent == "tokenize" or node.get("kind") == "hf"))
            )
        ):
            out.append(item)
    return out


@pytest.mark.parametrize("override", CASES)
def test_every_yaml_composes(override: str) -> None:
    cfg = compose_config([override, *_required(compose_config([override]))])
    # Resolves every interpolation (run_dir is set by `run`, so give it a value here).
    cfg.run_dir = "/tmp/run"
    OmegaConf.to_container(cfg, resolve=True)
    # The typed sections build their dataclasses (whose __post_init__ checks them).
    tokenizer = TokenizerConfig.from_dict(OmegaConf.to_container(cfg.tokenizer))
    train = OmegaConf.to_container(cfg.model.train)
    (TransformerTrainConfig if "transformer" in cfg.model._target_ else TokenizerTrainConfig).from_dict(train)
    TransformerConfig.from_dict(OmegaConf.to_container(cfg.transformer))
    TextEncoderConfig(**OmegaConf.to_container(cfg.text))
    if "num_frames" in cfg.data.get("train", {}):
        tokenizer.latent_frames(cfg.data.train.num_frames)  # clip length fits the tokenizer


def test_experiments_exist_for_each_tokenizer_preset() -> None:
    experiments = " ".join(_options("experiment"))
    for preset in ("tiny", "small", "base"):
        assert f"tokenizer_{preset}" in experiments


def test_schema_rejects_unknown_and_mistyped_fields() -> None:
    with pytest.raises(Exception, match="nope"):
        compose_config(["tokenizer.nope=1"])
    with pytest.raises(Exception, match="dim"):
        compose_config(["tokenizer.dim=wide"])


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="quantizer"):
        TokenizerConfig(quantizer="kmeans")
    with pytest.raises(ValueError, match="power of two"):
        TokenizerConfig(quantizer="lfq", codebook_size=1000)
    assert TokenizerConfig(quantizer="fsq", fsq_levels=[8, 5, 5, 5]).codebook_size == 1000
    with pytest.raises(ValueError, match="1 \\+ k\\*2"):
        TokenizerConfig().latent_frames(16)
    with pytest.raises(ValueError, match="perceptual_weights"):
        TokenizerTrainConfig(perceptual_weight=1.0)
    with pytest.raises(ValueError, match="unknown TokenizerConfig fields"):
        TokenizerConfig.from_dict({"dim": 8, "depth": 3})
    with pytest.raises(ValueError, match="refine_channels must be >= 0"):
        TokenizerConfig(refine_channels=-1)
    with pytest.raises(ValueError, match="patch_overlap must be in \\[0, patch_size=8\\], got 9"):
        TokenizerConfig(patch_overlap=9)


def test_quantizer_mix_schedule() -> None:
    # Continuous for the warm-up steps, then linearly onto the codes, reaching them after the ramp.
    train = TokenizerTrainConfig(quantizer_warmup_steps=10, quantizer_ramp_steps=3)
    assert [train.quantizer_mix(step) for step in (0, 9, 10, 11, 12, 13, 100)] == [0, 0, 0.25, 0.5, 0.75, 1, 1]
    assert TokenizerTrainConfig().quantizer_mix(0) == 1.0  # no warm-up: codes from the first step
    assert TokenizerTrainConfig(quantizer_warmup_steps=5).quantizer_mix(5) == 1.0  # a hard switch
    with pytest.raises(ValueError, match="quantizer_ramp_steps must be >= 0"):
        TokenizerTrainConfig(quantizer_ramp_steps=-1)

"""`tokgen evaluate` on tiny tokenizer and generator folders writes a full report with sane numbers."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tokgen.cli import EvaluateOptions, compose_config, main
from tokgen.evaluate import EvaluateConfig
from tokgen.generator import Generator
from tokgen.text import TextEncoderConfig, build_text_encoder
from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.model import VideoTokenizer
from tokgen.transformer.config import TransformerConfig
from tokgen.transformer.model import MaskedTransformer


def _preset(group: str) -> dict:
    return OmegaConf.to_container(compose_config([f"{group}=tiny"])[group])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny tokenizer (16 x 16, 4 x 4 patches, 64 codes) and a generator on it, as `tokgen export` lays them out."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tokenizer = VideoTokenizer(TokenizerConfig(**_preset("tokenizer")))
    tokenizer.save_pretrained(root / "tokenizer")
    text_config = {"kind": "learned", "dim": 32, "depth": 1, "max_length": 40}
    text = build_text_encoder(TextEncoderConfig(**text_config))
    transformer = MaskedTransformer(TransformerConfig(**{**_preset("transformer"), "text_dim": 32, "max_text_len": 40}))
    generator = Generator(tokenizer, transformer, text, codes_shape=(5, 4, 4), text_config=text_config)
    generator.save_pretrained(root / "generator")
    return root / "tokenizer", root / "generator"


def test_cli_options_and_config_share_defaults() -> None:
    config = {f.name: f.default for f in fields(EvaluateConfig)}
    options = {f.name: f.default for f in fields(EvaluateOptions) if f.name not in ("model", "out", "overwrite")}
    assert options == config


def test_evaluate_tokenizer_writes_the_report(models: tuple[Path, Path], tmp_path: Path) -> None:
    tokenizer_dir, _ = models
    out = tmp_path / "report"
    main(
        [
            "evaluate",
            f"model={tokenizer_dir}",
            f"out={out}",
            "num_clips=6",
            "batch_size=4",
            "resolution=32",
            "num_frames=9",
        ]
    )
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "metrics.json", "samples.png", "psnr_per_frame.png", "code_frequency.png"} <= names
    record = json.loads((out / "metrics.json").read_text())
    m = record["metrics"]
    assert record["kind"] == "tokenizer" and record["protocol"]["num_clips"] == 6
    assert m["codes_per_clip"] == 5 * 8 * 8  # 9 frames -> 5 latent frames of 8 x 8 codes (32 px, patch 4)
    assert m["bits_per_pixel"] == pytest.approx(5 * 8 * 8 * math.log2(64) / (9 * 32 * 32))
    assert 0 < m["codebook_usage"] <= 1 and 1 <= m["codebook_perplexity"] <= 64
    assert m["bits_per_pixel_entropy"] <= m["bits_per_pixel"] + 1e-9
    assert 0 < m["psnr_db"]["mean"] < 60 and -1 <= m["ssim"]["mean"] <= 1
    assert m["shapes_rfvd"] >= 0 and 0 <= m["recon_adherence"]["all"] <= 1  # reconstructions scored as Shapes
    assert m["encode_clips_per_s"] > 0 and len(record["curves"]["psnr_per_frame"]) == 9
    report = (out / "report.md").read_text()
    assert "| PSNR (dB), mean ± std over clips |" in report and "![samples](samples.png)" in report
    # An existing report is never overwritten by accident.
    with pytest.raises(SystemExit, match="not empty"):
        main(["evaluate", f"model={tokenizer_dir}", f"out={out}", "num_clips=2"])


def test_evaluate_generator_writes_the_report(models: tuple[Path, Path], tmp_path: Path) -> None:
    _, generator_dir = models
    out = tmp_path / "gen_report"
    args = ["num_clips=8", "seeds=2", "batch_size=8", "steps=2", "diversity_prompts=2", "diversity_seeds=2"]
    main(["evaluate", f"model={generator_dir}", f"out={out}", *args, "stories=2"])
    record = json.loads((out / "metrics.json").read_text())
    m, protocol = record["metrics"], record["protocol"]
    assert record["kind"] == "generator" and [r["seed"] for r in record["per_seed"]] == [0, 1]
    assert protocol["num_clips"] == 8 and protocol["seeds"] == [0, 1] and "9 frames at 16x16" in protocol["clip_length"]
    assert "not comparable" in protocol["shapes_fvd"] and "skipped" in protocol["i3d"]
    for key in ("color", "shape", "motion", "all"):
        assert 0 <= m["adherence"][key]["mean"] <= 1
    # An untrained generator is far from real clips; two real splits are much closer to each other.
    assert m["shapes_fvd"]["mean"] > 2 * m["shapes_fvd_floor"]["mean"] > 0
    assert 1 <= m["shapes_is"]["mean"] <= 120 and 1 <= m["shapes_is_real"]["mean"] <= 120
    assert m["diversity"]["prompts"] == 2 and 0 <= m["diversity"]["distinct"] <= 1
    assert m["stories"]["stories"] == 2 and len(m["stories"]["segments"]) == 3
    report = (out / "report.md").read_text()
    for text in ("## Protocol", "Shapes-FVD (generated vs real)", "## Per seed", "## Diversity", "## Stories"):
        assert text in report
    assert {"adherence.png", "shapes_fvd.png", "samples.png"} <= {p.name for p in out.iterdir()}


def test_evaluate_errors_are_clear(models: tuple[Path, Path], tmp_path: Path) -> None:
    _, generator_dir = models
    with pytest.raises(SystemExit, match="neither a tokenizer folder"):
        main(["evaluate", f"model={tmp_path}", f"out={tmp_path / 'r'}"])
    with pytest.raises(SystemExit, match="I3D weights not found at '.*missing.pt'"):
        main(["evaluate", f"model={generator_dir}", f"out={tmp_path / 'r2'}", f"i3d={tmp_path / 'missing.pt'}"])
    with pytest.raises(SystemExit, match="num_clips must be >= 2"):
        main(["evaluate", f"model={generator_dir}", "num_clips=1"])

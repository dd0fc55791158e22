"""The demo end to end at tiny size: every stage runs for real, a second run reuses the trained models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokgen import demo
from tokgen.cli import compose_config, run
from tokgen.data.token_shards import TokenShardDataset
from tokgen.demo import run_demo, train_tokenizer
from tokgen.io.video import read_video

TINY = {
    "experiment=tokenizer_small_shapes": "experiment=tokenizer_tiny",
    "experiment=transformer_small_shapes": "experiment=transformer_tiny",
}


def tiny_compose(overrides: list[str]):
    # The demo's own experiments swapped for the tiny ones, trained for a handful of steps.
    swapped = [TINY.get(o, o) for o in overrides if not o.startswith("trainer.max_time=")]
    if "experiment=transformer_tiny" in swapped:
        swapped += ["text.max_length=32", "transformer.max_text_len=32", "data.train.offset=4"]
    return compose_config([*swapped, "trainer.max_steps=4", "logger=none"])


@pytest.mark.slow
def test_demo_trains_every_stage_then_reuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "slow_cpu_note", lambda: "training runs in fp32")  # as on a CPU without bf16
    out = tmp_path / "demo"
    prompts = ("a red circle moves right", "the red circle moves up")
    settings = dict(tokenizer_minutes=1, generator_minutes=1, clips=12, compose=tiny_compose, fit=run, prompts=prompts)
    settings |= dict(resolution=16, num_frames=9, generator_frames=5, frames_per_prompt=8)  # the tiny presets
    run_demo(out, **settings)
    first = capsys.readouterr().out
    assert "training the small tokenizer" in first and "training the small masked transformer" in first
    assert first.startswith("note: training runs in fp32\n")
    for name in (
        "tokenizer/config.json",
        "generator/transformer/config.json",
        "tokens/index.json",
        "reconstructions.mp4",
        "reconstructions.png",
        "story.png",
        "story.json",
    ):
        assert (out / name).is_file(), name
    sidecar = json.loads((out / "story.json").read_text())
    assert [s["prompt"] for s in sidecar["segments"]] == list(prompts)
    # 1 + 8 frames per prompt for two prompts, told in windows of the generator's 5-frame clips.
    assert read_video(out / "story.mp4").shape == (17, 16, 16, 3)
    # The motion-change clips (the last 30%) train as story windows: their carried latent frame is given.
    shards = TokenShardDataset(out / "tokens")
    assert [shards[i]["context_frames"] for i in range(len(shards))] == [0] * 8 + [1] * 4

    tokenizer_bytes = (out / "tokenizer" / "model.safetensors").read_bytes()
    run_demo(out, **settings)
    second = capsys.readouterr().out
    assert "reusing" in second and "training" not in second  # nor the note: nothing is trained
    assert (out / "tokenizer" / "model.safetensors").read_bytes() == tokenizer_bytes


class _Composed(Exception):
    """Raised by the fake fit: the overrides were composed, nothing is trained."""


@pytest.mark.parametrize(("minutes", "refine"), [(6, "0"), (15, None)])
def test_demo_tokenizer_drops_refinement_below_its_budget(tmp_path: Path, minutes: int, refine: str | None) -> None:
    # Pixel refinement costs a third more per step and pays only at the preset's 15-minute budget.
    composed: list[list[str]] = []

    def fit(cfg, stage: str) -> None:
        raise _Composed

    with pytest.raises(_Composed):
        train_tokenizer(tmp_path, minutes, compose=lambda overrides: composed.append(overrides), fit=fit)
    (overrides,) = composed
    found = [o.split("=", 1)[1] for o in overrides if o.startswith("tokenizer.refine_channels=")]
    assert found == ([refine] if refine else [])
    assert f"trainer.max_time=00:00:{minutes:02d}:00" in overrides

"""NaN and Inf: refused where they enter, and a run that diverges stops with its last good checkpoint intact.

The training runs are the real ones (`tokgen fit` on the tiny presets, the real Trainer and callbacks
of conf/callbacks/default.yaml); the callbacks below only inject the fault at a chosen step.
"""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from tokgen.cli import main
from tokgen.data.shapes import ShapesDataset
from tokgen.generator import Generator
from tokgen.io.convert import tensor_to_frames
from tokgen.io.video_write import write_video
from tokgen.sampling.prompts import read_prompt_list

FAULT_STEP = 3  # the fault hits when global_step == 3: a checkpoint after every step, the last good one at 3


class PoisonWeights(L.Callback):
    """Before step ``step``: one weight becomes NaN (what an overflow in the previous update leaves)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.model.parameters()).view(-1)[0] = float("nan")


class PoisonGradients(L.Callback):
    """At step ``step``: an Inf gradient, so the update writes NaN into weights after a finite loss."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.step:
            next(pl_module.model.parameters()).grad.view(-1)[0] = float("inf")


class CorruptClipAt(ShapesDataset):
    """Shapes clips, but the ``corrupt``-th clip loaded holds a NaN (a file that decoded to garbage).

    Counted in load order (no workers), so the NaN lands in batch ``corrupt // batch_size``.
    """

    def __init__(self, *args, corrupt: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.corrupt, self.loaded = corrupt, 0

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if self.loaded == self.corrupt:
            item["video"][0, 0, 0, 0] = float("nan")
        self.loaded += 1
        return item


def _fit_with(fault: str, tmp_path: Path, experiment: list[str]) -> tuple[str, dict]:
    """`tokgen fit` with a fault injected; the error must be one clear line. Returns it and the last checkpoint."""
    run_dir = tmp_path / "run"
    args = [
        "fit",
        *experiment,
        "~callbacks.progress",
        "logger=none",
        "trainer.max_steps=6",
        "trainer.limit_val_batches=0",
        "trainer.enable_model_summary=false",
        "callbacks.checkpoint.every_n_train_steps=1",
        f"+callbacks.fault={fault}",
        f"run_dir={run_dir}",
    ]
    with pytest.raises(SystemExit, match=r"^tokgen fit: error: ") as caught:
        main(args)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return str(caught.value), last


def _finite(ckpt: dict) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in ckpt["state_dict"].values() if t.is_floating_point())


@pytest.fixture(scope="module")
def tokenizer_experiment() -> list[str]:
    return ["experiment=tokenizer_tiny", "data.train.length=32"]


@pytest.fixture
def transformer_experiment(shards: Path) -> list[str]:
    return ["experiment=transformer_tiny", f"tokenize.out={shards}", "tokenize.tokenizer=null"]


def test_a_nan_loss_stops_training_with_the_last_good_checkpoint(tokenizer_experiment, tmp_path: Path) -> None:
    fault = f"{{_target_: {__name__}.PoisonWeights, step: {FAULT_STEP}}}"
    message, last = _fit_with(fault, tmp_path, tokenizer_experiment)
    assert re.search(rf"non-finite tokenizer loss at step {FAULT_STEP} .*last good checkpoint is kept", message)
    assert last["global_step"] == FAULT_STEP and _finite(last)  # three steps saved; the fourth never was


def test_nan_weights_after_a_finite_loss_never_reach_a_checkpoint(transformer_experiment, tmp_path: Path) -> None:
    fault = f"{{_target_: {__name__}.PoisonGradients, step: {FAULT_STEP}}}"
    message, last = _fit_with(fault, tmp_path, transformer_experiment)
    assert f"after step {FAULT_STEP + 1} the weights hold NaN/Inf (model." in message
    assert "the last good checkpoint is kept: " in message and message.endswith("or check the data")
    assert last["global_step"] == FAULT_STEP and _finite(last)  # the poisoned update was never saved


def test_nan_in_a_training_batch_is_named_as_a_data_problem(tokenizer_experiment, tmp_path: Path) -> None:
    corrupt = [f"data.train._target_={__name__}.CorruptClipAt", f"+data.train.corrupt={4 * FAULT_STEP + 1}"]
    fault = "{_target_: lightning.pytorch.callbacks.Callback}"  # none: the data carries it
    message, last = _fit_with(fault, tmp_path, [*tokenizer_experiment, *corrupt])
    assert re.search(rf"step {FAULT_STEP}\) holds NaN/Inf in 'video' \(4, 3, 9, 16, 16\); check the data", message)
    assert last["global_step"] == FAULT_STEP and _finite(last)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("guidance", float("nan")), ("temperature", float("nan")), ("temperature", float("inf")), ("guidance", -np.inf)],
)
def test_nan_or_inf_sampling_settings_are_refused(generator_dir: Path, setting: str, value: float) -> None:
    generator = Generator.from_pretrained(generator_dir)
    with pytest.raises(ValueError, match=f"{setting} must be a finite number, got {value}"):
        generator.generate("a red circle moves up", steps=1, **{setting: value})


def test_nan_settings_in_a_prompt_file_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "story.json"
    path.write_text('[\n "a red circle moves up",\n {"prompt": "x", "guidance": NaN}\n]\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: guidance must be a finite number > 0, got nan")):
        read_prompt_list(path)
    path = tmp_path / "story.yaml"
    path.write_text("- {prompt: x, temperature: .nan}\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:1: temperature must be a finite number >= 0, got nan")):
        read_prompt_list(path)


def test_nan_text_embeddings_and_nan_logits_are_refused(generator_dir: Path) -> None:
    generator = Generator.from_pretrained(generator_dir)
    codes = torch.zeros(1, 5, 4, 4, dtype=torch.long)
    text = torch.zeros(1, 4, 32)
    text[0, 1, 3] = float("inf")
    with pytest.raises(ValueError, match=r"text embeddings \(1, 4, 32\) hold NaN or Inf"):
        generator.transformer(codes, text, torch.ones(1, 4, dtype=torch.bool))
    with torch.no_grad():
        next(generator.transformer.parameters()).fill_(float("nan"))  # a model whose weights went bad
    with pytest.raises(FloatingPointError, match="NaN logits at step 0"):
        generator.generate("a red circle moves up", steps=1)


def test_nan_frames_are_refused_not_written_as_black(tmp_path: Path) -> None:
    video = torch.zeros(1, 3, 5, 8, 8)
    video[0, 1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 8, 8\) holds NaN or Inf"):
        tensor_to_frames(video)
    with pytest.raises(TypeError, match="uint8"):  # float frames never reach the encoder
        write_video(tmp_path / "x.mp4", np.full((2, 8, 8, 3), np.nan, np.float32), 8)
    assert not list(tmp_path.iterdir())

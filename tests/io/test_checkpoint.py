"""Checkpoint folders: config.json + model.safetensors, atomic, pickle-free, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tokgen.io.checkpoint import load_pretrained, save_pretrained

CONFIG = {"dim": 8, "levels": [4, 4], "name": "tiny"}


def tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "layer.weight": torch.randn(4, 3, generator=generator),
        "layer.bias": torch.zeros(4, dtype=torch.float64),
        "codebook.initted": torch.tensor(True),
        "mask": torch.arange(5),
    }


def test_round_trip_is_exact(tmp_path: Path) -> None:
    folder = save_pretrained(tmp_path / "run", CONFIG, tensors(), kind="tokenizer")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((folder / "config.json").read_text())
    assert meta["kind"] == "tokenizer" and meta["format_version"] == 1 and meta["config"] == CONFIG
    config, state = load_pretrained(folder, kind="tokenizer")
    assert config == CONFIG and state.keys() == tensors().keys()
    for name, tensor in tensors().items():
        assert torch.equal(state[name], tensor) and state[name].dtype == tensor.dtype, name
    assert not list(tmp_path.glob(".*tmp")), "the staging folder must not be left behind"


def test_weights_are_not_pickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_pretrained(tmp_path / "run", CONFIG, tensors(), kind="tokenizer")
    assert not (tmp_path / "run" / "model.safetensors").read_bytes().startswith(b"\x80")  # pickle's opcode
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must not be used"))
    load_pretrained(tmp_path / "run", kind="tokenizer")


def test_shared_tensors_are_saved(tmp_path: Path) -> None:
    weight = torch.randn(3, 3)
    save_pretrained(tmp_path / "run", {}, {"a": weight, "b": weight, "c": weight[0]}, kind="tokenizer")
    _, state = load_pretrained(tmp_path / "run", kind="tokenizer")
    assert torch.equal(state["a"], weight) and torch.equal(state["b"], weight) and torch.equal(state["c"], weight[0])


def test_existing_folder_is_never_overwritten_by_default(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_pretrained(folder, CONFIG, tensors(), kind="tokenizer")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_overwrite_replaces_only_the_checkpoint_files(tmp_path: Path) -> None:
    folder = save_pretrained(tmp_path / "run", {"v": 1}, tensors(), kind="tokenizer")
    (folder / "notes.txt").write_text("mine")
    save_pretrained(folder, {"v": 2}, {"x": torch.ones(2)}, kind="tokenizer", overwrite=True)
    config, state = load_pretrained(folder, kind="tokenizer")
    assert config == {"v": 2} and list(state) == ["x"]
    assert (folder / "notes.txt").read_text() == "mine"


def test_empty_existing_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    save_pretrained(tmp_path / "run", CONFIG, tensors(), kind="tokenizer")
    assert load_pretrained(tmp_path / "run", kind="tokenizer")[0] == CONFIG


def test_missing_folder_names_the_expected_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"does not exist.*config\.json and model\.safetensors"):
        load_pretrained(tmp_path / "nowhere", kind="tokenizer")


def test_missing_file_is_named(tmp_path: Path) -> None:
    folder = save_pretrained(tmp_path / "run", CONFIG, tensors(), kind="tokenizer")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks model\.safetensors"):
        load_pretrained(folder, kind="tokenizer")


def test_lightning_checkpoint_points_to_export(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"not really")
    with pytest.raises(ValueError, match=r"Lightning.*tokgen export"):
        load_pretrained(ckpt, kind="tokenizer")
    with pytest.raises(FileNotFoundError, match=r"tokgen export"):
        load_pretrained(tmp_path, kind="tokenizer")  # a run folder with .ckpt files but no export


def test_wrong_kind_is_an_error(tmp_path: Path) -> None:
    save_pretrained(tmp_path / "run", CONFIG, tensors(), kind="transformer")
    with pytest.raises(ValueError, match=r"'transformer' checkpoint, expected a 'tokenizer'"):
        load_pretrained(tmp_path / "run", kind="tokenizer")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"config": {}}', "lacks the 'kind'"),
        ('{"kind": "tokenizer", "format_version": 99, "config": {}}', "format_version 99"),
    ],
)
def test_malformed_config_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    folder = save_pretrained(tmp_path / "run", CONFIG, tensors(), kind="tokenizer")
    (folder / "config.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_pretrained(folder, kind="tokenizer")


def test_corrupt_weights_are_an_error(tmp_path: Path) -> None:
    folder = save_pretrained(tmp_path / "run", CONFIG, tensors(), kind="tokenizer")
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="safetensors"):
        load_pretrained(folder, kind="tokenizer")

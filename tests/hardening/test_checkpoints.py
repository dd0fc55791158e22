"""Checkpoints: missing files, the two formats mixed up, mismatched parts, tampered weights, pickles.

Covered elsewhere (see docs/hardening.md): an export folder's missing files, malformed config.json and
corrupt weights (tests/io/test_checkpoint.py); an export folder given to `tokgen export`
(tests/tokenizer/test_lit.py); a transformer trained against another codebook
(tests/transformer/test_lit.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.hardening.conftest import tiny_generator, tiny_tokenizer
from tokgen.cli import main
from tokgen.generator import Generator
from tokgen.tokenizer.model import VideoTokenizer

LIGHTNING_VERBS = [
    ["fit", "experiment=tokenizer_tiny", "~callbacks.progress"],
    ["validate", "experiment=tokenizer_tiny"],
]


def _copy(generator_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(generator_dir, tmp_path / "generator"))


def _edit_config(folder: Path, change) -> None:
    path = folder / "config.json"
    meta = json.loads(path.read_text())
    change(meta["config"])
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("verb", LIGHTNING_VERBS, ids=lambda v: v[0])
def test_missing_checkpoint_is_one_clear_line(verb: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(SystemExit, match=f"tokgen {verb[0]}: error: {missing}: no such checkpoint file"):
        main([*verb, f"ckpt_path={missing}", f"run_dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists()  # refused before a run folder was made
    with pytest.raises(FileNotFoundError, match=f"generator folder {tmp_path / 'gen'} does not exist"):
        Generator.from_pretrained(tmp_path / "gen")


def test_tokenizer_export_given_as_a_generator_folder(tokenizer_dir: Path) -> None:
    with pytest.raises(
        ValueError, match="is one model's export .*not a generator folder; .* tokenizer/ and transformer/"
    ):
        Generator.from_pretrained(tokenizer_dir)


@pytest.mark.parametrize("verb", LIGHTNING_VERBS, ids=lambda v: v[0])
def test_export_folder_given_as_a_lightning_checkpoint(verb: list[str], tokenizer_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="got a folder .*already an export folder: load it with from_pretrained"):
        main([*verb, f"ckpt_path={tokenizer_dir}", f"run_dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists()


def test_lightning_checkpoint_given_as_an_export_folder(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}}, ckpt)
    with pytest.raises(ValueError, match="is a file, expected a generator folder .*tokgen export ckpt="):
        Generator.from_pretrained(ckpt)
    with pytest.raises(ValueError, match="Lightning training checkpoint.*tokgen export"):
        VideoTokenizer.from_pretrained(ckpt)
    with pytest.raises(SystemExit, match="tokgen story: error: .*last.ckpt is a file, expected a generator folder"):
        prompts = tmp_path / "p.txt"
        prompts.write_text("a red circle moves up\n")
        main(["story", f"prompts={prompts}", f"out={tmp_path / 's.mp4'}", f"generator={ckpt}"])


@pytest.mark.parametrize(
    ("part", "change", "match"),
    [
        ("tokenizer", {"codebook_size": 128}, "tokenizer with codebook_size=64 \\(tokenizer/ has 128\\)"),
        ("tokenizer", {"patch_size": 2}, "tokenizer with patch_size=4 \\(tokenizer/ has 2\\)"),
        ("tokenizer", {"temporal_patch": 1}, "tokenizer with temporal_patch=2 \\(tokenizer/ has 1\\)"),
        ("codes_shape", [5, 16, 16], r"\(5, 16, 16\) exceeds the transformer maxima .* = \(8, 8, 8\)"),
        ("text", {"dim": 48}, "text encoder width 48 .* does not match the transformer's text_dim 32"),
    ],
    ids=["codebook_size", "patch_size", "temporal_patch", "latent_grid", "text_width"],
)
def test_mismatched_generator_parts_are_named(
    part: str, change, match: str, tiny_configs: dict, generator_dir: Path, tmp_path: Path
) -> None:
    folder = _copy(generator_dir, tmp_path)
    if part == "tokenizer":  # another tokenizer put in tokenizer/
        tiny_tokenizer(tiny_configs, **change).save_pretrained(folder / "tokenizer", overwrite=True)
    elif part == "codes_shape":
        _edit_config(folder / "transformer", lambda c: c.update(codes_shape=change))
    else:
        _edit_config(folder / "transformer", lambda c: c["text"].update(change))
    with pytest.raises(ValueError, match=f"{folder}.*{match}"):
        Generator.from_pretrained(folder)


def test_codebook_mismatch_without_a_recorded_tokenizer(
    tiny_configs: dict, generator_dir: Path, tmp_path: Path
) -> None:
    """Folders written before the tokenizer's geometry was recorded still get the codebook check."""
    folder = _copy(generator_dir, tmp_path)
    _edit_config(folder / "transformer", lambda c: c.pop("tokenizer"))
    assert Generator.from_pretrained(folder).codes_shape == (5, 4, 4)
    tiny_tokenizer(tiny_configs, codebook_size=128).save_pretrained(folder / "tokenizer", overwrite=True)
    with pytest.raises(ValueError, match="codebook_size 128 != transformer codebook_size 64"):
        Generator.from_pretrained(folder)
    with pytest.raises(ValueError, match="text encoder width 32 .* text_dim 48"):
        tiny_generator(tiny_configs, transformer={"text_dim": 48})


@pytest.mark.parametrize("part", ["tokenizer", "transformer"])
@pytest.mark.parametrize("how", ["missing", "extra"])
def test_safetensors_with_missing_or_extra_tensors(part: str, how: str, generator_dir: Path, tmp_path: Path) -> None:
    folder = _copy(generator_dir, tmp_path)
    weights = folder / part / "model.safetensors"
    state = load_file(weights)
    if how == "missing":
        name = sorted(state)[0]
        del state[name]
    else:
        name = "stray.weight"
        state[name] = torch.zeros(3)
    save_file(state, weights)
    expected = name.removeprefix("model.")  # the message names the tensor
    with pytest.raises(ValueError, match=f"(?s){folder / part}.*{expected}"):
        Generator.from_pretrained(folder)


class _Payload:
    """Unpickling this runs ``os.system``: a file anyone could hand over as a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.parametrize("how", ["export", "fit", "validate"])
def test_a_pickle_payload_in_a_ckpt_is_never_executed(how: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": _Payload(marker)}}, evil)  # a valid torch file
    args = {
        "export": ["export", f"ckpt={evil}", f"out={tmp_path / 'out'}"],
        "fit": [*LIGHTNING_VERBS[0], f"ckpt_path={evil}", f"run_dir={tmp_path / 'out'}"],
        "validate": [*LIGHTNING_VERBS[1], f"ckpt_path={evil}", f"run_dir={tmp_path / 'out'}"],
    }[how]
    with pytest.raises(SystemExit, match=f"{evil}: refused: it holds pickled objects .* never unpickles"):
        main(args)
    assert not marker.exists()  # the payload never ran
    assert not (tmp_path / "out").exists()


def test_a_pickle_renamed_model_safetensors_is_refused(generator_dir: Path, tmp_path: Path) -> None:
    folder = _copy(generator_dir, tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"w": _Payload(marker)}, folder / "transformer" / "model.safetensors")
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        Generator.from_pretrained(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (["transformer.codebook_size=32"], "codebook_size 64 != transformer codebook_size 32"),
        (["transformer.max_h=2"], r"codes shape \(t, h, w\) = \(5, 4, 4\) exceeds the transformer maxima"),
        (["text=minilm", "transformer.text_dim=384"], "text embeddings are 32 wide, the transformer's text_dim is 384"),
    ],
    ids=["codebook_size", "latent_grid", "text_width"],
)
def test_training_on_shards_of_another_tokenizer_or_text_encoder(
    override: list[str], match: str, shards: Path, tmp_path: Path
) -> None:
    """Checked from the shards' own index, so it holds without a tokenizer folder (tokenize.tokenizer=null)."""
    args = ["fit", "experiment=transformer_tiny", f"tokenize.out={shards}", "tokenize.tokenizer=null"]
    with pytest.raises(SystemExit, match=f"tokgen fit: error: {shards}: .*{match}"):
        main([*args, "~callbacks.progress", f"run_dir={tmp_path / 'run'}", *override])
    assert not list((tmp_path / "run").glob("checkpoints/*"))

"""The `tokgen` command: help, verb table, option parsing, run folders, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tokgen.cli import VERBS, choose_run_dir, compose_config, main


def test_console_script_help_lists_every_verb() -> None:
    # The real entry point, as a user runs it (python -m tokgen == the console script).
    result = subprocess.run([sys.executable, "-m", "tokgen", "--help"], capture_output=True, text=True, check=True)
    for verb in ("fit", "validate", "test", "predict", "export", "make-shapes", "demo"):
        assert verb in result.stdout
    assert len([line for line in result.stdout.splitlines() if line.startswith("  ")]) >= len(VERBS)


def test_verb_help_shows_the_composed_config(capsys: pytest.CaptureFixture[str]) -> None:
    main(["fit", "--help", "experiment=tokenizer_tiny"])
    out = capsys.readouterr().out
    assert "composed config" in out and "patch_size: 4" in out and "tokgen.tokenizer.lit.TokenizerLit" in out
    main(["fit", "--cfg", "job", "tokenizer.dim=48"])
    assert "dim: 48" in capsys.readouterr().out


def test_unknown_verb_and_bad_options_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="unknown verb 'fitt'"):
        main(["fitt"])
    with pytest.raises(SystemExit, match="unexpected argument 'size=3'"):
        main(["make-shapes", "out=x", "size=3"])
    with pytest.raises(SystemExit, match="missing required out="):
        main(["make-shapes"])
    with pytest.raises(SystemExit, match="prompt= has no value"):  # OmegaConf alone: "Incompatible value 'None'"
        main(["generate", "generator=g", "out=o", "prompt="])
    with pytest.raises(SystemExit, match="needs ckpt_path"):
        main(["validate", "experiment=tokenizer_tiny"])


def test_run_folder_is_never_reused(tmp_path: Path) -> None:
    cfg = compose_config([f"run_dir={tmp_path / 'run'}"])
    (tmp_path / "run").mkdir()
    assert choose_run_dir(cfg, "fit") == tmp_path / "run"  # empty folder: fine
    (tmp_path / "run" / "config.yaml").write_text("old")
    with pytest.raises(FileExistsError, match="not empty"):
        choose_run_dir(cfg, "fit")


def test_make_shapes_writes_a_readable_folder(tmp_path: Path) -> None:
    from tokgen.data.video_folder import VideoFolderDataset

    main(["make-shapes", f"out={tmp_path}/shapes", "count=3", "resolution=32", "num_frames=5"])
    dataset = VideoFolderDataset(tmp_path / "shapes", num_frames=5, temporal_patch=2, size=32)
    assert len(dataset) == 3
    item = dataset[0]
    assert item["video"].shape == (3, 5, 32, 32) and item["caption"].startswith("a")
    with pytest.raises(SystemExit, match="not empty"):  # never overwrites what is there
        main(["make-shapes", f"out={tmp_path}/shapes", "count=3"])
    with pytest.raises(SystemExit, match="count=0: a Shapes folder needs at least one clip"):
        main(["make-shapes", f"out={tmp_path}/empty", "count=0"])
    assert not (tmp_path / "empty").exists()


def test_a_device_this_machine_lacks_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from tokgen import precision

    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision.torch.backends.mps, "is_available", lambda: False)
    assert precision.check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device=mps: Apple's MPS is not available here; use device=cpu"):
        precision.check_device("mps")
    with pytest.raises(ValueError, match="device=gpu: not a device name; expected cpu, cuda, cuda:N or mps"):
        precision.check_device("gpu")
    # Through a verb: one line, not torch's AssertionError ("Torch not compiled with CUDA enabled").
    with pytest.raises(SystemExit, match="tokgen compress: error: device=cuda: no CUDA GPU here .*use device=cpu"):
        main(["compress", "input=in.mp4", "output=out.tok", "tokenizer=tok", "device=cuda"])
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(precision.torch.cuda, "device_count", lambda: 2)
    assert precision.check_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device=cuda:2: this machine has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        precision.check_device("cuda:2")

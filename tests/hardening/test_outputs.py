"""Outputs: written under a temporary name and renamed when complete, never overwritten by accident,
and nothing half-written left behind when a run fails in the middle of writing."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.hardening.conftest import files_in, moving_square, tiny_tokenizer
from tokgen import codec
from tokgen.cli import main
from tokgen.codec import compress, decompress
from tokgen.generator import Generator
from tokgen.io.contact_sheet import save_png
from tokgen.io.story import StorySegment, write_story
from tokgen.io.video import probe_video, read_video
from tokgen.io.video_write import write_video


def _ckpt(tiny_configs: dict, path: Path) -> Path:
    """A tokenizer Lightning checkpoint as `tokgen fit` writes it (model.* weights + plain hyperparameters)."""
    state = {f"model.{k}": v for k, v in tiny_tokenizer(tiny_configs).state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"tokenizer": tiny_configs["tokenizer"], "train": {}}}, path)
    return path


def _write(writer: str, out: Path, *, overwrite: bool, ctx: dict) -> None:
    """Run one writer of tokgen on ``out`` (a file, or a folder for export and evaluate)."""
    flag = f"overwrite={str(overwrite).lower()}"
    if writer == "video":
        write_video(out, moving_square(5), 8, overwrite=overwrite)
    elif writer == "png":
        save_png(out, moving_square(1)[0], overwrite=overwrite)
    elif writer == "export":
        main(["export", f"ckpt={_ckpt(ctx['configs'], out.parent / 'last.ckpt')}", f"out={out}", flag])
    elif writer == "tok":
        main(["compress", f"input={ctx['clip']}", f"output={out}", f"tokenizer={ctx['tokenizer']}", flag])
    elif writer == "decompressed":
        main(["decompress", f"input={ctx['tok']}", f"output={out}", flag])
    elif writer == "story":
        story = Generator.from_pretrained(ctx["generator"]).story(["a red circle moves up"], steps=1)
        story.write(out, overwrite=overwrite)
    elif writer == "generate":
        main(
            ["generate", f"generator={ctx['generator']}", "prompt=a red circle moves up", f"out={out}", "steps=1", flag]
        )
    elif writer == "evaluate":
        main(["evaluate", f"model={ctx['tokenizer']}", f"out={out}", "num_clips=2", "resolution=16", flag])
    else:
        raise ValueError(writer)


WRITERS = {  # writer -> (output name, what an earlier run left there)
    "video": ("clip.mp4", "clip.mp4"),
    "png": ("sheet.png", "sheet.png"),
    "export": ("export", "export/config.json"),
    "tok": ("clip.tok", "clip.tok"),
    "decompressed": ("clip.mp4", "clip.mp4"),
    "story": ("story.mp4", "story.png"),  # any one of the three files a story writes blocks it
    "generate": ("clips", "clips/sample_0000.mp4"),
    "evaluate": ("report", "report/report.md"),
}


@pytest.fixture(scope="module")
def ctx(tiny_configs: dict, tokenizer_dir: Path, generator_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("inputs")
    clip = write_video(root / "clip.mp4", moving_square(9), 8)
    tok = compress(clip, root / "clip.tok", tokenizer_dir).path
    return {"configs": tiny_configs, "tokenizer": tokenizer_dir, "generator": generator_dir, "clip": clip, "tok": tok}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_an_existing_output_is_never_overwritten_without_overwrite(writer: str, ctx: dict, tmp_path: Path) -> None:
    name, earlier = WRITERS[writer]
    old = tmp_path / earlier
    old.parent.mkdir(exist_ok=True)
    old.write_bytes(b"an earlier run's output")
    before = files_in(old.parent)
    with pytest.raises((FileExistsError, SystemExit), match="exist|not empty"):
        _write(writer, tmp_path / name, overwrite=False, ctx=ctx)
    assert old.read_bytes() == b"an earlier run's output" and files_in(old.parent) == before
    if writer != "evaluate":  # the full report takes longest; tests/test_evaluate.py writes one
        _write(writer, tmp_path / name, overwrite=True, ctx=ctx)
        assert old.read_bytes() != b"an earlier run's output"


def test_the_final_name_appears_only_when_the_file_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    seen: list[list[str]] = []

    def frames():
        for i, frame in enumerate(moving_square(6)):
            if i == 3:
                seen.append(files_in(tmp_path))  # mid-write: what is in the folder?
            yield frame

    write_video(out, frames(), 8)
    (during,) = seen
    assert "clip.mp4" not in during and len(during) == 1
    assert during[0].startswith(".clip.mp4.") and during[0].endswith(".tmp")  # hidden, same folder
    assert files_in(tmp_path) == ["clip.mp4"] and probe_video(out).num_frames == 6


@pytest.mark.parametrize("error", [RuntimeError("the decoder crashed"), KeyboardInterrupt()], ids=["crash", "ctrl_c"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_a_video_write_failing_midway_leaves_no_half_written_mp4(error, existing: bool, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    if existing:
        write_video(out, moving_square(3), 8)

    def frames():
        yield from moving_square(4)
        raise error

    with pytest.raises(type(error)):
        write_video(out, frames(), 8, overwrite=True)
    assert files_in(tmp_path) == (["clip.mp4"] if existing else [])  # no temporary file either
    if existing:
        assert len(read_video(out)) == 3  # the earlier file, intact


def test_decompress_failing_midway_leaves_no_mp4(ctx: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = codec.iter_decoded

    def failing(*args, **kwargs):
        for i, frame in enumerate(real(*args, **kwargs)):
            if i == 3:
                raise RuntimeError("out of memory while decoding")
            yield frame

    monkeypatch.setattr(codec, "iter_decoded", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        decompress(ctx["tok"], tmp_path / "clip.mp4")
    assert files_in(tmp_path) == []


def test_compress_failing_midway_leaves_no_tok(ctx: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.write_bytes

    def disk_full(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])  # half the bytes reach the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError, match="No space left"):
        compress(ctx["clip"], tmp_path / "clip.tok", ctx["tokenizer"])
    assert files_in(tmp_path) == []


def test_export_failing_midway_leaves_no_folder(ctx: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tokgen.io.checkpoint as checkpoint

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    ckpt = _ckpt(ctx["configs"], tmp_path / "last.ckpt")
    with pytest.raises(OSError, match="No space left"):  # not a user's mistake: the traceback is kept
        main(["export", f"ckpt={ckpt}", f"out={tmp_path / 'export'}"])
    assert files_in(tmp_path) == ["last.ckpt"]  # no export folder, no staging folder


def test_a_story_failing_midway_leaves_none_of_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tokgen.io.story as story

    def failing_sheet(*args, **kwargs):
        raise RuntimeError("font not found")

    monkeypatch.setattr(story, "contact_sheet", failing_sheet)
    frames = moving_square(9)
    segment = StorySegment("a red circle moves up", 0, 9, seed=0, guidance=3.0, temperature=1.0)
    with pytest.raises(RuntimeError, match="font"):
        write_story(tmp_path / "story.mp4", frames, [segment])
    assert files_in(tmp_path) == []  # not a video without its sheet and sidecar
    monkeypatch.undo()
    paths = write_story(tmp_path / "story.mp4", frames, [segment])
    assert files_in(tmp_path) == ["story.json", "story.mp4", "story.png"]
    assert np.abs(read_video(paths["video"]).astype(int) - frames).mean() < 8


def test_a_generator_save_refused_for_one_part_writes_neither(generator_dir: Path, tmp_path: Path) -> None:
    # transformer/ exists already: the save is refused before tokenizer/ is written, not halfway.
    out = tmp_path / "generator"
    (out / "transformer").mkdir(parents=True)
    (out / "transformer" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="transformer"):
        Generator.from_pretrained(generator_dir).save_pretrained(out)
    assert not (out / "tokenizer").exists()
    assert (out / "transformer" / "keep.txt").read_text() == "mine"

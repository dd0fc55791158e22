"""compress / decompress with a tiny untrained tokenizer: exact codes, padding, never overwriting,
the wrong tokenizer refused, and the two CLI verbs."""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tokgen.cli import compose_config, main
from tokgen.codec import compress, decompress, encode_frames
from tokgen.io.tokfile import HEAD_BYTES, TokenizerMismatchError, fingerprint_of, read_token_file
from tokgen.io.video import read_video
from tokgen.io.video_write import write_video
from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.model import VideoTokenizer

TINY = OmegaConf.to_container(compose_config(["tokenizer=tiny"]).tokenizer)  # conf/tokenizer/tiny.yaml


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(seed: int = 0, **overrides: object) -> VideoTokenizer:
    torch.manual_seed(seed)
    return VideoTokenizer(TokenizerConfig.from_dict({**TINY, **overrides})).eval()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny().save_pretrained(tmp_path_factory.mktemp("tok") / "tokenizer")


def moving_square(frames: int = 9, height: int = 16, width: int = 16) -> np.ndarray:
    video = np.full((frames, height, width, 3), 40, dtype=np.uint8)
    for i in range(frames):
        video[i, 4:10, i % (width - 6) : i % (width - 6) + 6] = (220, 60, 30)
    return video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", moving_square(), fps=8)


def test_compress_decompress_gives_exactly_the_tokenizers_codes(
    tokenizer_dir: Path, clip: Path, tmp_path: Path
) -> None:
    model = VideoTokenizer.from_pretrained(tokenizer_dir)
    result = compress(clip, tmp_path / "clip.tok", tokenizer_dir)
    expected = encode_frames(model, read_video(clip), chunk_frames=None)  # one pass over the decoded clip
    stored = read_token_file(tmp_path / "clip.tok", fingerprint=fingerprint_of(model))
    assert np.array_equal(stored.codes, expected) and stored.codes.shape == (5, 4, 4)
    assert result.file_bytes == (tmp_path / "clip.tok").stat().st_size == stored.file_bytes
    assert stored.tokenizer_hint == str(tokenizer_dir.resolve()) and stored.fps == 8.0
    assert result.bits_per_pixel == pytest.approx(8 * result.file_bytes / (9 * 16 * 16))

    # GIF keeps frames of <= 256 colours exactly: the decoder's pixels, with no video codec in between.
    out = decompress(tmp_path / "clip.tok", tmp_path / "back.gif")  # finds the tokenizer from the file
    frames = read_video(out)
    assert frames.shape == (9, 16, 16, 3)
    with torch.inference_mode():
        pixels = model.decode(torch.as_tensor(expected)[None])
    reference = ((pixels[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 3, 0).numpy()
    assert np.abs(frames.astype(float) - reference).max() <= 1  # chunked decoding: float rounding only


def test_long_video_in_chunks_equals_one_pass(tokenizer_dir: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.mp4", moving_square(frames=41), fps=8)
    model = VideoTokenizer.from_pretrained(tokenizer_dir)
    compress(video, tmp_path / "long.tok", tokenizer_dir, chunk_frames=3)
    expected = encode_frames(model, read_video(video), chunk_frames=None)
    assert np.array_equal(read_token_file(tmp_path / "long.tok").codes, expected)
    decompress(tmp_path / "long.tok", tmp_path / "long_back.mp4", tokenizer_dir, chunk_frames=4)
    assert read_video(tmp_path / "long_back.mp4").shape == (41, 16, 16, 3)


def test_odd_sizes_are_padded_for_the_tokenizer_and_cut_back(tokenizer_dir: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "odd.mp4", moving_square(frames=6, height=18, width=22), fps=5)
    compress(video, tmp_path / "odd.tok", tokenizer_dir)
    stored = read_token_file(tmp_path / "odd.tok")
    assert stored.codes.shape == (4, 5, 6)  # 6 frames -> 7 (1 + 3 * 2), 18x22 -> 20x24
    assert (stored.original_frames, stored.original_height, stored.original_width) == (6, 18, 22)
    out = decompress(tmp_path / "odd.tok", tmp_path / "odd_back.mp4", tokenizer_dir)
    assert read_video(out).shape == (6, 18, 22, 3)


def test_outputs_are_never_overwritten(tokenizer_dir: Path, clip: Path, tmp_path: Path) -> None:
    target = tmp_path / "clip.tok"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        compress(clip, target, tokenizer_dir)
    assert target.read_bytes() == b"precious"
    compress(clip, target, tokenizer_dir, overwrite=True)
    video = tmp_path / "out.mp4"
    video.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        decompress(target, video, tokenizer_dir)
    assert video.read_bytes() == b"precious"
    decompress(target, video, tokenizer_dir, overwrite=True)
    with pytest.raises(ValueError, match="same file"):
        compress(clip, clip, tokenizer_dir, overwrite=True)


def test_the_wrong_tokenizer_is_refused(tokenizer_dir: Path, clip: Path, tmp_path: Path) -> None:
    compress(clip, tmp_path / "clip.tok", tokenizer_dir)
    other = tiny(seed=1).save_pretrained(tmp_path / "other")  # same config, other weights
    with pytest.raises(TokenizerMismatchError, match="written with tokenizer"):
        decompress(tmp_path / "clip.tok", tmp_path / "out.mp4", other)
    assert not (tmp_path / "out.mp4").exists()
    # A tokenizer and its export have one fingerprint; the file also decodes with the object itself.
    assert fingerprint_of(tiny()) == fingerprint_of(VideoTokenizer.from_pretrained(tokenizer_dir))
    decompress(tmp_path / "clip.tok", tmp_path / "out.mp4", tiny())


def test_cli_compress_and_decompress(
    tokenizer_dir: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tok, mp4 = tmp_path / "c.tok", tmp_path / "c.mp4"
    main(["compress", f"input={clip}", f"output={tok}", f"tokenizer={tokenizer_dir}", "chunk_frames=2"])
    assert "bits/pixel" in capsys.readouterr().out
    main(["decompress", f"input={tok}", f"output={mp4}"])
    assert read_video(mp4).shape == (9, 16, 16, 3)
    with pytest.raises(SystemExit, match="exists; pass overwrite=true"):
        main(["decompress", f"input={tok}", f"output={mp4}"])
    main(["decompress", f"input={tok}", f"output={mp4}", "overwrite=true", "quality=30"])
    (tmp_path / "bad.tok").write_bytes(tok.read_bytes()[:-3])
    with pytest.raises(SystemExit, match="cut off"):
        main(["decompress", f"input={tmp_path / 'bad.tok'}", f"output={tmp_path / 'bad.mp4'}"])
    with pytest.raises(SystemExit, match="missing required"):
        main(["compress", f"input={clip}"])


def test_rd_curve_tool_writes_csv_and_plot(tokenizer_dir: Path, clip: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("rd_curve", Path(__file__).parents[1] / "tools" / "rd_curve.py")
    tool = importlib.util.module_from_spec(spec)
    sys.modules["rd_curve"] = tool
    spec.loader.exec_module(tool)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.gif", moving_square(), fps=8)  # GIF: the reference frames exactly
    args = ["--videos", str(videos), "--tokenizer", f"tiny={tokenizer_dir}", "--out", str(tmp_path / "rd")]
    result = tool.main([*args, "--h264-crf", "30", "51", "--vp9-crf", "50", "--threads", "1"])
    rows = list(csv.DictReader((tmp_path / "rd.csv").open()))
    assert {(r["method"], r["setting"]) for r in rows} == {
        ("tokgen:tiny", "-"),
        ("h264", "30"),
        ("h264", "51"),
        ("vp9", "50"),
    }
    tok = next(r for r in rows if r["method"] == "tokgen:tiny")
    assert float(tok["bpp"]) > float(tok["bpp_stream"]) > 0 and 0 < float(tok["psnr"]) < 60
    clip_row = next(r for r in csv.DictReader((tmp_path / "rd_clips.csv").open()) if r["method"] == "tokgen:tiny")
    header = HEAD_BYTES + len(str(tokenizer_dir.resolve()).encode()) + 8  # the .tok file as compress writes it
    assert int(clip_row["bytes"]) - int(clip_row["stream_bytes"]) == header
    assert (tmp_path / "rd.png").stat().st_size > 10_000 and (tmp_path / "rd_clips.csv").exists()
    assert "tokgen:tiny" in result["comparison"]
    assert {"beats_h264_at_equal_bpp", "beats_vp9_at_equal_bpp_stream"} <= result["comparison"]["tokgen:tiny"].keys()

    # The verdict: interpolated inside the codec's rates; below them only a win over its cheapest file counts.
    curve = [{"method": "h264", "bpp": 0.2, "psnr": 30.0}, {"method": "h264", "bpp": 0.4, "psnr": 40.0}]
    assert tool.beats_at_equal_rate(curve, "h264", 0.3, 36.0) is True  # the curve gives ~35.8 dB at 0.3
    assert tool.beats_at_equal_rate(curve, "h264", 0.3, 35.0) is False
    assert tool.beats_at_equal_rate(curve, "h264", 0.02, 31.0) is True  # 10x fewer bits than its cheapest, better
    assert tool.beats_at_equal_rate(curve, "h264", 0.02, 29.0) is None  # below its reach and worse: unknown
    assert tool.beats_at_equal_rate(curve, "h264", 0.5, 45.0) is None

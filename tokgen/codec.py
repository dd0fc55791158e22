"""The tokenizer as a codec: a video file <-> a ``.tok`` file of its entropy-coded tokenizer codes.

Axis legend: T pixel frames, H W pixel height / width, t latent frames, h w latent grid.

``compress`` reads a video (frame by frame, as uint8), pads it to what the tokenizer takes (frames
repeated at the end to ``1 + k * temporal_patch``, edge pixels to whole patches), encodes it with
``VideoTokenizer.encode(..., chunk_frames=...)`` so that the model's memory stays bounded for long
videos, and writes a ``.tok`` file (see ``tokgen.io.tokfile``). ``decompress`` decodes the codes in
chunks, cuts the padding off again and writes the frames with ``tokgen.io.video_write.write_video``
as they are produced. Neither overwrites an existing output unless ``overwrite=True``.

The uint8 pixels of the whole clip and their float copy are held in memory (the tokenizer's public
API encodes one tensor); the model's activations are what chunking bounds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tokgen.io.atomic import atomic_output
from tokgen.io.convert import frames_to_tensor, tensor_to_frames
from tokgen.io.tokfile import (
    TokenFile,
    TokenizerMismatchError,
    decode_token_file,
    encode_token_file,
    fingerprint_of,
    read_token_file,
)
from tokgen.io.video import iter_frames, probe_video
from tokgen.io.video_write import write_video
from tokgen.tokenizer.model import VideoTokenizer

DEFAULT_CHUNK_FRAMES = 16  # latent frames per encode / decode pass (33 pixel frames at pt = 2)


@dataclass(frozen=True)
class CompressResult:
    """What `compress` wrote: the path, its size, and the size of what it holds."""

    path: Path
    file_bytes: int
    codes_shape: tuple[int, int, int]
    frames: int
    height: int
    width: int
    coder: str

    @property
    def bits_per_pixel(self) -> float:
        """File bits per pixel of the original video (frames x height x width)."""
        return 8 * self.file_bytes / (self.frames * self.height * self.width)


def load_tokenizer(tokenizer: str | os.PathLike | VideoTokenizer, device: str | torch.device = "cpu") -> VideoTokenizer:
    """An exported tokenizer folder (or a tokenizer, returned as it is) in eval mode."""
    if isinstance(tokenizer, VideoTokenizer):
        return tokenizer.eval()
    return VideoTokenizer.from_pretrained(tokenizer, map_location=device).eval()


def pad_for_tokenizer(frames: np.ndarray, tokenizer: VideoTokenizer) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> frames the tokenizer takes: the last frame repeated up to
    ``1 + k * temporal_patch`` frames, edge pixels repeated up to whole ``patch_size`` patches."""
    pt, p = tokenizer.config.temporal_patch, tokenizer.config.patch_size
    t, h, w = frames.shape[:3]
    extra_t = (-(t - 1)) % pt
    extra_h, extra_w = (-h) % p, (-w) % p
    if extra_t or extra_h or extra_w:
        frames = np.pad(frames, ((0, extra_t), (0, extra_h), (0, extra_w), (0, 0)), mode="edge")
    return frames


def encode_frames(
    tokenizer: VideoTokenizer, frames: np.ndarray, *, chunk_frames: int | None = DEFAULT_CHUNK_FRAMES
) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` frames -> ``(t, h, w)`` int64 codes (padded as `pad_for_tokenizer`)."""
    device = next(tokenizer.parameters()).device
    video = frames_to_tensor(pad_for_tokenizer(frames, tokenizer)).to(device)
    with torch.inference_mode():
        codes = tokenizer.encode(video, chunk_frames=chunk_frames)
    return codes[0].cpu().numpy().astype(np.int64)


def decode_codes(
    tokenizer: VideoTokenizer,
    codes: np.ndarray,
    *,
    frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    chunk_frames: int | None = DEFAULT_CHUNK_FRAMES,
) -> np.ndarray:
    """``(t, h, w)`` codes -> uint8 ``(T, H, W, 3)`` frames, cut to ``frames x height x width`` if given."""
    return np.stack(
        list(iter_decoded(tokenizer, codes, frames=frames, height=height, width=width, chunk_frames=chunk_frames))
    )


def iter_decoded(
    tokenizer: VideoTokenizer,
    codes: np.ndarray,
    *,
    frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    chunk_frames: int | None = DEFAULT_CHUNK_FRAMES,
) -> Iterator[np.ndarray]:
    """Decoded uint8 ``(H, W, 3)`` frames one at a time (the decode itself runs in latent chunks)."""
    device = next(tokenizer.parameters()).device
    codes_t = torch.as_tensor(np.asarray(codes), dtype=torch.long, device=device)[None]
    with torch.inference_mode():
        video = tokenizer.decode(codes_t, chunk_frames=chunk_frames)  # (1, 3, T, H, W)
    total = video.shape[2]
    keep = total if frames is None else min(frames, total)
    for index in range(keep):
        frame = tensor_to_frames(video[0, :, index : index + 1])[0]
        yield frame[:height, :width]


def compress(
    input: str | os.PathLike,
    output: str | os.PathLike,
    tokenizer: str | os.PathLike | VideoTokenizer,
    *,
    overwrite: bool = False,
    chunk_frames: int | None = DEFAULT_CHUNK_FRAMES,
    size: int | tuple[int, int] | None = None,
    fps: float | None = None,
    coder: str = "auto",
    device: str | torch.device = "cpu",
) -> CompressResult:
    """Video file -> ``.tok`` file of its tokenizer codes.

    Args:
        input: any video ``tokgen.io.video`` reads (file, image, frame folder).
        output: the ``.tok`` file to write; an existing one raises unless ``overwrite``.
        tokenizer: an exported tokenizer folder (its path is recorded as a hint for `decompress`),
            or a loaded ``VideoTokenizer``.
        chunk_frames: latent frames per encoder pass (None: the whole clip at once).
        size: resize while reading (short side, or ``(h, w)``), as in ``iter_frames``.
        fps: resample to this frame rate while reading; None keeps the source's frames and rate.
        coder: ``"auto"`` (smallest), ``"range"`` or ``"bitpack"``.

    Raises:
        FileExistsError: ``output`` exists and ``overwrite`` is False (before any work).
        FileNotFoundError, ValueError: unreadable input, unusable tokenizer.
    """
    input, output = Path(input), Path(output)
    _check_output(input, output, overwrite)
    model = load_tokenizer(tokenizer, device)
    rate = fps if fps is not None else probe_video(input).fps
    frames = np.stack(list(iter_frames(input, fps=fps, size=size)))  # uint8, decoded frame by frame
    codes = encode_frames(model, frames, chunk_frames=chunk_frames)
    hint = "" if isinstance(tokenizer, VideoTokenizer) else str(Path(tokenizer).resolve())
    record = TokenFile(
        codes=codes,
        codebook_size=model.config.codebook_size,
        fingerprint=fingerprint_of(model),
        fps=float(rate),
        original_frames=frames.shape[0],
        original_height=frames.shape[1],
        original_width=frames.shape[2],
        tokenizer_hint=hint,
    )
    data = encode_token_file(record, coder=coder)
    written = decode_token_file(data, name=str(output))
    if not np.array_equal(written.codes, codes):  # never write a file that does not give the codes back
        raise RuntimeError(f"{output}: the coded codes do not decode to themselves (a tokfile bug)")
    with atomic_output(output, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return CompressResult(output, len(data), tuple(codes.shape), *frames.shape[:3], coder=written.coder)


def decompress(
    input: str | os.PathLike,
    output: str | os.PathLike,
    tokenizer: str | os.PathLike | VideoTokenizer | None = None,
    *,
    overwrite: bool = False,
    chunk_frames: int | None = DEFAULT_CHUNK_FRAMES,
    quality: int | None = None,
    device: str | torch.device = "cpu",
) -> Path:
    """``.tok`` file -> video file (suffix picks the codec, as ``write_video``).

    Args:
        tokenizer: the tokenizer that wrote the file; None uses the folder recorded in the file.
        quality: the output's CRF (``write_video``'s default when None).

    Raises:
        FileExistsError: ``output`` exists and ``overwrite`` is False (before any work).
        TokenFileError: a corrupt, truncated or foreign file; ``TokenizerMismatchError`` when the
            tokenizer is not the one that wrote it.
    """
    input, output = Path(input), Path(output)
    _check_output(input, output, overwrite)
    header = read_token_file(input)
    if tokenizer is None:
        if not header.tokenizer_hint:
            raise ValueError(f"{input} does not record its tokenizer's folder; pass tokenizer=DIR")
        if not Path(header.tokenizer_hint).is_dir():
            raise TokenizerMismatchError(
                f"{input} was written with the tokenizer at '{header.tokenizer_hint}', which is not there "
                "any more; pass tokenizer=DIR"
            )
        tokenizer = header.tokenizer_hint
    model = load_tokenizer(tokenizer, device)
    fingerprint = fingerprint_of(model)
    if fingerprint != header.fingerprint:
        raise TokenizerMismatchError(
            f"{input}: written with tokenizer {header.fingerprint.hex()}"
            + (f" (at '{header.tokenizer_hint}')" if header.tokenizer_hint else "")
            + f", not the given one ({fingerprint.hex()})"
        )
    frames = iter_decoded(
        model,
        header.codes,
        frames=header.original_frames,
        height=header.original_height,
        width=header.original_width,
        chunk_frames=chunk_frames,
    )
    return write_video(output, frames, header.fps, overwrite=overwrite, quality=quality)


def _check_output(input: Path, output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise FileExistsError(f"'{output}' exists; pass overwrite=true to replace it")
    if input.exists() and output.exists() and input.resolve() == output.resolve():
        raise ValueError(f"input and output are the same file: '{input}'")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"cannot write '{output}': folder '{output.parent}' does not exist")

"""The ``.tok`` token file: a video's tokenizer codes, entropy-coded, in a versioned, checked container.

Axis legend: t latent frames, h w the latent grid, K codebook size, n = t * h * w codes.

Layout (version 1, little-endian; every field fixed-size except the hint and the payload)::

    offset size field
     0      8   magic  b"\\x89TOK\\r\\n\\x1a\\n"  (PNG-style: catches text-mode mangling)
     8      2   format version (1)
    10      1   coder: 0 bit-packed, 1 range-coded (constriction) with the adaptive model below
    11      1   coder parameter (range coder: index of the Dirichlet concentration, + 16 with context)
    12     16   tokenizer fingerprint: the first 16 bytes of SHA-256 over its config + weights
    28      4   codebook size K
    32    4+2+2 code shape t, h, w
    40      8   fps (float64)
    48    4+2+2 original frames, height, width (decode trims/crops the padding added for the tokenizer)
    56      2   length of the tokenizer hint, then the hint (UTF-8; the folder compress used; may be empty)
    ..      4   payload length in bytes, then the payload
    ..      4   CRC-32 of every byte before it

The range coder's model is adaptive, so nothing but one parameter byte describes it: codes are coded
row by row (``w`` codes of one latent frame), each row with a categorical distribution from the counts
of all codes before the row (a Dirichlet(alpha) prior), and, with context on, the code at the same
place one latent frame earlier (or one row up in frame 0) gets its own running hit rate. A static
background costs almost nothing after its first frame. The encoder tries every parameter and keeps the
smallest payload, and falls back to bit-packing (``ceil(log2 K)`` bits a code) when that is smaller
or ``constriction`` is not installed. Every probability stays <= 255/256, so each code costs at least
1/177 bit: a file cannot declare more codes than its payload can hold (checked before decoding).

Errors: every problem with a file is a :class:`TokenFileError` (a ``ValueError``); the subclasses
say which problem it is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tokgen.io.atomic import atomic_output
from tokgen.io.entropy import HAVE_CONSTRICTION, bitpack, bitunpack
from tokgen.io.entropy import bits_per_code as _bits
from tokgen.io.entropy import range_decode as _range_decode
from tokgen.io.entropy import range_encode as _range_encode
from tokgen.io.entropy import range_params as _range_params

MAGIC = b"\x89TOK\r\n\x1a\n"
FORMAT_VERSION = 1
SUFFIX = ".tok"
FINGERPRINT_BYTES = 16

CODER_BITPACK = 0
CODER_RANGE = 1
CODER_NAMES = {CODER_BITPACK: "bitpack", CODER_RANGE: "range"}

MAX_CODEBOOK = 1 << 24
MAX_HINT = 4096

_HEAD = struct.Struct("<8sHBB16sIIHHdIHHH")  # magic .. original size, then the hint length
_U32 = struct.Struct("<I")
HEAD_BYTES = _HEAD.size  # 58
_CRC_BYTES = 4


# --- errors -----------------------------------------------------------------------------------------


class TokenFileError(ValueError):
    """A ``.tok`` file could not be read; the subclass says why, the message names the file."""


class NotATokenFileError(TokenFileError):
    """The bytes do not start with the ``.tok`` magic: some other kind of file."""


class UnsupportedVersionError(TokenFileError):
    """A ``.tok`` file of a format version this tokgen does not read."""


class TruncatedTokenFileError(TokenFileError):
    """The file ends before the sizes in its header say it does (a cut-off copy or download)."""


class CorruptTokenFileError(TokenFileError):
    """The checksum does not match, or a field holds an impossible value."""


class TokenizerMismatchError(TokenFileError):
    """The file was written with another tokenizer than the one given to decode it."""


# --- the record ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenFile:
    """One ``.tok`` file's contents.

    Attributes:
        codes: ``(t, h, w)`` int64 codes in ``[0, codebook_size)``.
        codebook_size: K, the tokenizer's codebook size.
        fingerprint: 16 bytes identifying the tokenizer (see :func:`tokenizer_fingerprint`).
        fps: frame rate of the video.
        original_frames, original_height, original_width: the video's size before padding for the
            tokenizer (decoded videos are cut back to it).
        tokenizer_hint: where the tokenizer was when the file was written ('' if not recorded).
        coder: ``"range"`` or ``"bitpack"``, how the payload is coded.
        coder_param: the range coder's model parameter (0 for bit-packing).
        header_bytes: bytes of the file that are not payload (header, hint, CRC).
        payload_bits: the coder's bit count (the payload is exactly ``ceil(payload_bits / 8)`` bytes).
    """

    codes: np.ndarray
    codebook_size: int
    fingerprint: bytes
    fps: float
    original_frames: int
    original_height: int
    original_width: int
    tokenizer_hint: str = ""
    coder: str = "range"
    coder_param: int = 0
    header_bytes: int = 0
    payload_bits: int = 0

    @property
    def file_bytes(self) -> int:
        return self.header_bytes + math.ceil(self.payload_bits / 8)


# --- fingerprint --------------------------------------------------------------------------------


def tokenizer_fingerprint(config: Mapping, state_dict: Mapping[str, torch.Tensor]) -> bytes:
    """First 16 bytes of SHA-256 over the config (canonical JSON) and every tensor's name, dtype,
    shape and bytes, in name order: the same for a tokenizer and its export, different after any
    change to the weights or the architecture."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dict(config), sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()[:FINGERPRINT_BYTES]


def fingerprint_of(tokenizer: torch.nn.Module) -> bytes:
    """:func:`tokenizer_fingerprint` of a ``VideoTokenizer`` (its ``config`` and ``state_dict``)."""
    return tokenizer_fingerprint(tokenizer.config.to_dict(), tokenizer.state_dict())


# --- writing ------------------------------------------------------------------------------------


def encode_token_file(record: TokenFile, *, coder: str = "auto") -> bytes:
    """The bytes of a ``.tok`` file holding ``record`` (its coder fields are ignored and chosen here).

    Args:
        coder: ``"auto"`` (the smaller of the range coder's best model and bit-packing), ``"range"``
            or ``"bitpack"``.
    """
    codes = np.asarray(record.codes)
    k = int(record.codebook_size)
    _check_record(record, codes, k)
    coded = code_payload(codes, k, coder=coder)
    coder_id, param, payload = coded.coder_id, coded.param, coded.data
    hint = record.tokenizer_hint.encode("utf-8")
    if len(hint) > MAX_HINT:
        hint = b""  # a hint is a convenience; an absurd path is simply not recorded
    t, h, w = codes.shape
    head = _HEAD.pack(
        MAGIC,
        FORMAT_VERSION,
        coder_id,
        param,
        bytes(record.fingerprint),
        k,
        t,
        h,
        w,
        float(record.fps),
        record.original_frames,
        record.original_height,
        record.original_width,
        len(hint),
    )
    body = head + hint + _U32.pack(len(payload)) + payload
    return body + _U32.pack(zlib.crc32(body))


@dataclass(frozen=True)
class Payload:
    """Coded codes: which coder, its parameter, the bytes and the coder's own bit count."""

    coder_id: int
    param: int
    data: bytes
    bits: int


def code_payload(codes: np.ndarray, k: int, *, coder: str = "auto") -> Payload:
    """Entropy-code ``(t, h, w)`` codes: the smallest of the range coder's models and bit-packing
    (``coder="auto"``), or just one coder (``"range"``, ``"bitpack"``)."""
    if coder not in ("auto", "range", "bitpack"):
        raise ValueError(f"coder must be 'auto', 'range' or 'bitpack', got {coder!r}")
    if coder == "range" and not HAVE_CONSTRICTION:
        raise ValueError("coder='range' needs the constriction package (pip install constriction)")
    codes = np.asarray(codes).astype(np.int64)
    candidates = []
    if coder in ("auto", "range") and HAVE_CONSTRICTION:
        candidates += [Payload(CODER_RANGE, p, *_range_encode(codes, k, p)) for p in _range_params()]
    if coder in ("auto", "bitpack"):
        candidates.append(Payload(CODER_BITPACK, 0, *bitpack(codes, k)))
    return min(candidates, key=lambda c: (len(c.data), c.coder_id))


def write_token_file(
    path: str | os.PathLike, record: TokenFile, *, overwrite: bool = False, coder: str = "auto"
) -> Path:
    """Write ``record`` to ``path`` atomically (see :func:`encode_token_file`); never overwrites unless asked."""
    data = encode_token_file(record, coder=coder)
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return path


def _check_record(record: TokenFile, codes: np.ndarray, k: int) -> None:
    if codes.ndim != 3 or 0 in codes.shape or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be non-empty integers (t, h, w), got {codes.dtype} of shape {codes.shape}")
    if not 2 <= k <= MAX_CODEBOOK:
        raise ValueError(f"codebook_size must be in [2, {MAX_CODEBOOK}], got {k}")
    if codes.min() < 0 or codes.max() >= k:
        raise ValueError(f"codes hold values outside the codebook [0, {k})")
    t, h, w = codes.shape
    if t >= 2**32 or h >= 2**16 or w >= 2**16:
        raise ValueError(f"code shape {codes.shape} does not fit the format (t < 2^32, h and w < 2^16)")
    if len(record.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes, got {len(record.fingerprint)}")
    if not (math.isfinite(record.fps) and record.fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {record.fps}")
    sizes = (record.original_frames, record.original_height, record.original_width)
    if not (0 < sizes[0] < 2**32 and 0 < sizes[1] < 2**16 and 0 < sizes[2] < 2**16):
        raise ValueError(f"original size (frames, height, width) {sizes} does not fit the format")


# --- reading ------------------------------------------------------------------------------------


def read_token_file(path: str | os.PathLike, *, fingerprint: bytes | None = None) -> TokenFile:
    """Read and decode a ``.tok`` file.

    Args:
        fingerprint: the tokenizer's (:func:`fingerprint_of`); when given, a file written with another
            tokenizer raises :class:`TokenizerMismatchError`.

    Raises:
        FileNotFoundError: no such file.
        TokenFileError: one of its subclasses, for anything wrong with the bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such token file: '{path}'")
    return decode_token_file(path.read_bytes(), fingerprint=fingerprint, name=str(path))


def decode_token_file(data: bytes, *, fingerprint: bytes | None = None, name: str = "<bytes>") -> TokenFile:
    """Parse and decode the bytes of a ``.tok`` file; any problem raises a :class:`TokenFileError`."""
    record, coder_id, payload = _parse(bytes(data), name)
    if fingerprint is not None and bytes(fingerprint) != record.fingerprint:
        hint = f" (written with the tokenizer at '{record.tokenizer_hint}')" if record.tokenizer_hint else ""
        raise TokenizerMismatchError(
            f"{name}: written with tokenizer {record.fingerprint.hex()}{hint}, "
            f"not with the one given ({bytes(fingerprint).hex()}); decode it with the tokenizer that wrote it"
        )
    t, h, w = record.codes.shape
    k = record.codebook_size
    try:
        if coder_id == CODER_BITPACK:
            codes = bitunpack(payload, t * h * w, k)
        else:
            if not HAVE_CONSTRICTION:
                raise TokenFileError(f"{name}: range-coded; reading it needs the constriction package")
            codes = _range_decode(payload, (t, h, w), k, record.coder_param)
    except TokenFileError:
        raise
    except Exception as error:  # the coder's own complaint about impossible data
        raise CorruptTokenFileError(f"{name}: the payload does not decode ({error})") from None
    codes = codes.reshape(t, h, w)
    if codes.size and (codes.min() < 0 or codes.max() >= k):
        raise CorruptTokenFileError(f"{name}: the payload decodes to codes outside the codebook [0, {k})")
    bits = t * h * w * _bits(k) if coder_id == CODER_BITPACK else record.payload_bits
    return replace(record, codes=codes, payload_bits=bits)


def _parse(data: bytes, name: str) -> tuple[TokenFile, int, bytes]:
    """Check the container (magic, version, sizes, checksum, fields); the payload stays coded."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(data):
            raise TruncatedTokenFileError(f"{name}: {len(data)} bytes, cut off inside the magic number")
        raise NotATokenFileError(f"{name}: not a tokgen token file (.tok): the magic number is missing")
    if len(data) < len(MAGIC) + 2:
        raise TruncatedTokenFileError(f"{name}: cut off before the format version")
    (version,) = struct.unpack_from("<H", data, len(MAGIC))
    if version != FORMAT_VERSION:
        newer = "a newer tokgen" if version > FORMAT_VERSION else "an older tokgen"
        raise UnsupportedVersionError(
            f"{name}: token file format version {version}, written by {newer}; this tokgen reads version "
            f"{FORMAT_VERSION} only"
        )
    if len(data) < HEAD_BYTES:
        raise TruncatedTokenFileError(f"{name}: {len(data)} bytes, shorter than the {HEAD_BYTES}-byte header")
    (_, _, coder_id, param, fprint, k, t, h, w, fps, frames, height, width, hint_len) = _HEAD.unpack_from(data)
    at = HEAD_BYTES + hint_len
    if len(data) < at + 4:
        raise TruncatedTokenFileError(f"{name}: cut off inside the tokenizer hint / payload length")
    (payload_len,) = _U32.unpack_from(data, at)
    end = at + 4 + payload_len
    if len(data) < end + _CRC_BYTES:
        raise TruncatedTokenFileError(
            f"{name}: {len(data)} bytes, but its header says {end + _CRC_BYTES}: the file is cut off"
        )
    if len(data) > end + _CRC_BYTES:
        raise CorruptTokenFileError(f"{name}: {len(data) - end - _CRC_BYTES} unexpected bytes after the checksum")
    (crc,) = _U32.unpack_from(data, end)
    if zlib.crc32(data[:end]) != crc:
        raise CorruptTokenFileError(f"{name}: checksum mismatch: the file is corrupt")
    # The checksum holds: what follows only fails for files made wrongly on purpose or by a bug.
    n = t * h * w
    problems = []
    if coder_id not in CODER_NAMES:
        problems.append(f"unknown coder {coder_id}")
    elif coder_id == CODER_RANGE and param not in _range_params():
        problems.append(f"unknown range-coder parameter {param}")
    elif coder_id == CODER_BITPACK and param != 0:
        problems.append(f"bit-packing takes no parameter, got {param}")
    if not 2 <= k <= MAX_CODEBOOK:
        problems.append(f"codebook size {k} outside [2, {MAX_CODEBOOK}]")
    if n == 0:
        problems.append(f"empty code shape ({t}, {h}, {w})")
    if not (math.isfinite(fps) and fps > 0):
        problems.append(f"fps {fps}")
    if min(frames, height, width) == 0:
        problems.append(f"original size ({frames}, {height}, {width})")
    if hint_len > MAX_HINT:
        problems.append(f"tokenizer hint of {hint_len} bytes")
    try:
        hint = data[HEAD_BYTES:at].decode("utf-8")
    except UnicodeDecodeError:
        problems.append("tokenizer hint is not UTF-8")
        hint = ""
    if not problems and coder_id == CODER_BITPACK and payload_len != math.ceil(n * _bits(k) / 8):
        problems.append(f"{payload_len} payload bytes for {n} bit-packed codes")
    if not problems and coder_id == CODER_RANGE and (payload_len % 4 or n > 256 * (8 * payload_len + 64)):
        problems.append(f"{n} codes cannot fit {payload_len} range-coded bytes")
    if problems:
        raise CorruptTokenFileError(f"{name}: impossible header ({'; '.join(problems)})")
    record = TokenFile(
        codes=np.empty((t, h, w), dtype=np.int64),
        codebook_size=k,
        fingerprint=fprint,
        fps=fps,
        original_frames=frames,
        original_height=height,
        original_width=width,
        tokenizer_hint=hint,
        coder=CODER_NAMES[coder_id],
        coder_param=param,
        header_bytes=len(data) - payload_len,
        payload_bits=8 * payload_len,
    )
    return record, coder_id, data[at + 4 : end]

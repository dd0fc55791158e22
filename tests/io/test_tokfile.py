"""The .tok container: round trips, sizes against the coder's bit count, each error, and a fuzzed parser."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokgen.io import tokfile
from tokgen.io.tokfile import (
    FORMAT_VERSION,
    HEAD_BYTES,
    MAGIC,
    CorruptTokenFileError,
    NotATokenFileError,
    TokenFile,
    TokenFileError,
    TokenizerMismatchError,
    TruncatedTokenFileError,
    UnsupportedVersionError,
    code_payload,
    decode_token_file,
    encode_token_file,
    read_token_file,
    tokenizer_fingerprint,
    write_token_file,
)

FINGERPRINT = bytes(range(16))


def record(codes: np.ndarray, k: int, hint: str = "/some/tokenizer") -> TokenFile:
    return TokenFile(
        codes=codes,
        codebook_size=k,
        fingerprint=FINGERPRINT,
        fps=8.0,
        original_frames=1 + 2 * (codes.shape[0] - 1),
        original_height=4 * codes.shape[1],
        original_width=4 * codes.shape[2],
        tokenizer_hint=hint,
    )


def video_like_codes(k: int = 1024, shape: tuple[int, int, int] = (9, 8, 8), seed: int = 0) -> np.ndarray:
    """Codes as a tokenizer gives a mostly static scene: a background code, a moving object, noise."""
    rng = np.random.default_rng(seed)
    t, h, w = shape
    codes = np.full(shape, 7 % k, dtype=np.int64)
    codes[0] = rng.integers(0, k, size=(h, w)) % 3
    for i in range(1, t):
        y, x = i % h, (2 * i) % w
        codes[i, y, x] = rng.integers(0, k)
    codes[rng.random(shape) < 0.05] = rng.integers(0, k)
    return codes


def fixed_crc(data: bytes | bytearray) -> bytes:
    """Recompute the trailing checksum, so a test reaches the checks behind it."""
    body = bytes(data[:-4])
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.fixture(scope="module")
def valid() -> bytes:
    return encode_token_file(record(video_like_codes(), 1024))


# --- round trips and sizes --------------------------------------------------------------------------


@pytest.mark.parametrize("coder", ["auto", "range", "bitpack"])
@pytest.mark.parametrize(
    ("k", "shape"), [(2, (1, 1, 1)), (3, (2, 1, 5)), (64, (5, 4, 4)), (1000, (3, 2, 7)), (8192, (9, 8, 8))]
)
def test_round_trip_gives_exactly_the_codes(coder: str, k: int, shape: tuple[int, int, int]) -> None:
    for codes in (np.random.default_rng(1).integers(0, k, size=shape), video_like_codes(k, shape)):
        data = encode_token_file(record(codes, k), coder=coder)
        back = decode_token_file(data)
        assert np.array_equal(back.codes, codes) and back.codes.dtype == np.int64
        assert (back.codebook_size, back.fps, back.fingerprint) == (k, 8.0, FINGERPRINT)
        assert (back.original_frames, back.original_height, back.original_width) == (
            1 + 2 * (shape[0] - 1),
            4 * shape[1],
            4 * shape[2],
        )
        assert back.tokenizer_hint == "/some/tokenizer"
        if coder != "auto":
            assert back.coder == coder


@pytest.mark.parametrize("coder", ["range", "bitpack"])
def test_file_size_is_the_coders_bits_plus_the_header(coder: str) -> None:
    codes, hint = video_like_codes(), "/a/tokenizer/folder"
    payload = code_payload(codes, 1024, coder=coder)
    data = encode_token_file(record(codes, 1024, hint), coder=coder)
    header = HEAD_BYTES + len(hint.encode()) + 4 + 4  # fixed fields, hint, payload length, CRC
    assert len(data) == header + (payload.bits + 7) // 8
    back = decode_token_file(data)
    assert back.header_bytes == header and back.payload_bits == payload.bits and back.file_bytes == len(data)
    if coder == "bitpack":
        assert payload.bits == codes.size * 10  # ceil(log2 1024) bits a code


def test_auto_picks_the_smaller_payload_and_the_model_pays_off() -> None:
    structured = video_like_codes()
    auto = decode_token_file(encode_token_file(record(structured, 1024)))
    assert auto.coder == "range"
    assert auto.payload_bits < 0.5 * code_payload(structured, 1024, coder="bitpack").bits
    noise = np.random.default_rng(3).integers(0, 1024, size=(9, 8, 8))  # incompressible: packing wins
    assert decode_token_file(encode_token_file(record(noise, 1024))).coder == "bitpack"


def test_without_constriction_falls_back_to_bit_packing(monkeypatch: pytest.MonkeyPatch) -> None:
    codes = video_like_codes()
    range_coded = encode_token_file(record(codes, 1024))
    monkeypatch.setattr(tokfile, "HAVE_CONSTRICTION", False)
    data = encode_token_file(record(codes, 1024))
    assert decode_token_file(data).coder == "bitpack" and np.array_equal(decode_token_file(data).codes, codes)
    with pytest.raises(ValueError, match="constriction"):
        encode_token_file(record(codes, 1024), coder="range")
    with pytest.raises(TokenFileError, match="constriction"):
        decode_token_file(range_coded)


def test_write_is_atomic_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "clip.tok"
    write_token_file(path, record(video_like_codes(), 1024))
    with pytest.raises(FileExistsError, match="overwrite"):
        write_token_file(path, record(video_like_codes(), 1024))
    write_token_file(path, record(video_like_codes(seed=5), 1024), overwrite=True)
    assert np.array_equal(read_token_file(path).codes, video_like_codes(seed=5))
    assert [p.name for p in tmp_path.iterdir()] == ["clip.tok"]
    with pytest.raises(FileNotFoundError):
        read_token_file(tmp_path / "missing.tok")


def test_bad_records_are_refused() -> None:
    codes = video_like_codes(k=64)
    with pytest.raises(ValueError, match="outside the codebook"):
        encode_token_file(record(codes, 8))
    with pytest.raises(ValueError, match="t, h, w"):
        encode_token_file(replace(record(codes, 64), codes=codes[0]))
    with pytest.raises(ValueError, match="fingerprint"):
        encode_token_file(replace(record(codes, 64), fingerprint=b"short"))
    with pytest.raises(ValueError, match="coder"):
        encode_token_file(record(codes, 64), coder="zip")


def test_fingerprint_follows_config_and_weights() -> None:
    state = {"a.weight": torch.ones(2, 3), "b.bias": torch.zeros(4, dtype=torch.bfloat16)}
    base = tokenizer_fingerprint({"dim": 8}, state)
    assert len(base) == 16 and base == tokenizer_fingerprint({"dim": 8}, dict(reversed(state.items())))
    assert base != tokenizer_fingerprint({"dim": 9}, state)
    assert base != tokenizer_fingerprint({"dim": 8}, {**state, "a.weight": torch.ones(2, 3) * 1.0001})
    assert base != tokenizer_fingerprint({"dim": 8}, {**state, "a.weight": torch.ones(3, 2)})


# --- each error its own class -----------------------------------------------------------------------


def test_other_files_are_not_token_files(valid: bytes) -> None:
    for data in (b"\x00" * 100, b"RIFF....WEBPVP8 ", b"\x89PNG\r\n\x1a\n" + valid[8:]):
        with pytest.raises(NotATokenFileError, match="not a tokgen token file"):
            decode_token_file(data)


def test_every_truncation_is_reported_as_such(valid: bytes) -> None:
    for length in range(len(valid)):
        with pytest.raises(TruncatedTokenFileError):
            decode_token_file(valid[:length])


def test_corrupted_bytes_fail_the_checksum(valid: bytes) -> None:
    payload_start = len(valid) - 4 - (decode_token_file(valid).payload_bits + 7) // 8
    hint_end = HEAD_BYTES + len("/some/tokenizer")
    # Every byte but the magic, the version and the two lengths (those say where things are).
    for index in [*range(12, HEAD_BYTES - 2), *range(HEAD_BYTES, hint_end), *range(payload_start, len(valid))]:
        data = bytearray(valid)
        data[index] ^= 0x20
        with pytest.raises(CorruptTokenFileError, match="checksum"):
            decode_token_file(bytes(data))
    with pytest.raises(CorruptTokenFileError, match="after the checksum"):
        decode_token_file(valid + b"\x00")


def test_any_single_flipped_byte_is_a_token_file_error(valid: bytes) -> None:
    for index in range(len(valid)):
        data = bytearray(valid)
        data[index] ^= 0xFF
        with pytest.raises(TokenFileError):
            decode_token_file(bytes(data))


@pytest.mark.parametrize("version", [0, FORMAT_VERSION + 1, 65535])
def test_other_versions_say_so(valid: bytes, version: int) -> None:
    data = bytearray(valid)
    struct.pack_into("<H", data, len(MAGIC), version)
    with pytest.raises(UnsupportedVersionError, match=f"version {version}"):
        decode_token_file(fixed_crc(data))
    with pytest.raises(UnsupportedVersionError):  # even when the rest is cut off
        decode_token_file(bytes(data[:12]))


def test_wrong_tokenizer_is_refused(valid: bytes, tmp_path: Path) -> None:
    assert decode_token_file(valid, fingerprint=FINGERPRINT).codebook_size == 1024
    with pytest.raises(TokenizerMismatchError, match="/some/tokenizer"):
        decode_token_file(valid, fingerprint=bytes(16))
    (tmp_path / "clip.tok").write_bytes(valid)
    with pytest.raises(TokenizerMismatchError):
        read_token_file(tmp_path / "clip.tok", fingerprint=bytes(16))


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "match"),
    [
        (10, "<B", 9, "unknown coder"),
        (11, "<B", 200, "parameter"),
        (28, "<I", 1, "codebook size"),
        (32, "<I", 0, "empty code shape"),
        (32, "<I", 2**31, "cannot fit"),  # more codes than the payload could hold
        (40, "<d", float("nan"), "fps"),
        (48, "<I", 0, "original size"),
    ],
)
def test_impossible_fields_behind_a_valid_checksum(valid: bytes, offset: int, fmt: str, value, match: str) -> None:
    data = bytearray(valid)
    struct.pack_into(fmt, data, offset, value)
    with pytest.raises(CorruptTokenFileError, match=match):
        decode_token_file(fixed_crc(data))


# --- the parser under fuzzing -----------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _decode_or_format_error(data: bytes) -> TokenFile | None:
    try:
        out = decode_token_file(data)
    except TokenFileError:
        return None
    assert out.codes.min() >= 0 and out.codes.max() < out.codebook_size
    return out


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_the_format_error(data: bytes) -> None:
    _decode_or_format_error(data)
    _decode_or_format_error(MAGIC + struct.pack("<H", FORMAT_VERSION) + data)


@FUZZ
@given(st.data())
def test_mutated_files_only_raise_the_format_error(valid: bytes, data: st.DataObject) -> None:
    mutated = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(mutated) - 1))
        mutated[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    mutated = mutated[:cut] + data.draw(st.binary(max_size=8))
    out = _decode_or_format_error(bytes(mutated))
    assert out is None or bytes(mutated) == valid
    # The same bytes with a correct checksum reach every check behind it, and the decoder.
    if len(mutated) > HEAD_BYTES + 8:
        _decode_or_format_error(fixed_crc(mutated))


@FUZZ
@given(st.binary(min_size=4, max_size=64).map(lambda b: b[: len(b) // 4 * 4]), st.sampled_from(tokfile._range_params()))
def test_any_range_payload_decodes_to_codes_or_a_format_error(payload: bytes, param: int) -> None:
    codes = video_like_codes(k=64, shape=(3, 4, 4))
    data = bytearray(encode_token_file(record(codes, 64, hint=""), coder="range"))
    data[11] = param
    head = bytes(data[: HEAD_BYTES + 0])
    forged = head + struct.pack("<I", len(payload)) + payload + b"\0\0\0\0"
    out = _decode_or_format_error(fixed_crc(forged))
    assert out is None or out.codes.shape == (3, 4, 4)

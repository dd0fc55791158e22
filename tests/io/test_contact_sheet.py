"""tokgen.io.contact_sheet: layout arithmetic, frame picking, labels, PNG saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tokgen.io.contact_sheet import contact_sheet, save_png


def clips(n: int, t: int, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, t, size, size, 3), dtype=np.uint8)


def test_layout_and_nearest_neighbour_upscale() -> None:
    batch = clips(2, 5)
    sheet = contact_sheet(batch, scale=2, pad=2)
    # height: pad + 2 rows of (16 + pad); width: pad + 5 frames of 16 + 4 gaps + pad
    assert sheet.shape == (2 + 2 * 18, 2 + 5 * 16 + 4 * 2 + 2, 3) and sheet.dtype == np.uint8
    first = batch[1, 3].repeat(2, axis=0).repeat(2, axis=1)
    top, left = 2 + 18, 2 + 3 * 18
    assert (sheet[top : top + 16, left : left + 16] == first).all()


def test_single_clip_and_sequence_of_mixed_clips() -> None:
    assert contact_sheet(clips(1, 3)[0], pad=0).shape == (8, 24, 3)
    mixed = [clips(1, 2)[0], clips(1, 4, size=4)[0], clips(1, 1, size=6)[0][0]]  # last: one image
    sheet = contact_sheet(mixed, pad=1)
    assert sheet.shape == (1 + 9 + 5 + 7, 1 + 4 * 4 + 3 + 1, 3)  # width of the widest row


def test_long_clip_shows_evenly_spaced_frames_with_first_and_last() -> None:
    clip = clips(1, 30)[0]
    sheet = contact_sheet(clip, max_columns=5, pad=0)
    assert sheet.shape == (8, 5 * 8, 3)
    assert (sheet[:, :8] == clip[0]).all() and (sheet[:, -8:] == clip[29]).all()


def test_labels_are_drawn_under_rows_and_long_ones_are_cut() -> None:
    batch = clips(2, 4, size=16)
    plain = contact_sheet(batch)
    short = contact_sheet(batch, labels=["a red circle", "moves right"])
    long = contact_sheet(batch, labels=["word " * 200, ""])
    assert short.shape[1] == plain.shape[1] and short.shape[0] > plain.shape[0]
    label_band = short[2 + 16 + 2 : 2 + 16 + 12]  # just under the first row
    assert (label_band > 100).any()  # light text on the dark background
    line = (short.shape[0] - plain.shape[0]) // 2 - 2  # each row gained one line and a 2-pixel pad
    assert long.shape[0] - plain.shape[0] == (3 + 1) * line + 2 * 2  # wrapped, cut at three lines


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="2 clips but 1 labels"):
        contact_sheet(clips(2, 3), labels=["x"])
    with pytest.raises(TypeError, match="uint8"):
        contact_sheet(clips(1, 3).astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        contact_sheet(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="no clips"):
        contact_sheet([])


def test_save_png_round_trip_and_no_overwrite(tmp_path: Path) -> None:
    sheet = contact_sheet(clips(2, 3), labels=["a", "b"])
    path = save_png(tmp_path / "sheet.png", sheet)
    assert (np.asarray(Image.open(path)) == sheet).all()
    with pytest.raises(FileExistsError, match="sheet.png"):
        save_png(path, np.zeros_like(sheet))
    save_png(path, np.zeros_like(sheet), overwrite=True)
    assert not np.asarray(Image.open(path)).any()
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        save_png(tmp_path / "gray.png", sheet[..., 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]


def test_atomic_output_gets_the_mode_of_a_new_file(tmp_path: Path) -> None:
    # The temporary file comes from mkstemp (mode 0600); the finished output must not keep that mode.
    import os

    from tokgen.io.atomic import atomic_output

    umask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o644

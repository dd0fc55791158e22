"""Token shards carry a clip's ``context_frames`` (latent frames given in training) when its items do,
or derive them from a Shapes clip's ``change_at``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from tokgen.data.shapes import ShapesDataset
from tokgen.data.token_shards import TokenShardDataset, write_token_shards


class _Clips(Dataset):
    """Six one-frame 2x2 clips; with ``context`` each item also says how many latent frames are given."""

    def __init__(self, context: bool) -> None:
        self.context = context

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> dict:
        item = {"video": torch.full((3, 1, 2, 2), i / 10), "caption": f"clip {i}"}
        return item | ({"context_frames": i % 3} if self.context else {})


def _write(dataset: Dataset, out: Path) -> Path:
    return write_token_shards(
        dataset,
        out,
        encode_video=lambda v: (v[:, 0, :1] * 10).round().long(),  # (b, 1, 2, 2): the clip's index as codes
        encode_text=lambda p: (torch.zeros(len(p), 2, 4), torch.ones(len(p), 2, dtype=torch.bool)),
        codebook_size=8,
        shard_size=4,
        batch_size=3,
    )


def test_context_frames_round_trip_and_stay_absent_for_clips_without_them(tmp_path: Path) -> None:
    shards = TokenShardDataset(_write(_Clips(context=True), tmp_path / "with"))
    assert [shards[i]["context_frames"] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert [int(shards[i]["codes"].max()) for i in range(6)] == list(range(6))  # each item its own clip's
    plain = TokenShardDataset(_write(_Clips(context=False), tmp_path / "without"))
    assert "context_frames" not in plain[5] and not plain.index["context_frames"]


def test_a_shard_written_before_its_clips_carried_context_reads_as_none_given(tmp_path: Path) -> None:
    out = _write(_Clips(context=False), tmp_path / "shards")
    (out / "shard_00001.safetensors").unlink()  # resumed by a version whose clips carry context_frames
    _write(_Clips(context=True), out)
    shards = TokenShardDataset(out)
    assert json.loads((out / "index.json").read_text())["context_frames"] is True
    assert [shards[i]["context_frames"] for i in range(6)] == [0, 0, 0, 0, 1, 2]  # shard 0 predates the field


def test_shapes_clips_whose_motion_changes_carry_the_latent_frames_before_the_change(tmp_path: Path) -> None:
    # 9 frames, temporal patch 2: latent frames cover pixel frames 0 | 1-2 | 3-4 | 5-6 | 7-8. The motion
    # changes at frame 4, so latent frames 0-2 show only the first motion and 3-4 the captioned one.
    clips = ShapesDataset(length=3, resolution=16, num_frames=9, change_at=4, speed_range=(1.5, 1.5))

    def write(out: Path, temporal_patch: int | None) -> Path:
        return write_token_shards(
            clips,
            out,
            encode_video=lambda v: torch.zeros(v.shape[0], 5, 2, 2, dtype=torch.long),
            encode_text=lambda p: (torch.zeros(len(p), 2, 4), torch.ones(len(p), 2, dtype=torch.bool)),
            codebook_size=8,
            temporal_patch=temporal_patch,
        )

    shards = TokenShardDataset(write(tmp_path / "shards", temporal_patch=2))
    assert [shards[i]["context_frames"] for i in range(3)] == [3, 3, 3]
    assert shards[0]["caption"] == clips[0]["caption"]  # the motion after the change
    with pytest.raises(ValueError, match="change_at.*temporal_patch"):
        write(tmp_path / "unknown_patch", temporal_patch=None)

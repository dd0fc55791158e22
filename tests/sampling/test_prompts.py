"""Prompt lists: text, YAML and JSON; bad files fail with the file and the line in the message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokgen.data.prompts import PromptDataset
from tokgen.sampling.prompts import PromptSpec, read_prompt_lines, read_prompt_list


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_text_file_skips_blanks_and_comments_and_records_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path, "story.txt", "# a story\n\na red circle moves right\n  \n  the red circle moves up  \n#end\n"
    )
    specs = read_prompt_list(path)
    assert [s.prompt for s in specs] == ["a red circle moves right", "the red circle moves up"]
    assert [s.source for s in specs] == [f"{path}:3", f"{path}:5"]
    assert all(s.frames is None and s.seed is None for s in specs)
    assert read_prompt_lines(path) == [s.prompt for s in specs]
    assert PromptDataset(path).prompts == [s.prompt for s in specs]  # the predict dataset reads the same way


def test_yaml_items_carry_their_own_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "story.yaml",
        "# three prompts\n"
        "prompts:\n"
        "  - a red circle moves right\n"
        "  - prompt: the red circle moves up\n"
        "    frames: 8\n"
        "    guidance: 4.5\n"
        "  - {prompt: the red circle moves left, seconds: 1.5, temperature: 0.5, seed: 7}\n",
    )
    first, second, third = read_prompt_list(path)
    assert first == PromptSpec("a red circle moves right", source=f"{path}:3")
    assert (second.prompt, second.frames, second.guidance, second.source) == (
        "the red circle moves up",
        8,
        4.5,
        f"{path}:4",
    )
    assert (third.seconds, third.temperature, third.seed, third.source) == (1.5, 0.5, 7, f"{path}:7")
    # seconds -> frames at the story's fps, rounded to whole tubelets.
    assert third.num_frames(16, fps=8, multiple=2) == 12 and first.num_frames(16, fps=8, multiple=2) == 16


def test_json_list_records_the_line_of_every_item(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "story.json",
        '[\n  "a blue square moves down",\n  {"prompt": "the blue square moves left",\n   "frames": 4, "seed": 3}\n]\n',
    )
    first, second = read_prompt_list(path)
    assert (first.prompt, first.source) == ("a blue square moves down", f"{path}:2")
    assert (second.frames, second.seed, second.source) == (4, 3, f"{path}:3")
    wrapped = write(tmp_path, "wrapped.json", '{"prompts": ["a red circle moves up"]}')
    assert [s.prompt for s in read_prompt_list(wrapped)] == ["a red circle moves up"]


@pytest.mark.parametrize(
    ("name", "text", "line", "match"),
    [
        ("empty.txt", "# only a comment\n\n", None, "no prompts"),
        ("bad.yaml", "prompts:\n  - a red circle\n  - [unclosed\n", 4, "invalid YAML"),
        ("bad.json", '[\n "a red circle moves up",\n]\n', 3, "invalid JSON"),
        ("key.yaml", "- a red circle moves up\n- prompt: the red circle moves left\n  frame: 8\n", 2, "unknown keys"),
        ("type.yaml", "- a red circle moves up\n- {prompt: x, seed: true}\n", 2, "seed must be int"),
        ("frames.json", '[\n  {"prompt": "x",\n   "frames": 8.5}\n]', 2, "frames must be int"),
        ("both.yaml", "prompts:\n- {prompt: x, frames: 8, seconds: 1}\n", 2, "frames or seconds"),
        ("neg.yaml", "prompts:\n  - x\n  - {prompt: y, guidance: -1}\n", 3, "guidance must be"),
        ("blank.yaml", "- a red circle\n- '   '\n", 2, "non-empty string"),
        ("noprompt.yaml", "- a red circle\n-\n  seed: 3\n", 3, "needs 'prompt'"),
        ("top.yaml", "prompts: [x]\nfps: 8\n", 2, "exactly one key"),
        ("scalar.yaml", "just one string\n", 1, "expected a list"),
        ("emptylist.json", '{"prompts": []}', 1, "no prompts in the list"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path: Path, name: str, text: str, line: int | None, match: str) -> None:
    path = write(tmp_path, name, text)
    where = re.escape(f"{path}:{line}:" if line else f"{path}:")
    with pytest.raises(ValueError, match=f"^{where}.*{match}"):
        read_prompt_list(path)


def test_not_utf8_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("a red circle\nthe caf\xe9 moves\n".encode("latin-1"))
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: not UTF-8")):
        read_prompt_list(path)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_prompt_list(tmp_path / "missing.txt")


def test_frames_that_do_not_fit_the_tubelets_name_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.yaml", "- a red circle moves up\n- {prompt: y, frames: 7}\n")
    spec = read_prompt_list(path)[1]
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: frames=7 must be a positive multiple of 2")):
        spec.num_frames(16, fps=8, multiple=2)

"""Prompt lists: the cases tests/sampling/test_prompts.py does not already cover, and a fuzzer.

Already there (see docs/hardening.md): an empty file or list, a blank prompt, malformed YAML and
JSON, unknown keys, wrong types, frames that do not fit the tubelets, not UTF-8, a missing file.
"""

from __future__ import annotations

import json
import re
import string
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokgen.cli import main
from tokgen.generator import Generator
from tokgen.sampling.prompts import PromptSpec, read_prompt_list


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def generator(generator_dir: Path) -> Generator:
    return Generator.from_pretrained(generator_dir)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("- {prompt: x, frames: 0}\n", "frames must be >= 1, got 0"),
        ("- {prompt: x, frames: -8}\n", "frames must be >= 1, got -8"),
        ("- {prompt: x, seconds: 0}\n", "seconds must be a finite number > 0, got 0"),
        ("- {prompt: x, seconds: -1.5}\n", "seconds must be a finite number > 0, got -1.5"),
        ("- {prompt: x, seconds: .inf}\n", "seconds must be a finite number > 0, got inf"),
        ("- {prompt: x, seed: -1}\n", r"seed must be in \[0, 2\*\*63\), got -1"),
        ("- {prompt: x, seed: 99999999999999999999}\n", r"seed must be in \[0, 2\*\*63\)"),
    ],
    ids=["frames_0", "frames_negative", "seconds_0", "seconds_negative", "seconds_inf", "seed_negative", "seed_huge"],
)
def test_zero_negative_and_out_of_range_counts_name_the_line(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, "story.yaml", "- a red circle moves up\n" + text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}:2: {match}"):
        read_prompt_list(path)


def test_seconds_too_short_for_one_tubelet_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "story.yaml", "- {prompt: x, seconds: 0.05}\n")
    (spec,) = read_prompt_list(path)
    with pytest.raises(ValueError, match=re.escape(f"{path}:1: seconds=0.05 at 8 fps gives frames=0, which must be")):
        spec.num_frames(16, fps=8, multiple=2)


@pytest.mark.parametrize("option", ["frames_per_prompt=-4", "frames_per_prompt=3", "context=-1"])
def test_bad_story_options_are_named_as_options(option: str, generator_dir: Path, tmp_path: Path) -> None:
    prompts = write(tmp_path, "story.txt", "a red circle moves right\n")
    out = tmp_path / "story.mp4"
    name, value = option.split("=")
    with pytest.raises(SystemExit, match=f"tokgen story: error: .*{name}={value}"):
        main(["story", f"prompts={prompts}", f"out={out}", f"generator={generator_dir}", "steps=1", option])
    assert not out.exists()


def test_an_empty_prompt_list_in_code_is_refused(generator: Generator) -> None:
    with pytest.raises(ValueError, match="at least one prompt"):
        generator.story([])
    with pytest.raises(ValueError, match="non-empty string"):
        generator.story(["a red circle moves up", "   "])


def test_an_overlong_prompt_is_truncated_with_a_warning(generator: Generator) -> None:
    long = "a red circle moves right and then it moves up and then it stays still for a while"
    with pytest.warns(UserWarning, match=r"prompt 'a red circle moves right and then it mov\.\.\.' .* max_length=16"):
        story = generator.story([long], steps=1)
    assert story.frames.shape == (9, 16, 16, 3)  # truncated, not refused


@pytest.mark.parametrize(
    ("name", "text"),
    [("deep.json", "[" * 50_000 + "]" * 50_000), ("deep.yaml", "[" * 50_000 + "]" * 50_000)],
)
def test_deeply_nested_files_are_a_format_error(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}:1: invalid .*nested too deeply"):
        read_prompt_list(path)


def test_a_byte_order_mark_is_not_part_of_the_first_prompt(tmp_path: Path) -> None:
    files = [("bom.txt", "a red circle\n"), ("bom.json", '["a red circle"]'), ("bom.yaml", "- a red circle\n")]
    for name, text in files:
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # what Windows Notepad writes
        assert [s.prompt for s in read_prompt_list(path)] == ["a red circle"]


# ------------------------------------------------------------------------------------- fuzzing
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
_WORDS = st.text(string.ascii_letters + " ,.'-", min_size=0, max_size=20)
_NUMBER = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True))
_VALUE = st.one_of(st.none(), st.booleans(), _NUMBER, _WORDS, st.lists(_WORDS, max_size=2))
_ITEM = st.one_of(
    _WORDS,
    st.dictionaries(
        st.sampled_from(["prompt", "frames", "seconds", "guidance", "temperature", "seed", "fps", "promt"]),
        st.one_of(_VALUE, _WORDS),
        max_size=4,
    ),
    _VALUE,
)
_DOCUMENT = st.one_of(
    st.lists(_ITEM, max_size=4), st.fixed_dictionaries({"prompts": st.lists(_ITEM, max_size=4)}), _VALUE
)


def _check(path: Path, lines: int) -> None:
    """Parsing either returns valid specs located in the file, or raises ValueError naming the file."""
    try:
        specs = read_prompt_list(path)
    except ValueError as err:
        assert str(err).startswith(f"{path}:"), str(err)
        return
    assert specs and all(isinstance(s, PromptSpec) and s.prompt.strip() == s.prompt != "" for s in specs)
    for spec in specs:
        file, _, line = spec.source.rpartition(":")
        assert file == str(path) and 1 <= int(line) <= lines


@_SETTINGS
@given(text=_TEXT, suffix=st.sampled_from([".txt", ".yaml", ".json"]))
def test_fuzz_any_text_parses_or_is_a_format_error(tmp_path: Path, text: str, suffix: str) -> None:
    path = write(tmp_path, f"fuzz{suffix}", text)
    _check(path, text.count("\n") + 1)


@_SETTINGS
@given(document=_DOCUMENT, as_json=st.booleans())
def test_fuzz_structured_documents_parse_or_are_a_format_error(tmp_path: Path, document: object, as_json: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = json.dumps(document, indent=1) if as_json else yaml.safe_dump(document, default_flow_style=False)
    path = write(tmp_path, "fuzz.json" if as_json else "fuzz.yaml", text)
    _check(path, text.count("\n") + 1)


@_SETTINGS
@given(lines=st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12), max_size=6))
def test_fuzz_text_files_report_the_line_each_prompt_is_on(tmp_path: Path, lines: list[str]) -> None:
    text = "\n".join(lines)
    path = write(tmp_path, "fuzz.txt", text)
    try:
        specs = read_prompt_list(path)
    except ValueError as err:
        assert "no prompts" in str(err) or "non-empty" in str(err), str(err)
        return
    physical = text.split("\n")  # lines as an editor numbers them
    for spec in specs:
        assert physical[int(spec.source.rpartition(":")[2]) - 1].strip() == spec.prompt

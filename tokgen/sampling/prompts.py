"""Prompt lists: what a story (or ``predict``) generates, one prompt per segment.

Three formats, chosen by suffix:

- text (any suffix but the two below): one prompt per line;
- ``.yaml`` / ``.yml`` and ``.json``: a list whose items are a prompt string or a mapping with
  ``prompt`` and any of ``frames`` (or ``seconds``), ``guidance``, ``temperature``, ``seed``; or a
  mapping ``{prompts: [...]}`` holding that list.

In text files blank lines and ``#`` comments are skipped (YAML has its own ``#`` comments). Every
error names the file and the line it concerns, so a long story file is fixed in one look.
"""

from __future__ import annotations

import codecs
import json
import json.scanner
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

# Per-prompt settings a YAML/JSON item may carry, with the types they must have.
_OPTIONS: dict[str, tuple[type, ...]] = {
    "frames": (int,),
    "seconds": (int, float),
    "guidance": (int, float),
    "temperature": (int, float),
    "seed": (int,),
}


@dataclass(frozen=True)
class PromptSpec:
    """One prompt of a list and its own settings (None: use the story's).

    Attributes:
        prompt: the text.
        frames: pixel frames of this prompt's segment (see ``Generator.story``).
        seconds: the same as a duration; converted with the story's fps. Never both with ``frames``.
        guidance, temperature, seed: sampling settings for this segment only.
        source: ``file:line`` where the prompt was read (``""`` when built in code), for error messages.
    """

    prompt: str
    frames: int | None = None
    seconds: float | None = None
    guidance: float | None = None
    temperature: float | None = None
    seed: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"{where}prompt must be a non-empty string, got {self.prompt!r}")
        if self.frames is not None and self.seconds is not None:
            raise ValueError(f"{where}give frames or seconds, not both")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"{where}frames must be >= 1, got {self.frames}")
        for name in ("seconds", "guidance"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{where}{name} must be a finite number > 0, got {value}")
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"{where}temperature must be a finite number >= 0, got {self.temperature}")
        if self.seed is not None and not 0 <= self.seed < 2**63:  # torch generators take 64 bits; seed + i stays in
            raise ValueError(f"{where}seed must be in [0, 2**63), got {self.seed}")

    def num_frames(self, default: int, *, fps: float, multiple: int = 1) -> int:
        """Segment frames: ``frames``, else ``seconds * fps`` rounded to ``multiple``, else ``default``.

        Raises:
            ValueError: the result is not a positive multiple of ``multiple`` (names the source line).
        """
        frames = self.frames or (round(self.seconds * fps / multiple) * multiple if self.seconds else default)
        if frames < 1 or frames % multiple:
            where = self.source or repr(self.prompt)
            if self.frames:
                what = f"frames={frames}"
            elif self.seconds:
                what = f"seconds={self.seconds:g} at {fps:g} fps gives frames={frames}, which"
            else:  # the story's default (frames_per_prompt), not something this line says
                what = f"frames_per_prompt={frames}, the default for this prompt,"
            raise ValueError(f"{where}: {what} must be a positive multiple of {multiple} (temporal_patch)")
        return frames


def read_prompt_lines(path: str | Path) -> list[str]:
    """Prompts from a text file, one per line; blank lines and ``#`` comments are skipped."""
    return [spec.prompt for spec in _read_text(Path(path))]


def read_prompt_list(path: str | Path) -> list[PromptSpec]:
    """Prompts and their per-prompt settings from a text, YAML or JSON file (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed file or item; the message starts with ``file:line:``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _from_items(path, _yaml_items(path))
    if suffix == ".json":
        return _from_items(path, _json_items(path))
    return _read_text(path)


# ------------------------------------------------------------------------------------ formats
def _text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"prompts file {path} does not exist")
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)  # editors that mark UTF-8 with a BOM
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({err.reason})") from None


def _read_text(path: Path) -> list[PromptSpec]:
    specs = []
    # Lines end at "\n" only (str.splitlines also splits at form feeds etc.): line numbers match editors'.
    for number, line in enumerate(_text(path).split("\n"), start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            specs.append(PromptSpec(text, source=f"{path}:{number}"))
    if not specs:
        raise ValueError(f"{path}: no prompts (blank lines and # comments are skipped)")
    return specs


def _yaml_items(path: Path) -> tuple[list[tuple[int, object]], int]:
    """``(line, item)`` of each list item, and the line of the list itself."""
    text = _text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except RecursionError:
        raise ValueError(f"{path}:1: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "1"
        problem = getattr(err, "problem", None) or str(err)
        raise ValueError(f"{path}:{line}: invalid YAML: {problem}") from None
    if isinstance(data, dict):
        extra = [key for key, _ in root.value if key.value != "prompts"]
        _only_prompts_key(path, data, (extra[0] if extra else root).start_mark.line + 1)
        root = next(value for key, value in root.value if key.value == "prompts")
        data = data["prompts"]
    line = root.start_mark.line + 1 if root is not None else 1
    if not isinstance(data, list):
        raise ValueError(f"{path}:{line}: expected a list of prompts (or a mapping with 'prompts:'), got {data!r}")
    return [(node.start_mark.line + 1, item) for node, item in zip(root.value, data, strict=True)], line


class _Located:
    """A JSON value with the line it starts on (dicts and strings; other values are left bare)."""

    def __init__(self, value: object, line: int) -> None:
        self.value, self.line = value, line


def _json_items(path: Path) -> tuple[list[tuple[int, object]], int]:
    """As `_yaml_items`, for JSON: a scanner that records where every object and string starts."""
    text = _text(path)
    decoder = json.JSONDecoder()
    parse_object, parse_string = decoder.parse_object, decoder.parse_string

    def line_of(index: int) -> int:
        return text.count("\n", 0, index) + 1

    def located_object(s_and_end, *args):
        value, end = parse_object(s_and_end, *args)
        return _Located(value, line_of(s_and_end[1] - 1)), end

    def located_string(string, index, strict):
        value, end = parse_string(string, index, strict)
        return _Located(value, line_of(index - 1)), end

    decoder.parse_object, decoder.parse_string = located_object, located_string
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # the Python scanner calls our hooks
    try:
        data = decoder.decode(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        raise ValueError(f"{path}:1: invalid JSON: nested too deeply") from None
    line = data.line if isinstance(data, _Located) else 1
    if isinstance(data, _Located) and isinstance(data.value, dict):
        keys = {getattr(k, "value", k): v for k, v in data.value.items()}
        _only_prompts_key(path, keys, line)
        data = keys["prompts"]
        line = data.line if isinstance(data, _Located) else line
    if not isinstance(data, list):
        raise ValueError(f'{path}:{line}: expected a list of prompts (or an object with "prompts")')
    return [(item.line if isinstance(item, _Located) else line, _plain(item)) for item in data], line


def _plain(value: object) -> object:
    """Strip `_Located` wrappers (the item's own line was taken already)."""
    if isinstance(value, _Located):
        return _plain(value.value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _only_prompts_key(path: Path, data: dict, line: int) -> None:
    if "prompts" not in data or set(data) - {"prompts"}:
        raise ValueError(f"{path}:{line}: a mapping at the top must have exactly one key, 'prompts', got {list(data)}")


# ------------------------------------------------------------------------------------- items
def _from_items(path: Path, located: tuple[list[tuple[int, object]], int]) -> list[PromptSpec]:
    items, list_line = located
    if not items:
        raise ValueError(f"{path}:{list_line}: no prompts in the list")
    return [_spec(path, line, item) for line, item in items]


def _spec(path: Path, line: int, item: object) -> PromptSpec:
    source = f"{path}:{line}"
    if isinstance(item, str):
        return PromptSpec(item.strip(), source=source)
    if not isinstance(item, dict):
        raise ValueError(f"{source}: a prompt must be a string or a mapping with 'prompt', got {item!r}")
    unknown = sorted(set(item) - {"prompt", *_OPTIONS})
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; known: {['prompt', *_OPTIONS]}")
    if not isinstance(item.get("prompt"), str):
        raise ValueError(f"{source}: needs 'prompt' with a string value, got {item.get('prompt')!r}")
    options = {}
    for name, types in _OPTIONS.items():
        value = item.get(name)
        # bool is an int in Python, but `seed: true` is a mistake, not seed 1.
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            kind = " or ".join(t.__name__ for t in types)
            raise ValueError(f"{source}: {name} must be {kind}, got {value!r}")
        options[name] = value
    return PromptSpec(item["prompt"].strip(), **options, source=source)

"""`Generator` story mode, continuation, image-to-video and interpolation on a tiny (untrained) generator.

The properties here hold for any weights: lengths, files, carried and given codes, seeds, chunked
decoding. Whether the stories *follow* their prompts needs trained models: tools/story_adherence.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tokgen.cli import compose_config, main
from tokgen.generator import Generator
from tokgen.io.convert import frames_to_tensor
from tokgen.io.video import read_video
from tokgen.io.video_write import write_video
from tokgen.sampling.prompts import PromptSpec
from tokgen.text import TextEncoderConfig, build_text_encoder
from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.model import VideoTokenizer
from tokgen.transformer.config import DEFAULT_GUIDANCE, TransformerConfig
from tokgen.transformer.model import MaskedTransformer

# The tiny learned text encoder keeps 16 bytes of a prompt: expected here, so not a warning worth showing.
pytestmark = pytest.mark.filterwarnings("ignore:prompt .* is truncated:UserWarning")

STORY = ["a red circle moves right", "the red circle moves up", "the red circle moves left"]


@pytest.fixture(scope="module")
def generator() -> Generator:
    """Tiny presets (16x16 frames, 4x4 patches, codebook 64), trained on 9-frame clips: 5 x 4 x 4 codes."""
    torch.manual_seed(0)
    cfg = compose_config(["experiment=transformer_tiny"])
    tokenizer = VideoTokenizer(TokenizerConfig(**OmegaConf.to_container(compose_config(["tokenizer=tiny"]).tokenizer)))
    transformer = MaskedTransformer(TransformerConfig.from_dict(OmegaConf.to_container(cfg.transformer)))
    text = OmegaConf.to_container(cfg.text)
    encoder = build_text_encoder(TextEncoderConfig(**text))
    return Generator(tokenizer, transformer, encoder, codes_shape=(5, 4, 4), text_config=text)


def test_three_prompt_story_writes_a_readable_video_of_the_planned_length(generator: Generator, tmp_path: Path) -> None:
    story = generator.story(STORY, steps=3, seed=1)
    # 1 lone first frame + 8 per prompt (the trained 9-frame clip minus its first frame).
    assert story.frames.shape == (25, 16, 16, 3) and story.codes.shape == (1, 13, 4, 4)
    assert [(s.start, s.stop) for s in story.segments] == [(0, 9), (9, 17), (17, 25)]
    assert [s.seed for s in story.segments] == [1, 2, 3]
    # Window 5 latent frames, context 2: 5 new, then at most 3 new per window, each of one prompt.
    assert [(w.segment, w.start, w.context, w.stop) for w in story.windows] == [
        (0, 0, 0, 5),
        (1, 3, 2, 8),
        (1, 6, 2, 9),
        (2, 7, 2, 12),
        (2, 10, 2, 13),
    ]
    assert story.seams == tuple(1 + (w.start + w.context - 1) * 2 for w in story.windows[1:])

    paths = story.write(tmp_path / "story.mp4", fps=8)
    frames = read_video(paths["video"])
    assert frames.shape == (25, 16, 16, 3)
    assert np.abs(frames.astype(int) - story.frames).mean() < 20  # H.264 of the same frames
    sidecar = json.loads(paths["json"].read_text())
    assert sidecar["prompts"] == STORY and sidecar["num_frames"] == 25
    assert [s["frames"] for s in sidecar["segments"]] == [[0, 9], [9, 17], [17, 25]]
    assert sidecar["settings"]["context"] == 2 and sidecar["settings"]["window"] == 5 and sidecar["seams"]
    assert paths["sheet"].stat().st_size > 0
    with pytest.raises(FileExistsError, match="overwrite"):
        story.write(tmp_path / "story.mp4")
    story.write(tmp_path / "story.mp4", overwrite=True)


def test_same_seed_same_story_and_chunked_decoding_equals_one_pass(generator: Generator) -> None:
    a = generator.story(STORY[:2], frames_per_prompt=6, steps=2, seed=4)
    b = generator.story(STORY[:2], frames_per_prompt=6, steps=2, seed=4)
    assert torch.equal(a.codes, b.codes) and np.array_equal(a.frames, b.frames)
    assert a.frames.shape[0] == 1 + 6 + 6
    with torch.no_grad():
        whole = generator.tokenizer.decode(a.codes)
        for chunk in (1, 2, 3):
            assert torch.allclose(generator.tokenizer.decode(a.codes, chunk_frames=chunk), whole, atol=1e-5)


def test_per_prompt_settings_and_any_length(generator: Generator) -> None:
    specs = [PromptSpec(STORY[0], frames=2), PromptSpec(STORY[1], frames=14, seed=9, guidance=1.5), STORY[2]]
    story = generator.story(specs, frames_per_prompt=4, steps=2)
    assert story.frames.shape[0] == 1 + 2 + 14 + 4 and story.codes.shape[1] == 2 + 7 + 2
    assert [(s.seed, s.guidance) for s in story.segments] == [(0, DEFAULT_GUIDANCE), (9, 1.5), (2, DEFAULT_GUIDANCE)]
    with pytest.raises(ValueError, match="frames=3 must be a positive multiple of 2"):
        generator.story([PromptSpec(STORY[0], frames=3, source="story.yaml:4")])
    with pytest.raises(ValueError, match="story.yaml:4"):
        generator.story([PromptSpec(STORY[0], frames=3, source="story.yaml:4")])


def test_continuation_keeps_the_given_codes(generator: Generator, tmp_path: Path) -> None:
    clip = generator.story(STORY[:1], steps=2, seed=7).frames  # 9 frames to continue
    with torch.no_grad():
        given = generator.tokenizer.encode(frames_to_tensor(clip))
    story = generator.story(STORY[1:], init=clip, steps=2)
    assert story.init_frames == 9 and story.frames.shape[0] == 9 + 8 + 8
    assert torch.equal(story.codes[:, :5], given)  # the given clip's codes, untouched
    assert [(s.start, s.stop) for s in story.segments] == [(9, 17), (17, 25)]
    assert story.windows[0].context == 2  # the first window already continues the clip
    # From a file, as `tokgen story init=clip.mp4` does: decoded by PyAV and encoded the same way.
    write_video(tmp_path / "clip.mp4", clip, fps=8)
    from_file = generator.story(STORY[1:2], init=tmp_path / "clip.mp4", steps=2)
    with torch.no_grad():
        assert torch.equal(
            from_file.codes[:, :5], generator.tokenizer.encode(frames_to_tensor(read_video(tmp_path / "clip.mp4")))
        )
    write_video(tmp_path / "long.mp4", np.concatenate([clip, clip[:1]]), fps=8)  # 10 frames: not 1 + 2k
    with pytest.raises(ValueError, match="long.mp4.*10 frames"):
        generator.story(STORY[1:2], init=tmp_path / "long.mp4")
    with pytest.raises(ValueError, match=r"init frames are \(32, 32\) pixels; this generator makes \(16, 16\)"):
        generator.story(STORY[1:2], init=np.zeros((1, 32, 32, 3), np.uint8))


def test_image_to_video_starts_from_the_given_frame(generator: Generator) -> None:
    image = np.zeros((16, 16, 3), np.uint8)
    image[4:10, 6:12] = (255, 0, 0)
    story = generator.story(STORY[:1], init=image, steps=2)
    assert story.frames.shape[0] == 1 + 8 and story.init_frames == 1
    with torch.no_grad():
        assert torch.equal(story.codes[:, :1], generator.tokenizer.encode(frames_to_tensor(image[None])))


def test_interpolation_fixes_both_ends(generator: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    start, end = np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 200, np.uint8)
    seen = {}
    original = generator.sample_codes

    def spy(*args, **kwargs):
        seen.update(kwargs, codes=original(*args, **kwargs))
        return seen["codes"]

    monkeypatch.setattr(generator, "sample_codes", spy)
    frames = generator.interpolate(STORY[0], start, end, num_frames=9, steps=2)
    assert frames.shape == (9, 16, 16, 3)
    known, known_mask, codes = seen["known"], seen["known_mask"], seen["codes"]
    assert known_mask[0, :, 0, 0].tolist() == [True, False, False, False, True]  # first and last latent frame
    assert torch.equal(codes[known_mask], known[known_mask])
    with torch.no_grad():
        tok = generator.tokenizer
        assert torch.equal(codes[:, :1], tok.encode(frames_to_tensor(start[None])))
        assert torch.equal(codes[:, -1:], tok.encode(frames_to_tensor(np.stack([end, end, end])))[:, 1:])
        first = tok.decode(codes[:, :1])  # the causal decoder: frame 0 depends on latent frame 0 alone
    assert np.abs(frames[0].astype(int) - frames_to_uint8(first)).max() <= 1
    with pytest.raises(ValueError, match="leaves no frame between"):
        generator.interpolate(STORY[0], start, end, num_frames=3)


def frames_to_uint8(video: torch.Tensor) -> np.ndarray:
    from tokgen.io.convert import tensor_to_frames

    return tensor_to_frames(video)[0, 0].astype(int)


def test_cli_generate_writes_a_clip_sheet_and_seed_per_sample(generator: Generator, tmp_path: Path) -> None:
    generator.save_pretrained(tmp_path / "gen")
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("- a red circle moves right\n- {prompt: a blue square stays still, frames: 3, seed: 7}\n")
    out = tmp_path / "clips"
    gen = f"generator={tmp_path / 'gen'}"
    args = ["generate", gen, f"prompts={prompts}", f"out={out}", "samples=2", "steps=2", "seed=10"]
    main(args)
    samples = json.loads((out / "generate.json").read_text())["samples"]
    # The k-th clip samples with seed + k; a prompt's own seed counts its samples from there.
    assert [(s["prompt"][:6], s["seed"]) for s in samples] == [
        ("a red ", 10),
        ("a red ", 11),
        ("a blue", 7),
        ("a blue", 8),
    ]
    assert [read_video(out / s["file"]).shape[0] for s in samples] == [9, 9, 3, 3] == [s["frames"] for s in samples]
    assert all((out / s["file"]).with_suffix(".png").exists() for s in samples) and (out / "sheet.png").exists()
    # The same seed and settings give the clip Generator.generate gives (written by the same encoder).
    write_video(
        tmp_path / "ref.mp4", generator.generate("a blue square stays still", num_frames=3, steps=2, seed=8), 8.0
    )
    assert np.array_equal(read_video(out / samples[3]["file"]), read_video(tmp_path / "ref.mp4"))
    assert not np.array_equal(read_video(out / samples[2]["file"]), read_video(tmp_path / "ref.mp4"))
    with pytest.raises(SystemExit, match="not empty"):  # refused before sampling; nothing is replaced
        main(args)
    with pytest.raises(SystemExit, match="exactly one"):
        main(["generate", gen, f"prompts={prompts}", "prompt=a red circle moves up", f"out={tmp_path / 'x'}"])
    prompts.write_text("- a red circle moves right\n- {prompt: a red circle moves up, frames: 4}\n")
    with pytest.raises(SystemExit, match=r"prompts.yaml:2: a clip of 4 frames does not fit temporal_patch=2"):
        main(["generate", gen, f"prompts={prompts}", f"out={tmp_path / 'y'}", "steps=1"])
    assert not (tmp_path / "y").exists()


def test_cli_story_writes_video_sheet_and_sidecar(generator: Generator, tmp_path: Path) -> None:
    generator.save_pretrained(tmp_path / "gen")
    prompts = tmp_path / "story.yaml"
    prompts.write_text("- a red circle moves right\n- {prompt: the red circle moves up, frames: 4, seed: 5}\n")
    out = tmp_path / "story.mp4"
    args = ["story", f"prompts={prompts}", f"out={out}", f"generator={tmp_path / 'gen'}", "steps=2", "context=1"]
    main(args)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["num_frames"] == 1 + 8 + 4 == read_video(out).shape[0]
    assert sidecar["segments"][1]["seed"] == 5 and sidecar["segments"][1]["source"] == f"{prompts}:2"
    assert sidecar["settings"]["context"] == 1 and out.with_suffix(".png").exists()
    with pytest.raises(SystemExit, match="overwrite"):  # refused before any sampling
        main(args)
    main([*args, "overwrite=true", f"init={out}", "frames_per_prompt=2"])  # continue the story itself
    assert json.loads(out.with_suffix(".json").read_text())["init_frames"] == 13
    bad = tmp_path / "bad.txt"
    bad.write_text("# nothing\n")
    with pytest.raises(SystemExit, match="bad.txt: no prompts"):
        main(["story", f"prompts={bad}", f"out={tmp_path / 'x.mp4'}", f"generator={tmp_path / 'gen'}"])


def test_cli_interpolate_reads_both_ends_from_files(generator: Generator, tmp_path: Path) -> None:
    from tokgen.io.contact_sheet import save_png

    generator.save_pretrained(tmp_path / "gen")
    rng = np.random.default_rng(0)
    start, end = (rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2))
    save_png(tmp_path / "start.png", start)
    save_png(tmp_path / "end.png", end)
    out, gen = tmp_path / "tween", f"generator={tmp_path / 'gen'}"
    ends = [f"start={tmp_path / 'start.png'}", f"end={tmp_path / 'end.png'}", "prompt=a red circle moves right"]
    args = ["interpolate", gen, *ends, f"out={out}", "samples=2", "steps=2", "seed=3"]
    main(args)
    samples = json.loads((out / "interpolate.json").read_text())["samples"]
    assert [(s["seed"], s["frames"], Path(s["end"]).name) for s in samples] == [(3, 9, "end.png"), (4, 9, "end.png")]
    # The written clip is Generator.interpolate's for the PNGs' pixels and the k-th seed.
    reference = generator.interpolate("a red circle moves right", start, end, steps=2, seed=4)
    write_video(tmp_path / "ref.mp4", reference, 8.0)
    assert np.array_equal(read_video(out / samples[1]["file"]), read_video(tmp_path / "ref.mp4"))
    with pytest.raises(SystemExit, match="not empty"):  # refused before sampling; nothing is replaced
        main(args)
    with pytest.raises(SystemExit, match="end=.*nope.png: no such file"):
        main(["interpolate", gen, *ends[::2], f"end={tmp_path / 'nope.png'}", f"out={tmp_path / 'x'}"])
    write_video(tmp_path / "three.mp4", np.stack([end] * 3), 8.0)  # an end clip must be a multiple of 2 frames
    with pytest.raises(SystemExit, match="three.mp4 has 3 frames; it must be one frame or a multiple of 2"):
        main(["interpolate", gen, *ends[::2], f"end={tmp_path / 'three.mp4'}", f"out={tmp_path / 'y'}"])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_clip_longer_than_the_transformer_samples_points_to_story_mode(generator: Generator) -> None:
    most, tok = generator.transformer.config.max_t, generator.tokenizer.config
    generator.generate(STORY[0], num_frames=tok.num_frames(most), steps=1)  # the longest clip: fine
    with pytest.raises(ValueError, match=rf"is {most + 1} latent frames; .* at most {most} .* story mode"):
        generator.generate(STORY[0], num_frames=tok.num_frames(most + 1), steps=1)

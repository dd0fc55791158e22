"""The ``key=value`` verbs of ``tokgen``: one typed options dataclass and one short function each.

`tokgen.cli` parses the arguments into the dataclass and lists the verbs in its table; the work
itself lives in the modules these functions call.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from tokgen.evaluate_config import EvaluateConfig
from tokgen.precision import check_device
from tokgen.transformer.config import DEFAULT_FIRST_FRAME, DEFAULT_GUIDANCE, DEFAULT_TEMPERATURE, DEFAULT_TOP_K


@dataclass
class ExportOptions:
    """``tokgen export ckpt=PATH out=DIR``: a Lightning checkpoint -> ``config.json`` + ``model.safetensors``."""

    ckpt: str = MISSING
    out: str = MISSING
    overwrite: bool = False


def export(opts: ExportOptions) -> Path:
    from tokgen.export import export_checkpoint

    out = export_checkpoint(opts.ckpt, opts.out, overwrite=opts.overwrite)
    print(f"exported {opts.ckpt} -> {out}")
    return out


@dataclass
class CompressOptions:
    """``tokgen compress input=in.mp4 output=out.tok tokenizer=DIR``: a video -> entropy-coded tokenizer codes."""

    input: str = MISSING
    output: str = MISSING
    tokenizer: str = MISSING
    overwrite: bool = False
    chunk_frames: int = 16  # latent frames per encoder pass: bounds memory on long videos
    size: int | None = None  # resize the short side while reading
    fps: float | None = None  # resample while reading; None keeps the source's rate
    coder: str = "auto"  # auto (smallest) | range | bitpack
    device: str = "cpu"


def compress(opts: CompressOptions):
    from tokgen.codec import compress as run_compress

    result = run_compress(
        opts.input,
        opts.output,
        opts.tokenizer,
        overwrite=opts.overwrite,
        chunk_frames=opts.chunk_frames,
        size=opts.size,
        fps=opts.fps,
        coder=opts.coder,
        device=check_device(opts.device),
    )
    print(
        f"compressed {opts.input} ({result.frames}x{result.height}x{result.width}) -> {result.path}: "
        f"{result.file_bytes} bytes, {result.bits_per_pixel:.4f} bits/pixel, codes {result.codes_shape}, "
        f"{result.coder} coder"
    )
    return result


@dataclass
class DecompressOptions:
    """``tokgen decompress input=in.tok output=out.mp4``: tokenizer codes -> a video (mp4, webm or gif)."""

    input: str = MISSING
    output: str = MISSING
    tokenizer: str | None = None  # default: the tokenizer folder recorded in the file
    overwrite: bool = False
    chunk_frames: int = 16
    quality: int | None = None  # the output video's CRF (write_video's default when unset)
    device: str = "cpu"


def decompress(opts: DecompressOptions) -> Path:
    from tokgen.codec import decompress as run_decompress

    out = run_decompress(
        opts.input,
        opts.output,
        opts.tokenizer,
        overwrite=opts.overwrite,
        chunk_frames=opts.chunk_frames,
        quality=opts.quality,
        device=check_device(opts.device),
    )
    print(f"decompressed {opts.input} -> {out}")
    return out


@dataclass
class MakeShapesOptions:
    """``tokgen make-shapes out=DIR``: write a Shapes set as mp4 files + ``captions.jsonl``."""

    out: str = MISSING
    count: int = 100
    seed: int = 0
    resolution: int = 64
    num_frames: int = 17
    num_objects: int = 1
    fps: float = 8.0
    overwrite: bool = False


def make_shapes(opts: MakeShapesOptions) -> Path:
    from tokgen.data.shapes_folder import write_shapes_folder

    out = write_shapes_folder(
        opts.out,
        count=opts.count,
        seed=opts.seed,
        fps=opts.fps,
        overwrite=opts.overwrite,
        resolution=opts.resolution,
        num_frames=opts.num_frames,
        num_objects=opts.num_objects,
    )
    print(f"wrote {opts.count} Shapes clips and captions.jsonl to {out}")
    return out


@dataclass(kw_only=True)
class SamplingOptions:
    """What every sampling verb (``story``, ``generate``, ``interpolate``) takes: the generator folder, where
    to write, and the MaskGIT settings (``top_k`` null samples from every code)."""

    generator: str = MISSING
    out: str = MISSING
    guidance: float = DEFAULT_GUIDANCE
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int | None = DEFAULT_TOP_K
    steps: int = 12
    seed: int = 0
    fps: float = 8.0
    device: str = "cpu"
    overwrite: bool = False


@dataclass(kw_only=True)
class StoryOptions(SamplingOptions):
    """``tokgen story prompts=story.txt out=story.mp4 generator=DIR``: one video across a list of prompts.

    Writes the video, a contact sheet (``.png``, each prompt under its segment) and a ``.json`` sidecar
    (prompts, frame ranges, seeds, settings). ``prompts`` is a text file (one per line) or YAML/JSON
    with per-prompt frames/seconds, guidance, temperature, seed. ``init=clip.mp4`` (or an image)
    continues a given clip. 0 means the default for ``frames_per_prompt`` and ``context``.
    """

    prompts: str = MISSING
    frames_per_prompt: int = 0
    context: int = 0
    init: str | None = None


def story(opts: StoryOptions) -> Path:
    from tokgen.generator import Generator
    from tokgen.io.story import story_outputs
    from tokgen.sampling.prompts import read_prompt_list

    story_outputs(opts.out, overwrite=opts.overwrite)  # refuse before sampling, not after
    prompts = read_prompt_list(opts.prompts)
    generator = Generator.from_pretrained(opts.generator).to(check_device(opts.device))
    result = generator.story(
        prompts,
        frames_per_prompt=opts.frames_per_prompt or None,
        context=opts.context or None,
        init=opts.init,
        steps=opts.steps,
        guidance=opts.guidance,
        temperature=opts.temperature,
        top_k=opts.top_k,
        seed=opts.seed,
        fps=opts.fps,
        progress=True,
    )
    paths = result.write(opts.out, fps=opts.fps, overwrite=opts.overwrite)
    print(f"story of {len(result.frames)} frames: {paths['video']} (contact sheet {paths['sheet']}, {paths['json']})")
    return paths["video"]


@dataclass(kw_only=True)
class GenerateOptions(SamplingOptions):
    """``tokgen generate generator=DIR prompt="a red circle moves right" out=DIR``: clips from a generator folder.

    ``prompt`` is one prompt; ``prompts`` a prompts file as ``story`` reads it (one per line, or
    YAML/JSON with per-prompt frames/seconds, guidance, temperature, seed). Each prompt gets ``samples``
    clips; the k-th clip written samples with ``seed + k``, or with its prompt's own seed + its sample
    index. Writes ``sample_0000.mp4`` and ``.png`` per clip, ``sheet.png`` (one row per clip) and
    ``generate.json`` (prompts, seeds, settings) into ``out``, which must be new or empty.
    ``num_frames`` 0: the clip length trained on.
    """

    prompt: str = ""
    prompts: str = ""
    samples: int = 1
    num_frames: int = 0


def generate(opts: GenerateOptions) -> Path:
    from rich.progress import Progress

    from tokgen.generator import Generator
    from tokgen.io.samples import check_samples_folder, write_samples
    from tokgen.sampling.prompts import PromptSpec, read_prompt_list

    if bool(opts.prompt) == bool(opts.prompts) or opts.samples < 1:
        raise ValueError(
            f"generate needs prompt=TEXT or prompts=FILE (exactly one) and samples >= 1, got prompt={opts.prompt!r} "
            f"prompts={opts.prompts!r} samples={opts.samples}"
        )
    check_samples_folder(opts.out, overwrite=opts.overwrite)  # refuse before sampling, not after
    specs = read_prompt_list(opts.prompts) if opts.prompts else [PromptSpec(opts.prompt)]
    generator = Generator.from_pretrained(opts.generator).to(check_device(opts.device))
    config = generator.tokenizer.config
    default_frames = opts.num_frames or config.num_frames(generator.codes_shape[0])
    clips, records = [], []
    with Progress() as bar:
        task = bar.add_task("clips", total=len(specs) * opts.samples)
        for spec in specs:
            frames = spec.num_frames(default_frames, fps=opts.fps)
            if spec.seconds:  # a duration becomes the nearest clip length the tokenizer takes: 1 + k * pt
                frames = config.num_frames(max(1, round((frames - 1) / config.temporal_patch)) + 1)
            for j in range(opts.samples):
                seed = opts.seed + len(clips) if spec.seed is None else spec.seed + j
                guidance = opts.guidance if spec.guidance is None else spec.guidance
                temperature = opts.temperature if spec.temperature is None else spec.temperature
                try:
                    clip = generator.generate(
                        spec.prompt,
                        num_frames=frames,
                        steps=opts.steps,
                        guidance=guidance,
                        temperature=temperature,
                        top_k=opts.top_k,
                        seed=seed,
                    )
                except ValueError as err:
                    raise ValueError(f"{spec.source or repr(spec.prompt)}: {err}") from None
                clips.append(clip)
                records.append({"prompt": spec.prompt, "seed": seed, "guidance": guidance, "temperature": temperature})
                bar.advance(task)
    settings = {
        "steps": opts.steps,
        "top_k": opts.top_k,
        "first_frame": DEFAULT_FIRST_FRAME,
        "schedule": generator.schedule,
        "fps": opts.fps,
    }
    out = write_samples(
        opts.out, clips, records, settings, fps=opts.fps, record="generate.json", overwrite=opts.overwrite
    )
    print(f"{len(clips)} clips: {out}/sample_*.mp4 (a contact sheet .png beside each), sheet.png (all), generate.json")
    return out


@dataclass(kw_only=True)
class InterpolateOptions(SamplingOptions):
    """``tokgen interpolate generator=DIR start=a.png end=b.png prompt="..." out=DIR``: frames between two.

    ``start`` and ``end`` are image or video files (resized to the generator's frames): a start clip
    has ``1 + k * temporal_patch`` frames, an end clip a multiple of ``temporal_patch``, and an image is
    one frame. Both ends' codes are kept and the frames between are sampled under ``prompt``
    (CogVideo's interpolation). ``samples`` clips, the k-th with ``seed + k``, written as ``generate``
    writes them (``interpolate.json`` records the ends). ``num_frames`` 0: the clip length trained on.
    """

    prompt: str = MISSING
    start: str = MISSING
    end: str = MISSING
    num_frames: int = 0
    samples: int = 1


def interpolate(opts: InterpolateOptions) -> Path:
    from rich.progress import track

    from tokgen.generator import Generator
    from tokgen.io.samples import check_samples_folder, write_samples

    if opts.samples < 1:
        raise ValueError(f"interpolate needs samples >= 1, got {opts.samples}")
    check_samples_folder(opts.out, overwrite=opts.overwrite)  # refuse before sampling, not after
    for name in ("start", "end"):
        if not Path(getattr(opts, name)).is_file():
            raise FileNotFoundError(f"interpolate {name}={getattr(opts, name)}: no such file (an image or a video)")
    generator = Generator.from_pretrained(opts.generator).to(check_device(opts.device))
    settings = dict(steps=opts.steps, guidance=opts.guidance, temperature=opts.temperature, top_k=opts.top_k)
    clips = [
        generator.interpolate(
            opts.prompt, opts.start, opts.end, num_frames=opts.num_frames or None, seed=opts.seed + k, **settings
        )
        for k in track(range(opts.samples), description="clips")
    ]
    records = [
        {"prompt": opts.prompt, "seed": opts.seed + k, "start": opts.start, "end": opts.end}
        for k in range(opts.samples)
    ]
    settings |= {"schedule": generator.schedule, "fps": opts.fps}
    out = write_samples(
        opts.out, clips, records, settings, fps=opts.fps, record="interpolate.json", overwrite=opts.overwrite
    )
    print(
        f"{len(clips)} clips of {len(clips[0])} frames: {out}/sample_*.mp4 (+ .png each), sheet.png, interpolate.json"
    )
    return out


@dataclass
class DemoOptions:
    """``tokgen demo``: train (or reuse) a small tokenizer and generator on Shapes, then write a three-prompt story.

    Each stage is skipped when its output exists in ``out`` (delete ``out/tokenizer`` or ``out/generator``
    to train again). The defaults fit in about 20 minutes on 2 CPU cores.
    """

    out: str = "runs/demo"
    tokenizer_minutes: float = 6.0
    # 6 + 11 minutes and 10000 clips fill the 20-minute budget (18.0-18.3 minutes on 2 cores, 2026-12-06):
    # against 6 + 8 and 3000 clips (14.4 minutes), 128 captions all right 27% -> 50%, stories 2% -> 28%.
    generator_minutes: float = 11.0
    clips: int = 10000  # Shapes clips encoded into token shards for the generator
    seed: int = 0


def demo(opts: DemoOptions) -> Path:
    from tokgen.cli import compose_config, run  # the demo trains through the CLI's own Lightning path
    from tokgen.demo import run_demo

    return run_demo(
        Path(opts.out),
        tokenizer_minutes=opts.tokenizer_minutes,
        generator_minutes=opts.generator_minutes,
        clips=opts.clips,
        compose=compose_config,
        fit=run,
        seed=opts.seed,
    )


@dataclass(kw_only=True)
class EvaluateOptions(EvaluateConfig):
    """``tokgen evaluate model=DIR``: report.md + PNGs + metrics.json for a tokenizer or generator folder.

    The measurement settings and their defaults (the written protocol) are `EvaluateConfig`'s. ``out``
    defaults to runs/evaluate/<model>-<time>; i3d=FILE adds I3D-FVD, clip=DIR the CLIP score.
    """

    model: str = MISSING
    out: str = ""
    overwrite: bool = False


def evaluate(opts: EvaluateOptions) -> Path:
    from tokgen.evaluate import default_out
    from tokgen.evaluate import evaluate as run_evaluation

    settings = {f.name: getattr(opts, f.name) for f in fields(EvaluateConfig)}
    out = Path(opts.out) if opts.out else default_out(opts.model)
    report = run_evaluation(opts.model, out, EvaluateConfig(**settings), overwrite=opts.overwrite)
    print(f"report: {report}")
    return report

"""`tokgen evaluate`: measure a tokenizer or a generator folder and write a report into a run folder.

Tokenizer: PSNR, SSIM (per clip and per frame), codebook usage and perplexity, codes per clip, bits
per pixel, encode and decode throughput, over Shapes or a video folder.

Generator, by a fixed protocol (written into every report): for each seed ``s`` of ``seeds``, a real
split of ``num_clips`` single-object Shapes clips (dataset seed ``REAL_SEED + s``) gives the prompts,
the generator samples one clip per prompt (sampler seed ``s``), and the set is scored: prompt
adherence read from pixels, Shapes-FVD against the real split, Shapes-IS, optionally I3D-FVD and CLIP
score. Clips stay tensors from decoder to metric (no mp4 round trip). Reported as mean ± std over
seeds, beside the real-vs-real floor (a second real split, ``FLOOR_SEED + s``). Diversity: a few
prompts sampled with several seeds, their pairwise distances.

Axis legend: n clips, c channels, t frames, h height, w width, d feature width.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from rich.progress import track
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from tokgen.data.shapes import ShapesDataset
from tokgen.evaluate_config import EvaluateConfig
from tokgen.generator import Generator
from tokgen.io.convert import tensor_to_frames
from tokgen.metrics.adherence import score_clips
from tokgen.metrics.clip_score import ClipScorer
from tokgen.metrics.codebook import code_histogram, codebook_perplexity, codebook_usage
from tokgen.metrics.fvd import frechet_distance_of_features, i3d_features, load_i3d
from tokgen.metrics.image import psnr, ssim
from tokgen.metrics.shapes_net import NOT_COMPARABLE, ShapesNet, inception_score, shapes_net_outputs
from tokgen.metrics.story import score_story, shapes_stories, summarize
from tokgen.report import prepare_run_dir, write_report
from tokgen.tokenizer.model import VideoTokenizer

REAL_SEED = 1000  # real splits: never the training seed (0) of generators or ShapesNet (0, held-out 1)
FLOOR_SEED = 2000  # the second real split that measures the real-vs-real floor
DIVERSITY_SEED = 5000
STORY_SEED = 6000


def model_kind(path: Path) -> str:
    """``"tokenizer"`` for an exported tokenizer, ``"generator"`` for a folder with tokenizer/ and transformer/."""
    if (path / "tokenizer").is_dir() and (path / "transformer").is_dir():
        return "generator"
    config = path / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("kind") == "tokenizer":
        return "tokenizer"
    raise FileNotFoundError(
        f"'{path}' is neither a tokenizer folder (config.json of kind 'tokenizer' + model.safetensors) nor a "
        "generator folder (tokenizer/ + transformer/), as written by `tokgen export`"
    )


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


# --- tokenizer ------------------------------------------------------------------------------------


def tokenizer_dataset(config: EvaluateConfig, temporal_patch: int) -> Dataset:
    if config.data == "shapes":
        return ShapesDataset(
            config.num_clips, seed=REAL_SEED, resolution=config.resolution, num_frames=config.num_frames
        )
    from tokgen.data.video_folder import VideoFolderDataset

    if not Path(config.data).is_dir():
        raise FileNotFoundError(f"evaluate: data={config.data!r} is neither 'shapes' nor a video folder")
    return VideoFolderDataset(
        config.data, num_frames=config.num_frames, temporal_patch=temporal_patch, size=config.resolution
    )


@torch.no_grad()
def evaluate_tokenizer(tokenizer: VideoTokenizer, config: EvaluateConfig) -> dict:
    """Reconstruction, codebook and speed metrics of ``tokenizer`` over ``config``'s data (+ Shapes-rFVD and
    adherence of the reconstructions on Shapes)."""
    dataset = tokenizer_dataset(config, tokenizer.config.temporal_patch)
    size = min(config.num_clips, len(dataset))
    loader = DataLoader(torch.utils.data.Subset(dataset, range(size)), batch_size=config.batch_size)
    k = tokenizer.config.codebook_size
    counts = torch.zeros(k, dtype=torch.long)
    psnrs, ssims, per_frame, samples = [], [], [], []
    # On Shapes, reconstructions are also scored as Shapes clips: adherence to their captions and the
    # Shapes-FVD between inputs and reconstructions (a reconstruction FVD, "rFVD").
    net = ShapesNet.from_pretrained() if config.data == "shapes" else None
    features, captions, recon_frames = ([], []), [], []
    encode_s = decode_s = 0.0
    for batch in track(loader, description="evaluating tokenizer"):
        video = batch["video"]
        start = time.perf_counter()
        codes = tokenizer.encode(video)
        encode_s += time.perf_counter() - start
        start = time.perf_counter()
        recon = tokenizer.decode(codes).clamp(-1, 1)
        decode_s += time.perf_counter() - start
        counts += code_histogram(codes, k)
        psnrs.append(psnr(recon, video))
        ssims.append(ssim(recon, video))
        per_frame.append(
            torch.stack([psnr(recon[:, :, i : i + 1], video[:, :, i : i + 1]) for i in range(video.shape[2])], 1)
        )
        if net is not None:
            for store, clips in zip(features, (video, recon), strict=True):
                store.append(shapes_net_outputs(net, clips)[0])
            captions += batch["caption"]
            recon_frames.append(tensor_to_frames(recon))
        if not samples:  # the first clips, input and reconstruction, for the report's contact sheet
            samples = (tensor_to_frames(video[:4]), tensor_to_frames(recon[:4]))
    _, _, frames, height, width = video.shape
    codes_per_clip = math.prod(tokenizer.codes_shape(frames, height, width))
    pixels = frames * height * width
    perplexity = codebook_perplexity(counts)
    psnr_all, ssim_all = torch.cat(psnrs), torch.cat(ssims)
    metrics = {
        "psnr_db": mean_std(psnr_all.tolist()),
        "ssim": mean_std(ssim_all.tolist()),
        "codebook_size": k,
        "codebook_usage": codebook_usage(counts),
        "codebook_perplexity": perplexity,
        "codes_per_clip": codes_per_clip,
        # Fixed-length codes cost log2(K) bits each; an entropy coder needs about log2(perplexity).
        "bits_per_pixel": codes_per_clip * math.log2(k) / pixels,
        "bits_per_pixel_entropy": codes_per_clip * math.log2(max(perplexity, 1.0)) / pixels,
        "encode_clips_per_s": size / encode_s,
        "decode_clips_per_s": size / decode_s,
        "encode_frames_per_s": size * frames / encode_s,
        "decode_frames_per_s": size * frames / decode_s,
    }
    if net is not None:
        metrics["shapes_rfvd"] = frechet_distance_of_features(torch.cat(features[0]), torch.cat(features[1]))
        metrics["recon_adherence"] = score_clips(np.concatenate(recon_frames), captions)
    protocol = {
        "data": config.data if config.data != "shapes" else f"Shapes, dataset seed {REAL_SEED}",
        "num_clips": size,
        "clip_length": f"{frames} frames at {height}x{width}",
        "batch_size": config.batch_size,
        "throughput": "wall time of encode / decode alone, CPU threads as set by torch, one process",
        "shapes_rfvd": f"Shapes-FVD of inputs vs reconstructions, {NOT_COMPARABLE}" if net else "not on Shapes",
    }
    curves = {
        "psnr_per_frame": torch.cat(per_frame).mean(0).tolist(),
        "psnr_per_clip": psnr_all.tolist(),
        "code_counts_sorted": counts.sort(descending=True).values.tolist(),
    }
    return {"kind": "tokenizer", "metrics": metrics, "protocol": protocol, "curves": curves, "samples": samples}


# --- generator ------------------------------------------------------------------------------------


@torch.no_grad()
def generate_videos(generator: Generator, prompts: list[str], *, config: EvaluateConfig, seed: int) -> Tensor:
    """Clips ``(n, 3, t, h, w)`` float in [-1, 1] for ``prompts`` at the trained latent grid, batched."""
    videos = []
    for start in range(0, len(prompts), config.batch_size):
        batch = prompts[start : start + config.batch_size]
        codes = generator.sample_codes(
            batch,
            generator.codes_shape,
            steps=config.steps,
            guidance=config.guidance,
            top_k=config.top_k,
            temperature=config.temperature,
            first_frame=config.first_frame,
            seed=seed * 1_000_003 + start,
        )
        videos.append(generator.tokenizer.decode(codes).clamp(-1, 1))
    return torch.cat(videos)


def real_videos(num_clips: int, seed: int, resolution: int, num_frames: int) -> tuple[Tensor, list[str]]:
    dataset = ShapesDataset(num_clips, seed=seed, resolution=resolution, num_frames=num_frames, num_objects=1)
    items = [dataset[i] for i in range(num_clips)]
    return torch.stack([item["video"] for item in items]), [item["caption"] for item in items]


def pairwise_mean(x: Tensor) -> float:
    """Mean distance over the pairs of rows of ``x`` ``(k, d)``."""
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    return float((x[i] - x[j]).norm(dim=-1).mean())


@torch.no_grad()
def evaluate_generator(
    generator: Generator, config: EvaluateConfig, *, i3d: torch.nn.Module | None = None, clip: ClipScorer | None = None
) -> dict:
    """Adherence, Shapes-FVD / IS (+ I3D-FVD and CLIP score with those models), diversity, stories.

    See the module docstring for the protocol; ``i3d`` from `load_i3d`, ``clip`` a `ClipScorer`.
    """
    net = ShapesNet.from_pretrained()
    t, h, w = generator.codes_shape
    frames, resolution = generator.tokenizer.config.num_frames(t), h * generator.tokenizer.config.patch_size
    per_seed, samples, generate_s = [], None, 0.0
    for seed in track(range(config.seeds), description="evaluating generator (seeds)"):
        real, prompts = real_videos(config.num_clips, REAL_SEED + seed, resolution, frames)
        floor, _ = real_videos(config.num_clips, FLOOR_SEED + seed, resolution, frames)
        start = time.perf_counter()
        fake = generate_videos(generator, prompts, config=config, seed=seed)
        generate_s += time.perf_counter() - start
        (real_f, real_p), (fake_f, fake_p) = shapes_net_outputs(net, real), shapes_net_outputs(net, fake)
        floor_f, _ = shapes_net_outputs(net, floor)
        row = {
            "seed": seed,
            "adherence": score_clips(fake, prompts),
            "shapes_fvd": frechet_distance_of_features(real_f, fake_f),
            "shapes_fvd_floor": frechet_distance_of_features(real_f, floor_f),
            "shapes_is": inception_score(fake_p),
            "shapes_is_real": inception_score(real_p),
        }
        if i3d is not None:
            real_i3d = i3d_features(i3d, real, batch_size=config.batch_size)
            row["i3d_fvd"] = frechet_distance_of_features(
                real_i3d, i3d_features(i3d, fake, batch_size=config.batch_size)
            )
            row["i3d_fvd_floor"] = frechet_distance_of_features(
                real_i3d, i3d_features(i3d, floor, batch_size=config.batch_size)
            )
        if clip is not None:
            row["clip_score"] = float(clip.score(fake, prompts).mean())
            row["clip_score_real"] = float(clip.score(real, prompts).mean())
        per_seed.append(row)
        if samples is None:
            samples = (tensor_to_frames(fake[:6]), tensor_to_frames(real[:6]), prompts[:6])
    metrics = {
        "adherence": {
            key: mean_std([r["adherence"][key] for r in per_seed]) for key in ("color", "shape", "motion", "all")
        },
        **{key: mean_std([r[key] for r in per_seed]) for key in per_seed[0] if key not in ("seed", "adherence")},
        "generate_clips_per_s": config.seeds * config.num_clips / generate_s,
        "diversity": diversity(generator, net, config, resolution=resolution, frames=frames),
    }
    protocol = {
        "num_clips": config.num_clips,
        "clip_length": f"{frames} frames at {resolution}x{resolution} (trained latent grid {t}x{h}x{w})",
        "seeds": list(range(config.seeds)),
        "real_split": f"single-object Shapes, dataset seed {REAL_SEED} + s; floor: seed {FLOOR_SEED} + s",
        "prompts": "the real split's captions (one generated clip per real clip)",
        "sampling": (
            f"MaskGIT, steps={config.steps}, guidance={config.guidance}, top_k={config.top_k}, "
            f"temperature={config.temperature}, first_frame={config.first_frame}, batch {config.batch_size}"
        ),
        "pipeline": "decoded float tensors straight to the metrics (no mp4 round trip)",
        "aggregate": "mean ± sample std over seeds",
        "shapes_fvd": f"{NOT_COMPARABLE}; the network sees {net.config.resolution} px, trained on "
        f"{net.config.num_frames} frames",
        "i3d": config.i3d or "skipped (no i3d=PATH)",
        "clip_model": config.clip or "skipped (no clip=PATH)",
        "stories": f"{config.stories} one-object stories of 3 prompts (tokgen.metrics.story.shapes_stories, "
        f"seed {STORY_SEED}), {frames - 1} frames per prompt, story i sampled with seed i",
    }
    if config.stories:
        metrics["stories"] = evaluate_stories(generator, config, resolution=resolution, frames=frames)
    return {"kind": "generator", "metrics": metrics, "protocol": protocol, "per_seed": per_seed, "samples": samples}


def evaluate_stories(generator: Generator, config: EvaluateConfig, *, resolution: int, frames: int) -> dict:
    """Per-segment adherence and seam jumps of ``config.stories`` Shapes stories (`tokgen.metrics.story`)."""
    per_prompt = frames - 1  # the trained clip length minus its lone first frame: Generator.story's default
    stories = shapes_stories(config.stories, seed=STORY_SEED, frames_per_prompt=per_prompt, resolution=resolution)
    scores = []
    for i, prompts in enumerate(track(stories, description="evaluating stories")):
        story = generator.story(
            prompts,
            steps=config.steps,
            guidance=config.guidance,
            top_k=config.top_k,
            temperature=config.temperature,
            first_frame=config.first_frame,
            seed=i,
        )
        ranges = [(segment.start, segment.stop) for segment in story.segments]
        scores.append(score_story(story.frames, prompts, ranges, story.seams))
    return summarize(scores)


def diversity(
    generator: Generator, net: ShapesNet, config: EvaluateConfig, *, resolution: int, frames: int
) -> dict[str, float]:
    """How different the samples of one prompt are across seeds.

    Returns mean pairwise distances across seeds, per prompt then averaged: in ShapesNet feature space
    (``feature_l2``, beside ``real_feature_l2``, the same over real clips of different captions, as a
    scale) and in pixels (``pixel_l1``, mean absolute difference in [0, 1] units); ``distinct`` is the
    share of seed pairs whose clips differ at all. Prompts: the first captions of the real split of seed 0.
    """
    prompts = real_videos(config.diversity_prompts, REAL_SEED, resolution, frames)[1]
    runs = torch.stack(
        [
            generate_videos(generator, prompts, config=config, seed=DIVERSITY_SEED + s)
            for s in range(config.diversity_seeds)
        ],
        1,
    )
    features, _ = shapes_net_outputs(net, runs.flatten(0, 1))  # (prompts * seeds, d)
    features = features.view(len(prompts), config.diversity_seeds, -1)
    pixels = runs.flatten(2) / 2  # [-1, 1] -> distances in [0, 1] units
    i, j = torch.triu_indices(config.diversity_seeds, config.diversity_seeds, offset=1)
    pixel_l1 = (pixels[:, i] - pixels[:, j]).abs().mean(-1)  # (prompts, pairs)
    real, _ = real_videos(len(prompts), DIVERSITY_SEED, resolution, frames)
    return {
        "feature_l2": float(np.mean([pairwise_mean(f) for f in features])),
        "real_feature_l2": pairwise_mean(shapes_net_outputs(net, real)[0]),
        "pixel_l1": float(pixel_l1.mean()),
        "distinct": float((pixel_l1 > 0).float().mean()),
        "prompts": len(prompts),
        "seeds": config.diversity_seeds,
    }


def default_out(model: str | Path) -> Path:
    """A fresh folder ``runs/evaluate/<model name>-<time>`` (a suffix when that exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / "evaluate" / f"{Path(model).resolve().name}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def evaluate(model: str | Path, out: str | Path, config: EvaluateConfig, *, overwrite: bool = False) -> Path:
    """Evaluate a tokenizer or generator folder and write ``report.md``, ``metrics.json`` and PNGs into ``out``.

    ``i3d`` and ``clip`` in ``config`` apply to generators (a tokenizer's metrics compare with its input).
    """
    model = Path(model)
    kind = model_kind(model)
    # Everything that can fail on a path fails before the run folder is made.
    i3d = load_i3d(config.i3d) if config.i3d and kind == "generator" else None
    clip = ClipScorer.from_pretrained(config.clip) if config.clip and kind == "generator" else None
    out = prepare_run_dir(Path(out), overwrite=overwrite)
    if kind == "tokenizer":
        results = evaluate_tokenizer(VideoTokenizer.from_pretrained(model).eval(), config)
    else:
        results = evaluate_generator(Generator.from_pretrained(model), config, i3d=i3d, clip=clip)
    results["model"] = str(model.resolve())
    results["config"] = asdict(config)
    return write_report(out, results, overwrite=overwrite)

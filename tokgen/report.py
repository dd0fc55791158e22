"""The evaluation report: ``report.md`` (tables), PNG plots, ``samples.png`` and ``metrics.json``.

Every file is written atomically; a run folder that already holds files is refused unless
``overwrite`` is set. Plots use matplotlib's object API (no pyplot global state, no display).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tokgen.io.atomic import atomic_output
from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.metrics.shapes_net import NOT_COMPARABLE


def prepare_run_dir(out: Path, *, overwrite: bool) -> Path:
    """Create ``out``; refuse a folder with files in it unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"report folder '{out}' is a file")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"report folder '{out}' is not empty; pass overwrite=true or choose another out=")
    out.mkdir(parents=True, exist_ok=True)
    return out


def fmt(value: float | dict | None, digits: int = 3) -> str:
    """``1.234`` or ``1.234 ± 0.010`` for a ``{"mean", "std"}`` dict; ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _save_figure(path: Path, figure: Figure, *, overwrite: bool) -> None:
    figure.tight_layout()
    with atomic_output(path, overwrite=overwrite) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def _write_text(path: Path, text: str, *, overwrite: bool) -> None:
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)


# --- tokenizer ------------------------------------------------------------------------------------


def _tokenizer_figures(results: dict) -> dict[str, Figure]:
    curves = results["curves"]
    per_frame = Figure(figsize=(5, 3))
    ax = per_frame.add_subplot()
    ax.plot(np.arange(len(curves["psnr_per_frame"])), curves["psnr_per_frame"], marker="o")
    ax.set(xlabel="frame", ylabel="PSNR (dB)", title="PSNR per frame (frame 0 is coded alone)")
    histogram = Figure(figsize=(5, 3))
    ax = histogram.add_subplot()
    ax.hist(curves["psnr_per_clip"], bins=20)
    ax.set(xlabel="PSNR (dB)", ylabel="clips", title="PSNR per clip")
    codes = Figure(figsize=(5, 3))
    ax = codes.add_subplot()
    counts = np.asarray(curves["code_counts_sorted"], dtype=np.float64)
    ax.semilogy(np.arange(1, len(counts) + 1), np.maximum(counts, 0.5))
    ax.set(xlabel="code rank", ylabel="uses (log)", title="code frequency by rank")
    return {"psnr_per_frame.png": per_frame, "psnr_histogram.png": histogram, "code_frequency.png": codes}


def _tokenizer_markdown(results: dict) -> str:
    m = results["metrics"]
    rows = [
        ["PSNR (dB), mean ± std over clips", fmt(m["psnr_db"], 2)],
        ["SSIM, mean ± std over clips", fmt(m["ssim"], 4)],
        ["codebook usage (share of codes used)", fmt(m["codebook_usage"], 4)],
        [f"codebook perplexity (of {m['codebook_size']})", fmt(m["codebook_perplexity"], 1)],
        ["codes per clip", str(m["codes_per_clip"])],
        ["bits per pixel (log2 K per code)", fmt(m["bits_per_pixel"], 4)],
        ["bits per pixel (entropy bound, log2 perplexity)", fmt(m["bits_per_pixel_entropy"], 4)],
        ["encode: clips/s (frames/s)", f"{m['encode_clips_per_s']:.2f} ({m['encode_frames_per_s']:.1f})"],
        ["decode: clips/s (frames/s)", f"{m['decode_clips_per_s']:.2f} ({m['decode_frames_per_s']:.1f})"],
    ]
    if "shapes_rfvd" in m:
        a = m["recon_adherence"]
        rows.append(["Shapes-rFVD (inputs vs reconstructions; not published FVD)", fmt(m["shapes_rfvd"], 2)])
        rows.append(
            [
                "adherence of reconstructions: all (color / shape / motion)",
                f"{fmt(a['all'])} ({fmt(a['color'])} / {fmt(a['shape'])} / {fmt(a['motion'])})",
            ]
        )
    return "\n\n".join(
        [
            "# Tokenizer evaluation",
            f"Model: `{results['model']}`",
            "## Protocol\n\n" + table(["setting", "value"], [[k, str(v)] for k, v in results["protocol"].items()]),
            "## Metrics\n\n" + table(["metric", "value"], rows),
            "Throughput is wall time on the machine that ran this report and is noisy on a shared machine.",
            "## Plots\n\n![PSNR per frame](psnr_per_frame.png)\n![PSNR per clip](psnr_histogram.png)\n"
            "![code frequency](code_frequency.png)",
            "## Samples\n\nPairs of rows: input, then its reconstruction.\n\n![samples](samples.png)",
        ]
    )


# --- generator ------------------------------------------------------------------------------------


def _generator_figures(results: dict) -> dict[str, Figure]:
    m, per_seed = results["metrics"], results["per_seed"]
    adherence = Figure(figsize=(5, 3))
    ax = adherence.add_subplot()
    keys = ["color", "shape", "motion", "all"]
    ax.bar(keys, [m["adherence"][k]["mean"] for k in keys], yerr=[m["adherence"][k]["std"] for k in keys], capsize=4)
    ax.set(ylim=(0, 1), ylabel="accuracy", title="prompt adherence (mean ± std over seeds)")
    fvd = Figure(figsize=(5, 3))
    ax = fvd.add_subplot()
    seeds = np.arange(len(per_seed))
    ax.bar(seeds - 0.2, [r["shapes_fvd"] for r in per_seed], width=0.4, label="generated vs real")
    ax.bar(seeds + 0.2, [r["shapes_fvd_floor"] for r in per_seed], width=0.4, label="real vs real (floor)")
    ax.set(xticks=seeds, xlabel="seed", ylabel="Shapes-FVD", title="Shapes-FVD per seed (not published FVD)")
    ax.legend()
    return {"adherence.png": adherence, "shapes_fvd.png": fvd}


def _generator_markdown(results: dict) -> str:
    m, per_seed = results["metrics"], results["per_seed"]
    a = m["adherence"]
    summary = [
        ["prompt adherence: all attributes", fmt(a["all"]), "1 (ground truth)"],
        ["prompt adherence: color / shape / motion", " / ".join(fmt(a[k]) for k in ("color", "shape", "motion")), ""],
        [
            "Shapes-FVD (generated vs real)",
            fmt(m["shapes_fvd"], 2),
            f"floor (real vs real): {fmt(m['shapes_fvd_floor'], 2)}",
        ],
        ["Shapes-IS (max 120)", fmt(m["shapes_is"], 2), f"real clips: {fmt(m['shapes_is_real'], 2)}"],
    ]
    if "i3d_fvd" in m:
        summary.append(["I3D-FVD (published protocol)", fmt(m["i3d_fvd"], 2), f"floor: {fmt(m['i3d_fvd_floor'], 2)}"])
    if "clip_score" in m:
        summary.append(["CLIP score", fmt(m["clip_score"], 2), f"real clips: {fmt(m['clip_score_real'], 2)}"])
    summary.append(["generation speed (clips/s)", fmt(m["generate_clips_per_s"], 2), "noisy on a shared machine"])
    seed_keys = [k for k in per_seed[0] if k not in ("seed", "adherence")]
    seed_rows = [[str(r["seed"]), fmt(r["adherence"]["all"])] + [fmt(r[k], 2) for k in seed_keys] for r in per_seed]
    d = m["diversity"]
    diversity_rows = [
        [
            "ShapesNet feature L2 across seeds",
            fmt(d["feature_l2"]),
            f"real clips, mixed captions: {fmt(d['real_feature_l2'])}",
        ],
        ["pixel L1 across seeds ([0, 1] units)", fmt(d["pixel_l1"], 4), ""],
        ["share of seed pairs that differ", fmt(d["distinct"]), ""],
    ]
    return "\n\n".join(
        [
            "# Generator evaluation",
            f"Model: `{results['model']}`",
            "## Protocol\n\n" + table(["setting", "value"], [[k, str(v)] for k, v in results["protocol"].items()]),
            f"**Shapes-FVD and Shapes-IS** use {NOT_COMPARABLE}. Compare them only with each other, at the "
            "same protocol (N, clip length, seeds).",
            "## Summary (mean ± std over seeds)\n\n" + table(["metric", "generated", "reference"], summary),
            "## Per seed\n\n" + table(["seed", "adherence (all)", *seed_keys], seed_rows),
            f"## Diversity ({d['prompts']} prompts x {d['seeds']} seeds)\n\n"
            + table(["measure", "value", "reference"], diversity_rows),
            _stories_markdown(m.get("stories")),
            "## Plots\n\n![adherence](adherence.png)\n![Shapes-FVD](shapes_fvd.png)",
            "## Samples\n\nGenerated clips (seed 0) with their prompts, then the real clips those prompts came "
            "from.\n\n![samples](samples.png)",
        ]
    )


def _stories_markdown(stories: dict | None) -> str:
    if stories is None:
        return "## Stories\n\nNot measured (stories=0)."
    rows = [
        [str(i + 1), *(fmt(seg[k]) for k in ("color", "shape", "motion", "all"))]
        for i, seg in enumerate(stories["segments"])
    ]
    jump = stories["seam_jump"]
    return (
        f"## Stories ({stories['stories']} stories)\n\nStory accuracy (every segment right): "
        f"{fmt(stories['story_accuracy'])}.\n\n"
        + table(["segment", "color", "shape", "motion", "all"], rows)
        + f"\n\nSeam jumps (px the object moves across a window seam, {jump['count']} seen, "
        f"{jump['unseen']} unseen): mean {fmt(jump.get('mean'), 2)}, median {fmt(jump.get('median'), 2)}, "
        f"max {fmt(jump.get('max'), 2)}; typical frame-to-frame step elsewhere {fmt(stories['typical_step'], 2)}."
    )


def write_report(out: Path, results: dict, *, overwrite: bool = False) -> Path:
    """Write the report of `tokgen.evaluate` results into ``out``; returns the path of ``report.md``."""
    kind = results["kind"]
    samples = results.pop("samples")
    if kind == "tokenizer":
        figures, markdown = _tokenizer_figures(results), _tokenizer_markdown(results)
        inputs, recons = samples
        clips = [clip for pair in zip(inputs, recons, strict=True) for clip in pair]
        sheet = contact_sheet(
            clips,
            labels=[f"clip {i // 2} {'input' if i % 2 == 0 else 'reconstruction'}" for i in range(len(clips))],
            scale=2,
        )
    else:
        figures, markdown = _generator_figures(results), _generator_markdown(results)
        fake, real, prompts = samples
        labels = [f"generated: {p}" for p in prompts] + [f"real: {p}" for p in prompts]
        sheet = contact_sheet([*fake, *real], labels=labels, scale=2)
    for name, figure in figures.items():
        _save_figure(out / name, figure, overwrite=overwrite)
    save_png(out / "samples.png", sheet, overwrite=overwrite)
    _write_text(out / "metrics.json", json.dumps(results, indent=2) + "\n", overwrite=overwrite)
    _write_text(out / "report.md", markdown + "\n", overwrite=overwrite)
    return out / "report.md"

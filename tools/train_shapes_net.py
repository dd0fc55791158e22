"""Train ShapesNet, the feature network of Shapes-FVD / Shapes-IS, deterministically.

Every step renders a fresh batch of single-object Shapes clips (64 x 64, 17 frames; clip ``i`` is a
function of ``(seed, i)`` only), so no clip is seen twice and nothing is read from disk. Seeds, a
fixed thread count and deterministic algorithms make two runs on one machine write identical
weights. The result (``config.json`` with the training record and held-out accuracy, plus
``model.safetensors``) goes to ``tokgen/metrics/weights/shapes_net`` by default, where tokgen ships it.

    .venv/bin/python tools/train_shapes_net.py                 # the shipped network (minutes on a CPU)
    .venv/bin/python tools/train_shapes_net.py --out /tmp/net --steps 50
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import Progress

from tokgen.data.shapes import ShapesDataset, render
from tokgen.io.convert import frames_to_tensor
from tokgen.metrics.shapes_net import HEADS, ShapesNet, ShapesNetConfig, default_weights, scene_labels

HELDOUT_SEED = 1  # training clips come from the train seed; accuracy is measured on these


@dataclass
class TrainSettings:
    """How the shipped network is trained; stored in its ``config.json``."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 0
    resolution: int = 64  # clips are rendered at 64 x 64 (as generators see them) and resized by the net
    num_frames: int = 17
    heldout_clips: int = 512
    threads: int = 2  # float sums depend on the thread split: fixed for bitwise-equal reruns


def labelled_batch(dataset: ShapesDataset, indices: range) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips ``(b, 3, t, h, w)`` in [-1, 1] and labels ``(b, 3)`` (color, shape, motion) of ``indices``."""
    scenes = [dataset.scene(i) for i in indices]
    video = torch.cat([frames_to_tensor(render(scene)) for scene in scenes])
    return video, torch.tensor([scene_labels(scene) for scene in scenes])


def loss_and_accuracy(net: ShapesNet, video: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
    logits = net(video).logits
    loss = sum(F.cross_entropy(logits[name], labels[:, i]) for i, name in enumerate(HEADS))
    accuracy = {name: (logits[name].argmax(-1) == labels[:, i]).float().mean().item() for i, name in enumerate(HEADS)}
    return loss, accuracy


@torch.no_grad()
def heldout_accuracy(net: ShapesNet, settings: TrainSettings) -> dict[str, float]:
    """Per-head accuracy on clips of a seed never trained on."""
    data = ShapesDataset(settings.heldout_clips, seed=HELDOUT_SEED, **_shapes(settings))
    net.eval()
    hits = {name: 0.0 for name in HEADS}
    for start in range(0, len(data), 64):
        video, labels = labelled_batch(data, range(start, min(start + 64, len(data))))
        _, accuracy = loss_and_accuracy(net, video, labels)
        for name in HEADS:
            hits[name] += accuracy[name] * len(labels)
    return {name: round(hits[name] / len(data), 4) for name in HEADS}


def _shapes(settings: TrainSettings) -> dict:
    return {"resolution": settings.resolution, "num_frames": settings.num_frames, "num_objects": 1}


def train(settings: TrainSettings, net_config: ShapesNetConfig) -> tuple[ShapesNet, dict]:
    """Train from scratch; returns the network (eval mode) and the record saved beside its weights."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    torch.use_deterministic_algorithms(True)
    net = ShapesNet(net_config)
    data = ShapesDataset(settings.steps * settings.batch_size, seed=settings.seed, **_shapes(settings))
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=settings.steps)
    started = time.perf_counter()
    with Progress() as progress:
        task = progress.add_task("training ShapesNet", total=settings.steps)
        for step in range(settings.steps):
            net.train()
            b = settings.batch_size
            video, labels = labelled_batch(data, range(step * b, (step + 1) * b))
            loss, accuracy = loss_and_accuracy(net, video, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            progress.update(task, advance=1, description=f"training ShapesNet loss {loss.item():.3f}")
    record = {
        "settings": asdict(settings),
        "last_batch_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "heldout_accuracy": heldout_accuracy(net, settings),
        "heldout_seed": HELDOUT_SEED,
        "train_seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
    }
    return net.eval(), record


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = TrainSettings()
    parser.add_argument("--out", type=Path, default=default_weights())
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--heldout-clips", type=int, default=defaults.heldout_clips)
    parser.add_argument("--overwrite", action="store_true", help="replace the weights already in --out")
    args = parser.parse_args(argv)
    settings = TrainSettings(
        steps=args.steps, batch_size=args.batch_size, seed=args.seed, heldout_clips=args.heldout_clips
    )
    net, record = train(settings, ShapesNetConfig())
    out = net.save_pretrained(args.out, training=record, overwrite=args.overwrite)
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()[:16]
    print(f"held-out accuracy {record['heldout_accuracy']}; weights sha256 {digest}...; wrote {out}")
    return out


if __name__ == "__main__":
    main()

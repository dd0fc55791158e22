"""The ``tokgen`` command: a table of verbs, each mapped to one short function.

The Lightning verbs (``fit``, ``validate``, ``test``, ``predict``) compose ``conf/`` with Hydra
(shipped as ``tokgen.conf``) and call the matching ``Trainer`` method; ``run(cfg, verb)`` does that
and is what tests call with the real configs. The other verbs take ``key=value`` arguments into a
small typed dataclass. This is the only module that imports Hydra.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from functools import partial
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tokgen.commands import (
    CompressOptions,
    DecompressOptions,
    DemoOptions,
    EvaluateOptions,
    ExportOptions,
    GenerateOptions,
    InterpolateOptions,
    MakeShapesOptions,
    StoryOptions,
    compress,
    decompress,
    demo,
    evaluate,
    export,
    generate,
    interpolate,
    make_shapes,
    story,
)

LIGHTNING_VERBS = ("fit", "validate", "test", "predict")


# ------------------------------------------------------------------------------------ configs
def _register_schemas() -> None:
    """Typed dataclasses are the schema (and the one home of every default) of their config groups."""
    from hydra.core.config_store import ConfigStore

    from tokgen.text.factory import TextEncoderConfig
    from tokgen.tokenizer.config import TokenizerConfig, TokenizerTrainConfig
    from tokgen.transformer.config import TransformerConfig, TransformerTrainConfig

    store = ConfigStore.instance()
    store.store(group="tokenizer", name="schema", node=TokenizerConfig)
    store.store(group="transformer", name="schema", node=TransformerConfig)
    store.store(group="text", name="schema", node=TextEncoderConfig)
    store.store(group="schema", name="tokenizer_train", node=TokenizerTrainConfig)
    store.store(group="schema", name="transformer_train", node=TransformerTrainConfig)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (``key=value``, ``group=option``, ``+key=value``)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    _register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module("tokgen.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def is_launch_rank_zero() -> bool:
    """False in every process but the first of a multi-process launch (torchrun, srun, Lightning's own).

    Read from the launcher's environment, since the run folder is chosen before the Trainer exists.
    """
    rank = next((os.environ[k] for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK") if k in os.environ), "0")
    return int(rank) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def choose_run_dir(cfg: DictConfig, verb: str) -> Path:
    """A fresh run folder: ``runs/<name>/<verb>-<time>`` unless ``run_dir`` is set. Never an old run's."""
    if cfg.run_dir:
        path = Path(cfg.run_dir)
        # Other ranks of a launch find rank 0's folder already written; only rank 0 writes into it.
        if path.exists() and any(path.iterdir()) and is_launch_rank_zero():
            raise FileExistsError(f"run_dir {str(path)!r} exists and is not empty; a run never writes into an old run")
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = Path("runs") / str(cfg.name) / f"{verb}-{stamp}", 1
    while path.exists():
        n += 1
        path = Path("runs") / str(cfg.name) / f"{verb}-{stamp}-{n}"
    return path


def _quiet_lightning() -> None:
    """Drop console noise that says nothing about the run (advertising, upstream deprecations)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # We checkpoint the post-step weights on purpose (the tokenizer's manual optimisation).
    warnings.filterwarnings("ignore", message=r".*ModelCheckpoint with manual optimization.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "litlogger" not in r.getMessage())


def _set_matmul_precision(cfg: DictConfig) -> None:
    """Apply ``matmul_precision`` where training runs on a CUDA GPU (a CPU's fp32 matmuls stay exact)."""
    import torch

    on_gpu = str(cfg.trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda")
    if on_gpu and torch.cuda.is_available():
        torch.set_float32_matmul_precision(cfg.get("matmul_precision") or "highest")


def run(cfg: DictConfig, verb: str) -> Path:
    """Run one Lightning verb on a composed config; returns the run folder (with its ``config.yaml``)."""
    import lightning as L
    from hydra.utils import get_class, instantiate

    from tokgen.precision import resolve_precision

    if verb not in LIGHTNING_VERBS:
        raise ValueError(f"unknown Lightning verb {verb!r}; expected one of {LIGHTNING_VERBS}")
    if verb != "fit" and not cfg.ckpt_path:
        raise ValueError(
            f"tokgen {verb} needs ckpt_path=PATH (a Lightning checkpoint, e.g. runs/.../checkpoints/last.ckpt)"
        )
    if cfg.ckpt_path:  # a missing file, an export folder or a file carrying code: one clear line, nothing run
        from tokgen.export import check_checkpoint_path

        check_checkpoint_path(str(cfg.ckpt_path))
    _quiet_lightning()
    run_dir = choose_run_dir(cfg, verb)
    cfg = cfg.copy()
    cfg.run_dir = str(run_dir)
    if cfg.trainer.get("precision") == "auto":  # decided here, so config.yaml records what ran
        cfg.trainer.precision = resolve_precision("auto", cfg.trainer.get("accelerator", "auto"))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    _set_matmul_precision(cfg)

    # Build data and model first: a config mistake fails before any folder is made.
    datamodule = instantiate(cfg.data)
    if verb == "fit":
        model = instantiate(cfg.model)
    else:  # the architecture comes from the checkpoint, so a config preset can't mismatch it
        model = get_class(cfg.model._target_).load_from_checkpoint(cfg.ckpt_path, map_location="cpu", weights_only=True)
    if is_launch_rank_zero():  # the other ranks write nothing: checkpoints and logs come from rank 0
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    if not loggers:  # logger=none: Lightning refuses a learning-rate monitor with nothing to log to
        from lightning.pytorch.callbacks import LearningRateMonitor

        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    if verb == "fit":
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    elif verb == "validate":
        trainer.validate(model, datamodule=datamodule)
    elif verb == "test":
        trainer.test(model, datamodule=datamodule)
    else:
        outputs = trainer.predict(model, datamodule=datamodule)
        model.write_predictions(outputs, run_dir / "predictions")
    if trainer.is_global_zero:
        print(f"run folder: {run_dir}")
    return run_dir


def tokenize(cfg: DictConfig) -> Path:
    """Run an exported tokenizer and the text encoder over ``data.train``; write resumable token shards."""
    from hydra.utils import instantiate

    from tokgen.data.token_shards import write_token_shards
    from tokgen.text import TextEncoderConfig, build_text_encoder
    from tokgen.tokenizer.model import VideoTokenizer

    if not cfg.tokenize.tokenizer or not cfg.tokenize.out:
        raise ValueError("tokgen tokenize needs tokenize.tokenizer=DIR (an exported tokenizer) and tokenize.out=DIR")
    tokenizer = VideoTokenizer.from_pretrained(cfg.tokenize.tokenizer).eval()
    text_config = TextEncoderConfig(**OmegaConf.to_container(cfg.text, resolve=True))
    text_encoder = build_text_encoder(text_config).eval()

    def encode_text(prompts: list[str]):
        embedding = text_encoder.encode(prompts)
        return embedding.emb, embedding.mask

    sources = {
        "tokenizer": str(Path(cfg.tokenize.tokenizer).resolve()),
        "tokenizer_config": tokenizer.config.to_dict(),
        "text": OmegaConf.to_container(cfg.text, resolve=True),
        "data": OmegaConf.to_container(cfg.data.train, resolve=True),
    }
    out = write_token_shards(
        instantiate(cfg.data.train),
        cfg.tokenize.out,
        encode_video=tokenizer.encode,
        encode_text=encode_text,
        codebook_size=tokenizer.config.codebook_size,
        shard_size=cfg.tokenize.shard_size,
        batch_size=cfg.tokenize.batch_size,
        sources=sources,
        temporal_patch=tokenizer.config.temporal_patch,
    )
    print(f"token shards: {out}")
    if cfg.tokenize.get("stream"):  # ++tokenize.stream=DIR: the same clips as streaming shards (data=stream)
        from tokgen.data.streaming import write_stream
        from tokgen.data.token_shards import TokenShardDataset

        shards = TokenShardDataset(out, max_text_len=cfg.transformer.max_text_len)
        # The first 64 clips held out for validation, as data=tokens does.
        print(f"streaming shards: {write_stream(shards, cfg.tokenize.stream, val_clips=min(64, len(shards) // 2))}")
    return out


# ------------------------------------------------------------------------------ other verbs
def parse_options(schema: type, args: Sequence[str], verb: str):
    """``key=value`` arguments into the verb's dataclass; unknown keys and missing values are clear errors."""
    known = {f.name: f for f in fields(schema)}
    values: dict[str, object] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in known:
            raise SystemExit(
                f"tokgen {verb}: unexpected argument {arg!r}; expected key=value with key in {sorted(known)}"
            )
        if not value and known[key].default is not None:  # OmegaConf reads `key=` as null
            raise SystemExit(f"tokgen {verb}: {key}= has no value; give one, or leave {key} out for its default")
        values[key] = value
    merged = OmegaConf.merge(
        OmegaConf.structured(schema), OmegaConf.from_dotlist([f"{k}={v}" for k, v in values.items()])
    )
    missing = [name for name in known if OmegaConf.is_missing(merged, name)]
    if missing:
        raise SystemExit(f"tokgen {verb}: missing required {', '.join(f'{m}=...' for m in missing)}")
    return OmegaConf.to_object(merged)


# ------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Verb:
    help: str
    schema: type | None  # None: configured by Hydra, the function gets the composed config
    function: Callable


VERBS: dict[str, Verb] = {
    "fit": Verb("train a model (Lightning Trainer.fit) on the composed config", None, partial(run, verb="fit")),
    "validate": Verb("validation metrics of a checkpoint (ckpt_path=...)", None, partial(run, verb="validate")),
    "test": Verb("test metrics of a checkpoint (ckpt_path=...)", None, partial(run, verb="test")),
    "predict": Verb("run a checkpoint over the predict set and write its outputs", None, partial(run, verb="predict")),
    "tokenize": Verb("encode a dataset into token shards (codes + captions + text embeddings)", None, tokenize),
    "export": Verb(
        "Lightning checkpoint -> pickle-free folder (config.json + model.safetensors)", ExportOptions, export
    ),
    "compress": Verb("video -> .tok file of entropy-coded tokenizer codes", CompressOptions, compress),
    "decompress": Verb(".tok file -> video, decoded by the tokenizer that wrote it", DecompressOptions, decompress),
    "generate": Verb("clips for a prompt (or a prompts file) from a generator folder", GenerateOptions, generate),
    "story": Verb("one video across a list of prompts (+ contact sheet and JSON sidecar)", StoryOptions, story),
    "interpolate": Verb("frames between two images or clips, sampled under a prompt", InterpolateOptions, interpolate),
    "make-shapes": Verb("write a Shapes dataset to disk as mp4 + captions.jsonl", MakeShapesOptions, make_shapes),
    "evaluate": Verb("measure a tokenizer or generator folder and write a report", EvaluateOptions, evaluate),
    "demo": Verb(
        "the main demo: train or reuse a small tokenizer and generator on Shapes, write a story", DemoOptions, demo
    ),
}


def _usage() -> str:
    width = max(map(len, VERBS))
    lines = [f"  {name:<{width}}  {verb.help}" for name, verb in VERBS.items()]
    return (
        "usage: tokgen <verb> [key=value ...]\n\n"
        "Token-based video generation: C-ViViT tokenizer, masked transformer, story mode.\n\nverbs:\n"
        + "\n".join(lines)
        + "\n\n`tokgen <verb> --help` shows a verb's options (for Lightning verbs: the composed config).\n"
        "Lightning verbs take Hydra overrides: tokgen fit experiment=tokenizer_tiny trainer.max_steps=100\n"
    )


def _verb_help(name: str, verb: Verb, args: Sequence[str]) -> str:
    if verb.schema is None:
        cfg = compose_config([a for a in args if a not in ("--help", "-h")])
        from importlib.resources import files

        groups = sorted(p.name for p in files("tokgen.conf").iterdir() if p.is_dir() and not p.name.startswith("_"))
        return (
            f"tokgen {name} [overrides]: {verb.help}\n"
            f"config groups (choose with group=option): {', '.join(groups) or 'see conf/'}\n"
            f"composed config:\n\n{OmegaConf.to_yaml(cfg)}"
        )
    doc = inspect.cleandoc(verb.schema.__doc__ or "")  # the first line is not indented like the rest
    opts = "\n".join(f"  {f.name}={'(required)' if f.default is MISSING else f.default}" for f in fields(verb.schema))
    return f"{doc}\n\noptions:\n{opts}\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``tokgen`` console script and ``python -m tokgen``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    name, rest = args[0], args[1:]
    verb = VERBS.get(name)
    if verb is None:
        raise SystemExit(f"tokgen: unknown verb {name!r}\n\n{_usage()}")
    if "--help" in rest or "-h" in rest:
        print(_verb_help(name, verb, rest))
        return
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from tokgen.memory import retain_freed_memory

    retain_freed_memory()  # buffers made every step stay mapped: no page faults per step (tokgen/memory.py)
    user_errors = (
        FileExistsError,
        FileNotFoundError,
        IsADirectoryError,
        ValueError,
        FloatingPointError,  # a diverged run (tokgen.callbacks.FiniteCheck): the message says what to do
        HydraException,
        OmegaConfBaseException,
    )
    try:
        if verb.schema is None:
            if "--cfg" in rest:  # Hydra's spelling: print the composed config and stop
                rest = [a for a in rest if a not in ("--cfg", "job", "all")]
                print(OmegaConf.to_yaml(compose_config(rest)))
                return
            verb.function(compose_config(rest))
        else:
            verb.function(parse_options(verb.schema, rest, name))
    except user_errors as err:
        # A user's mistake gets one clear line; TOKGEN_DEBUG=1 shows the traceback.
        if os.environ.get("TOKGEN_DEBUG"):
            raise
        raise SystemExit(f"tokgen {name}: error: {err}") from None


if __name__ == "__main__":
    main()

"""Lightning checkpoint -> pickle-free export folder (``config.json`` + ``model.safetensors``).

Lightning checkpoints carry optimiser state and training-only parts (discriminator, perceptual
network); an export keeps only the model users load with ``from_pretrained``. The checkpoint is
read with ``weights_only=True``: tensors and primitive hyperparameters, never arbitrary objects.
"""

from __future__ import annotations

from pathlib import Path

import torch


def check_checkpoint_path(ckpt_path: str) -> None:
    """Before a Lightning verb runs: a local ``ckpt_path`` must be a tokgen checkpoint that loads without pickle.

    Reads only the checkpoint's structure (tensors are memory-mapped, not read). Lightning's own
    values (``last``, ``best``, ...) and remote URLs are left to Lightning.
    """
    if "://" in ckpt_path or ckpt_path in ("last", "best", "hpc", "registry") or ckpt_path.startswith("registry:"):
        return
    read_lightning_checkpoint(ckpt_path, mmap=True)


def read_lightning_checkpoint(path: str | Path, *, mmap: bool = False) -> dict:
    """Load a Lightning ``.ckpt`` without unpickling code; clear errors for the usual mix-ups.

    Args:
        mmap: map the tensors instead of reading them (for checking a file cheaply).
    """
    path = Path(path)
    if path.is_dir():
        hint = (
            " (it is already an export folder: load it with from_pretrained)" if (path / "config.json").exists() else ""
        )
        raise IsADirectoryError(f"{path}: expected a Lightning checkpoint file (.ckpt), got a folder{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises UnpicklingError/RuntimeError variants
        if "Weights only load failed" in str(err):  # torch's advice (weights_only=False) is not ours to give
            raise ValueError(
                f"{path}: refused: it holds pickled objects besides tensors and plain values, and tokgen never "
                "unpickles those (they could run code); only checkpoints written by `tokgen fit` load"
            ) from None
        raise ValueError(f"{path}: not a loadable Lightning checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict) or "state_dict" not in data or "hyper_parameters" not in data:
        raise ValueError(f"{path}: not a tokgen Lightning checkpoint (no state_dict / hyper_parameters)")
    return data


def export_checkpoint(ckpt: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the model inside a Lightning checkpoint to ``out`` as ``config.json`` + ``model.safetensors``."""
    data = read_lightning_checkpoint(ckpt)
    hparams = data["hyper_parameters"]
    state = {k.removeprefix("model."): v for k, v in data["state_dict"].items() if k.startswith("model.")}
    if "tokenizer" in hparams and "transformer" not in hparams:
        from tokgen.tokenizer.config import TokenizerConfig
        from tokgen.tokenizer.model import VideoTokenizer

        model = VideoTokenizer(TokenizerConfig.from_dict(hparams["tokenizer"]))
    elif "transformer" in hparams:
        return _export_generator(ckpt, hparams, data["state_dict"], Path(out), overwrite=overwrite)
    else:
        raise ValueError(f"{ckpt}: don't know how to export a checkpoint with hyperparameters {sorted(hparams)}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{ckpt}: weights do not match the checkpoint's own config: {err}") from err
    model.save_pretrained(out, overwrite=overwrite)
    return Path(out)


def _export_generator(ckpt: str | Path, hparams: dict, state: dict, out: Path, *, overwrite: bool) -> Path:
    """A transformer checkpoint -> a generator folder (``tokenizer/`` copied, ``transformer/`` written)."""
    from tokgen.generator import Generator
    from tokgen.text import TextEncoderConfig, build_text_encoder
    from tokgen.tokenizer.model import VideoTokenizer
    from tokgen.transformer.config import TransformerConfig
    from tokgen.transformer.model import MaskedTransformer

    if not hparams.get("tokenizer"):
        raise ValueError(f"{ckpt}: the transformer checkpoint names no tokenizer folder (model.tokenizer=DIR)")
    if not hparams.get("codes_shape"):
        raise ValueError(f"{ckpt}: the checkpoint does not record the latent grid it was trained on")
    transformer = MaskedTransformer(TransformerConfig.from_dict(hparams["transformer"]))
    text_encoder = build_text_encoder(TextEncoderConfig(**hparams["text"]))
    try:
        transformer.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
        text_state = {k.removeprefix("text_encoder."): v for k, v in state.items() if k.startswith("text_encoder.")}
        if text_state:
            text_encoder.load_state_dict(text_state)
    except RuntimeError as err:
        raise ValueError(f"{ckpt}: weights do not match the checkpoint's own config: {err}") from err
    generator = Generator(
        VideoTokenizer.from_pretrained(hparams["tokenizer"]),
        transformer,
        text_encoder,
        codes_shape=tuple(hparams["codes_shape"]),
        schedule=hparams["train"]["mask_schedule"],
        text_config=hparams["text"],
    )
    return generator.save_pretrained(out, overwrite=overwrite)

"""What a generator folder must hold, checked once where `Generator.from_pretrained` reads it.

A generator folder is ``tokenizer/`` + ``transformer/`` (each ``config.json`` + ``model.safetensors``).
The transformer's ``config.json`` records the geometry of the tokenizer it was trained with, so a
tokenizer swapped for another kind (other patches, codebook, quantizer) is refused instead of
decoding its codes into other pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch

# What the transformer's codes mean: a tokenizer differing in these decodes them into other pixels.
TOKENIZER_GEOMETRY = ("codebook_size", "patch_size", "temporal_patch", "channels", "quantizer")


def tokenizer_geometry(tokenizer_config: dict) -> dict:
    """The fields of a tokenizer config that the transformer's codes depend on."""
    return {key: tokenizer_config[key] for key in TOKENIZER_GEOMETRY}


def generator_folder(directory: str | Path) -> Path:
    """``directory`` as a Path; a file (e.g. a Lightning ``.ckpt``) or a missing path is refused clearly."""
    directory = Path(directory)
    if directory.is_file():
        raise ValueError(
            f"{directory} is a file, expected a generator folder (tokenizer/ + transformer/); "
            f"`tokgen export ckpt={directory} out=DIR` makes one from a transformer's Lightning checkpoint"
        )
    if not directory.is_dir():
        raise FileNotFoundError(f"generator folder {directory} does not exist (expected tokenizer/ + transformer/)")
    if (directory / "config.json").is_file() and not (directory / "tokenizer").exists():
        raise ValueError(
            f"{directory} is one model's export (config.json + model.safetensors), not a generator folder; "
            f"a generator folder holds tokenizer/ and transformer/ (`tokgen export` of a transformer checkpoint)"
        )
    return directory


def check_generator_parts(
    directory: Path,
    config: dict,
    state: dict[str, torch.Tensor],
    tokenizer: torch.nn.Module,
    transformer: torch.nn.Module,
    text_encoder: torch.nn.Module,
) -> None:
    """The parts fit: tokenizer geometry, codebook, latent grid, text width, no tensor that belongs to no part.

    Checked before the weights are loaded, whose errors would say less.

    Args:
        directory: the generator folder (named in messages).
        config: ``transformer/config.json``'s config.
        state: ``transformer/model.safetensors``.
        tokenizer, transformer, text_encoder: the parts, built from their configs.
    """
    recorded = config.get("tokenizer")  # absent in folders written before it was recorded
    found = tokenizer.config.to_dict()
    if recorded:
        diff = [f"{k}={v!r} (tokenizer/ has {found.get(k)!r})" for k, v in recorded.items() if found.get(k) != v]
        if diff:
            raise ValueError(
                f"{directory}: the transformer was trained on codes of a tokenizer with {', '.join(diff)}; "
                "put the tokenizer it was trained with in tokenizer/"
            )
    try:  # the codebook and the latent grid, as Generator checks them, but naming the folder
        shape = tuple(config.get("codes_shape") or ())
        transformer.check_tokenizer(found["codebook_size"], shape, tokenizer.config.code_levels)
    except ValueError as err:
        raise ValueError(f"{directory}: {err}") from None
    if text_encoder.dim != transformer.config.text_dim:
        raise ValueError(
            f"{directory / 'transformer'}: text encoder width {text_encoder.dim} ({config['text'].get('kind')}) "
            f"does not match the transformer's text_dim {transformer.config.text_dim}"
        )
    stray = sorted(k for k in state if not k.startswith(("model.", "text_encoder.")))
    if stray:
        raise ValueError(
            f"{directory / 'transformer'}: model.safetensors holds tensors that belong to no part: "
            f"{stray[:5]}{' ...' if len(stray) > 5 else ''} (expected names starting 'model.' or 'text_encoder.')"
        )

"""tokgen: autoregressive, token-based video generation (C-ViViT tokenizer, masked transformer, story mode)."""

__version__ = "0.1.0"

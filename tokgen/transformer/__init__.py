"""tokgen.transformer."""

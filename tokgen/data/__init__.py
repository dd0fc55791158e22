"""tokgen.data."""

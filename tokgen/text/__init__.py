"""tokgen.text."""

"""tokgen.metrics."""

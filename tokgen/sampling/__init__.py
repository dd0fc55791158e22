"""tokgen.sampling."""

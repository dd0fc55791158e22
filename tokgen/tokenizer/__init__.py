"""tokgen.tokenizer."""

"""Models: identify and load teachers (GGUF, directories, hub ids), check tokenizers, build students."""

"""Training data: corpora (text, JSONL, chat, Parquet) and sets written by `distill generate`."""

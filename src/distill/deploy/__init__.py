"""Deploying a student: exports a runtime serves (`export`, `gguf_writer`), checked by an independent reader
(`check`)."""

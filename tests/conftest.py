"""Shared fixtures: the real default-teacher tokenizer and tiny random models built on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tokenizer():
    from distill.models import load_tokenizer

    return load_tokenizer("default")


def _tiny_dir(out: Path, tokenizer, hidden: int, layers: int, seed: int, title: str) -> Path:
    """A tiny random Llama on the real tokenizer, saved as safetensors with an Apache-2.0 model card."""
    from distill.students import fresh_llama

    model = fresh_llama(tokenizer, hidden_size=hidden, num_layers=layers, num_heads=2, seed=seed)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(f"---\nlicense: apache-2.0\n---\n# {title}\n")
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random Llama (hidden 32, 2 layers) with the real SmolLM2 tokenizer, saved as safetensors."""
    return _tiny_dir(tmp_path_factory.mktemp("tiny"), tokenizer, 32, 2, 0, "tiny test model")


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, tokenizer) -> Path:
    """A second tiny random Llama (hidden 48, 3 layers), used as a stand-in teacher."""
    return _tiny_dir(tmp_path_factory.mktemp("tiny_teacher"), tokenizer, 48, 3, 1, "tiny test teacher")


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    """A small plain-text corpus (a few Shakespeare plays' openings)."""
    from distill.data import read_text, shakespeare_files

    out = tmp_path_factory.mktemp("text") / "corpus.txt"
    out.write_text("\n".join(read_text(p)[:4000] for p in shakespeare_files()[:6]))
    return out

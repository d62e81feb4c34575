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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random Llama (hidden 32, 2 layers) with the real SmolLM2 tokenizer, saved as safetensors."""
    from distill.students import fresh_llama

    out = tmp_path_factory.mktemp("tiny")
    model = fresh_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=0)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny test model\n")
    return out


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, tokenizer) -> Path:
    """A second tiny random Llama (hidden 48, 3 layers), used as a stand-in teacher."""
    from distill.students import fresh_llama

    out = tmp_path_factory.mktemp("tiny_teacher")
    model = fresh_llama(tokenizer, hidden_size=48, num_layers=3, num_heads=2, seed=1)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny test teacher\n")
    return out


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    """A small plain-text corpus (a few Shakespeare plays' openings)."""
    from distill.data import read_text, shakespeare_files

    out = tmp_path_factory.mktemp("text") / "corpus.txt"
    out.write_text("\n".join(read_text(p)[:4000] for p in shakespeare_files()[:6]))
    return out

"""Fixtures for the store tests: a tiny corpus, a tiny teacher with peaked distributions, a captured store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from distill.config import DataConfig

ROWS = [f"Line {i}: the quick brown fox jumps over the lazy dog, {i * 7} times. To be, or not to be, that is "
        f"the question number {i}." for i in range(10)]


@pytest.fixture(scope="session")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store_data") / "rows.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ROWS) + "\n")
    return path


@pytest.fixture(scope="session")
def data_cfg(data_file) -> DataConfig:
    return DataConfig(path=str(data_file), seq_len=16, heldout_fraction=0.2)


@pytest.fixture(scope="session")
def sharp_teacher_dir(tmp_path_factory, tiny_teacher_dir, tokenizer) -> Path:
    """The tiny random teacher with its final norm scaled up, so its distributions are peaked like a real
    model's (top-k mass well above 0, spans of many nats) instead of nearly uniform."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_teacher_dir, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.mul_(40.0)
    out = tmp_path_factory.mktemp("sharp_teacher")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def settings_factory(data_cfg, sharp_teacher_dir):
    from distill.store import CaptureSettings

    def make(out: Path, **kw) -> CaptureSettings:
        base = dict(data=data_cfg, out=str(out), teacher=str(sharp_teacher_dir), top_k=8, shard_size=5,
                    batch_size=3, chunk_size=7, device="cpu")
        base.update(kw)
        return CaptureSettings(**base)

    return make


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory, settings_factory) -> Path:
    """A finished store (k=8, shards of 5 sequences), shared read-only by the tests."""
    from distill.store import run_capture

    out = tmp_path_factory.mktemp("stores") / "main"
    result = run_capture(settings_factory(out))
    assert result.manifest is not None
    return out


@pytest.fixture
def store_copy(tmp_path, store_dir) -> Path:
    """A private copy of the finished store that a test may damage."""
    dst = tmp_path / "copy"
    shutil.copytree(store_dir, dst)
    return dst

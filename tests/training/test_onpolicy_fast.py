"""The on-policy fast path: the same samples as transformers' `generate` for a fixed seed, and its figures in the
metrics."""

from __future__ import annotations

import pytest
import torch

from distill.config import load_config
from distill.models.lora import apply_lora
from distill.models.students import fresh_llama
from distill.training.loop import train
from distill.training.onpolicy import sample_continuations, sample_static


@pytest.fixture(scope="module")
def prompts(text_file, tokenizer):
    ids = tokenizer(text_file.read_text()[:3000]).input_ids
    return torch.tensor([ids[i * 40: i * 40 + 24] for i in range(3)])  # 3 real prompts of 24 tokens


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_same_samples_as_generate(tokenizer, prompts, temperature):
    student = fresh_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=3).train()
    slow = sample_continuations(student, prompts, 12, temperature, tokenizer.eos_token_id, seed=11)
    fast = sample_static(student, prompts, 12, temperature, seed=11)
    assert fast.shape == slow.shape == (3, 36)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast, sample_static(student, prompts, 12, temperature, seed=12))  # the seed matters
    assert student.training  # put back as it was


def test_same_samples_with_a_lora_student(tokenizer, prompts):
    from distill.config import LoraConfig

    student = apply_lora(fresh_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=4), LoraConfig())
    slow = sample_continuations(student, prompts, 8, 1.0, tokenizer.eos_token_id, seed=5)
    assert torch.equal(sample_static(student, prompts, 8, 1.0, seed=5), slow)


def test_metrics_have_sampling_share_and_tokens_per_second(tmp_path, tiny_teacher_dir, text_file):
    cfg = load_config(None, [
        f"teacher.model={tiny_teacher_dir}", f"data.path={text_file}", "data.seq_len=32",
        "student.hidden_size=32", "student.num_layers=2", "student.num_heads=2", "train.steps=2",
        "train.batch_size=2", "train.progress=false", "train.eval_every=100", "train.eval_sequences=2",
        "train.on_policy_fraction=1.0", "train.sample_max_new_tokens=8", "loss.chunk_size=32",
        f"output_dir={tmp_path / 'student'}"])
    rows = train(cfg).history
    assert all(0 < r["sampling_share"] < 1 and r["sample_tokens_per_s"] > 0 for r in rows)

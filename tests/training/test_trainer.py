"""End-to-end training on tiny models: output directory, metrics, student constructions, checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.config import load_config
from distill.errors import DistillError
from distill.training.loop import train


def tiny_config(tmp_path: Path, teacher: Path, data: Path, *extra: str):
    base = [
        f"teacher.model={teacher}", f"data.path={data}", "data.seq_len=32", "student.hidden_size=32",
        "student.num_layers=2", "student.num_heads=2", "train.steps=4", "train.batch_size=4",
        "train.eval_every=2", "train.eval_sequences=4", "train.checkpoint_every=2", "train.progress=false",
        "train.warmup_steps=1", "loss.chunk_size=16", f"output_dir={tmp_path / 'student'}",
    ]
    return load_config(None, base + list(extra))


def test_trains_and_writes_a_loadable_student(tmp_path, tiny_teacher_dir, text_file):
    cfg = tiny_config(tmp_path, tiny_teacher_dir, text_file, "loss.ce_weight=0.5", "train.steps=6")
    result = train(cfg)
    out = result.output_dir
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "loss.png", "metrics.jsonl",
                 "lineage.json", "generation_config.json"):
        assert (out / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert all({"kd", "ce", "loss"} <= r.keys() for r in rows)
    # the logged total is the weighted sum of the terms
    assert abs(rows[0]["loss"] - (rows[0]["kd"] + 0.5 * rows[0]["ce"])) < 1e-4
    assert "heldout_kl" in rows[-1] and rows[-1]["heldout_kl"] > 0
    card = (out / "README.md").read_text()
    assert str(tiny_teacher_dir) in card and "heldout_kl" in card
    assert not list(out.parent.glob(".student.tmp-*")), "temporary directory left behind"


def test_kd_lowers_heldout_kl(tmp_path, tiny_teacher_dir, text_file):
    cfg = tiny_config(tmp_path, tiny_teacher_dir, text_file, "train.steps=12", "train.lr=0.01",
                      "train.eval_every=1")
    rows = train(cfg).history
    assert rows[-1]["heldout_kl"] < rows[0]["heldout_kl"]


def test_existing_output_is_not_overwritten(tmp_path, tiny_teacher_dir, text_file):
    cfg = tiny_config(tmp_path, tiny_teacher_dir, text_file)
    (tmp_path / "student").mkdir()
    with pytest.raises(DistillError, match="already exists"):
        train(cfg)


def test_layer_subset_student(tmp_path, tiny_teacher_dir, text_file):
    cfg = tiny_config(tmp_path, tiny_teacher_dir, text_file, "student.init=layers", "student.layers=[0, 2]",
                      "train.steps=2")
    out = train(cfg).output_dir
    student = AutoModelForCausalLM.from_pretrained(out)
    teacher = AutoModelForCausalLM.from_pretrained(tiny_teacher_dir)
    assert student.config.num_hidden_layers == 2
    assert student.config.hidden_size == teacher.config.hidden_size


def test_pretrained_student(tmp_path, tiny_teacher_dir, tiny_model_dir, text_file):
    cfg = tiny_config(tmp_path, tiny_teacher_dir, text_file, "student.init=pretrained",
                      f"student.model={tiny_model_dir}", "train.steps=2")
    out = train(cfg).output_dir
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert after.keys() == before.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the pretrained student did not train"


def test_nan_loss_is_a_clear_error(tmp_path, tiny_teacher_dir, text_file, monkeypatch):
    cfg = tiny_config(tmp_path, tiny_teacher_dir, text_file)
    from distill.training.module import StudentLoss

    real = StudentLoss.forward

    def poisoned(self, batch, positions, signal, normalizer):
        loss, stats = real(self, batch, positions, signal, normalizer)
        stats["kd_sum"] = float("nan")
        return loss * float("nan"), stats

    monkeypatch.setattr(StudentLoss, "forward", poisoned)
    with pytest.raises(DistillError, match="NaN"):
        train(cfg)
    assert not (tmp_path / "student").exists(), "a failed run must not leave a finished-looking student"

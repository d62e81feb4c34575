"""Cross-tokenizer distillation through the real trainer: a teacher on another tokenizer, a student on
SmolLM2's; each sees its own tokenization, and the student is saved with its own tokenizer."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from distill.config import load_config
from distill.errors import DistillError
from distill.training.loop import train


@pytest.fixture(scope="module")
def other_teacher_dir(tmp_path_factory, teacher_tok, tiny_teacher):
    out = tmp_path_factory.mktemp("other_tok_teacher")
    tiny_teacher.save_pretrained(out, safe_serialization=True)
    teacher_tok.save_pretrained(out)
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    return out


@pytest.mark.parametrize("method", ["align", "uld"])
def test_cross_tokenizer_training(tmp_path, other_teacher_dir, text_file, method):
    cfg = load_config(None, [
        f"teacher.model={other_teacher_dir}", "student.tokenizer=default", f"data.path={text_file}",
        "data.seq_len=32", "student.hidden_size=32", "student.num_layers=1", "student.num_heads=2",
        "train.steps=2", "train.batch_size=2", "train.progress=false", "train.eval_every=2",
        "train.eval_sequences=2", f"loss.cross_tokenizer={method}", "loss.cross_top_k=8", "loss.ce_weight=1",
        "loss.chunk_size=32", f"output_dir={tmp_path / 'student'}"])
    result = train(cfg)
    assert all(r["kd"] > 0 for r in result.history)
    saved = AutoTokenizer.from_pretrained(result.output_dir)
    assert len(saved) == 49152, "the student keeps its own tokenizer"


def test_other_tokenizer_without_cross_mode_is_refused(tmp_path, other_teacher_dir, text_file):
    with pytest.raises(DistillError, match="cross_tokenizer"):
        load_config(None, ["student.tokenizer=default"])
    cfg = load_config(None, [f"teacher.model={other_teacher_dir}", "student.init=pretrained",
                             "student.model=default", f"data.path={text_file}", "data.seq_len=32",
                             f"output_dir={tmp_path / 's'}"])
    with pytest.raises(DistillError, match="not compatible"):
        train(cfg)

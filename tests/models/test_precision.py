"""teacher.precision: the lower-precision teacher's fidelity figure against a direct computation, the run refused
above the limit, fp32 left exact, and the compiled teacher falling back to eager."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.config import DataConfig, load_config
from distill.data.corpus import load_corpus
from distill.errors import DistillError
from distill.models import fast
from distill.models.precision import check_fidelity, fidelity, lower_precision
from distill.signals import LiveTeacher

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_teacher_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def heldout(text_file, tokenizer):
    return load_corpus(DataConfig(path=str(text_file), seq_len=32), tokenizer).heldout[:6]


def _direct_kl(exact, lower, sequences, batch_size: int = 4) -> float:
    """KL(exact ‖ lower) per scored token from the two models' full logits, in float64. The same batches as the
    code under test (an int8 model's activation scales are per batch); the packed sequences need no padding."""
    total, n = 0.0, 0
    for start in range(0, len(sequences), batch_size):
        group = sequences[start: start + batch_size]
        ids = torch.stack([ex["input_ids"] for ex in group])
        mask = torch.stack([ex["loss_mask"] for ex in group])
        with torch.no_grad():
            p = torch.log_softmax(exact(ids).logits.double(), -1)[mask]
            q = torch.log_softmax(lower(ids).logits.double(), -1)[mask]
        total += float((p.exp() * (p - q)).sum())
        n += int(mask.sum())
    return total / n


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_fidelity_matches_a_direct_computation(precision, teacher, heldout, tokenizer):
    lower = lower_precision(teacher, precision, CPU)
    assert lower is not teacher and next(teacher.parameters()).dtype == torch.float32  # the exact one untouched
    vocab = len(tokenizer)
    got = fidelity(LiveTeacher(teacher, vocab), LiveTeacher(lower, vocab), heldout, tokenizer.pad_token_id,
                   precision, batch_size=4, chunk_size=16)
    want = _direct_kl(teacher, lower, heldout)
    assert got.tokens == sum(int(ex["loss_mask"].sum()) for ex in heldout)
    assert want > 0  # the lower precision does change the distribution: the check can fail
    assert got.kl_per_token == pytest.approx(want, rel=1e-3, abs=1e-7)
    assert 0 < got.top1_agreement <= 1


def test_int8_quantizes_only_the_decoder_linears(teacher):
    lower = lower_precision(teacher, "int8", CPU)
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    modules = dict(lower.named_modules())
    quantized = {name for name, m in modules.items() if isinstance(m, DynamicLinear)}
    assert quantized == {name for name, m in teacher.named_modules()
                         if isinstance(m, torch.nn.Linear) and name.startswith("model.layers.")}
    assert type(modules["lm_head"]) is torch.nn.Linear and modules["lm_head"].weight.dtype == torch.float32
    assert lower.get_input_embeddings().weight.dtype == torch.float32


def test_fp32_is_the_model_itself(teacher):
    assert fast.scoring_teacher(teacher, precision="fp32") is teacher


def test_check_refuses_above_the_limit(teacher, heldout, tokenizer):
    vocab = len(tokenizer)
    got = fidelity(LiveTeacher(teacher, vocab), LiveTeacher(lower_precision(teacher, "int8", CPU), vocab), heldout,
                   tokenizer.pad_token_id, "int8")
    check_fidelity(got, got.kl_per_token * 1.01)  # under the limit: accepted
    with pytest.raises(DistillError, match="too far from the exact one"):
        check_fidelity(got, got.kl_per_token * 0.99)


def _cfg(tmp_path, teacher_dir, data, *extra):
    return load_config(None, [
        f"teacher.model={teacher_dir}", f"data.path={data}", "data.seq_len=32", "student.hidden_size=32",
        "student.num_layers=2", "student.num_heads=2", "train.steps=2", "train.batch_size=4", "train.eval_every=2",
        "train.eval_sequences=4", "train.checkpoint_every=100", "train.progress=false", "loss.chunk_size=16",
        f"output_dir={tmp_path / 'student'}", *extra])


def test_run_prints_the_figure_and_refuses_above_the_threshold(tmp_path, tiny_teacher_dir, text_file, tokenizer,
                                                               caplog):
    from distill.training.loop import train
    from distill.training.setup import setup

    with caplog.at_level(logging.INFO, logger="distill.models.fast"):
        run = setup(_cfg(tmp_path, tiny_teacher_dir, text_file, "teacher.precision=int8",
                         "teacher.precision_max_kl=100", "teacher.precision_check_sequences=6"))
    fid = run.teacher_fidelity
    assert fid["precision"] == "int8" and fid["sequences"] == 6
    exact = AutoModelForCausalLM.from_pretrained(tiny_teacher_dir, dtype=torch.float32).eval()
    assert fid["kl_per_token"] == pytest.approx(_direct_kl(exact, run.source.model, run.corpus.heldout[:6]),
                                                rel=1e-3, abs=1e-7)
    assert "KL(fp32 ‖ int8)" in caplog.text
    assert run.eval_source.model is run.source.model  # held-out figures come from the same teacher
    run.close()
    with pytest.raises(DistillError, match="too far from the exact one") as e:
        train(_cfg(tmp_path, tiny_teacher_dir, text_file, "teacher.precision=int8",
                   f"teacher.precision_max_kl={fid['kl_per_token'] / 2}", "teacher.precision_check_sequences=6"))
    assert "teacher.precision_max_kl" in str(e.value)


def test_eval_reports_the_figure(tiny_teacher_dir, tiny_model_dir, text_file, tokenizer):
    from distill.evaluation.report import evaluate, format_report
    from distill.evaluation.settings import EvalSettings

    r = evaluate(EvalSettings(teacher=str(tiny_teacher_dir), student=str(tiny_model_dir), data=str(text_file),
                              seq_len=32, sequences=6, gen_prompts=1, teacher_precision="bf16"))
    exact = AutoModelForCausalLM.from_pretrained(tiny_teacher_dir, dtype=torch.float32).eval()
    heldout = load_corpus(DataConfig(path=str(text_file), seq_len=32), tokenizer).heldout[:6]
    want = _direct_kl(exact, lower_precision(exact, "bf16", CPU), heldout)
    assert r["teacher"]["precision"]["kl_per_token"] == pytest.approx(want, rel=1e-3, abs=1e-7)
    assert "KL(fp32 ‖ bf16)" in format_report(r)


def test_compiled_teacher_falls_back_to_eager(teacher, monkeypatch, caplog):
    ids = torch.arange(10, 42)[None]

    def broken(fn, *a, **k):
        def raises(*args, **kwargs):
            raise RuntimeError("no C++ compiler found")
        return raises

    want = teacher.base_model(input_ids=ids).last_hidden_state
    monkeypatch.setattr(torch, "compile", broken)
    import copy

    model = fast.scoring_teacher(copy.deepcopy(teacher), compile=True)
    with caplog.at_level(logging.WARNING, logger="distill.models.fast"):
        got = model.base_model(input_ids=ids).last_hidden_state
        again = model.base_model(input_ids=ids).last_hidden_state
    assert torch.equal(got, want) and torch.equal(again, want)
    assert caplog.text.count("runs eagerly") == 1


@pytest.mark.parametrize("fast", [True, False])
def test_bf16_warns_on_a_cpu_without_bf16_kernels(teacher, monkeypatch, caplog, fast):
    import distill.models.precision as precision

    monkeypatch.setattr(precision, "bf16_kernels", lambda: fast)
    with caplog.at_level("WARNING", logger="distill.models.precision"):
        lower_precision(teacher.model, "bf16", CPU)
    warned = [r for r in caplog.records if "no bfloat16 matmul kernels" in r.getMessage()]
    assert bool(warned) is (not fast)

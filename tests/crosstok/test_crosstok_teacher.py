"""CrossTokenizerTeacher end to end on tiny random models: what the teacher sees and what comes out."""

from __future__ import annotations

import math

import pytest
import torch

from distill.crosstok import CrossTokenizerTeacher, SortedSignal, align_positions, vocab_map
from distill.crosstok.text import special_prefix, student_row_text, teacher_tokens
from distill.data.corpus import collate
from distill.errors import DistillError
from distill.models.loading import check_compatible
from distill.signals import SparseSignal

TEXTS = ["First Citizen: Before we proceed any further, hear me speak.",
         "The zebra crossed the zebra crossing, ok.",
         "We are accounted poor citizens."]


def _batch(student_tok, texts):
    rows = []
    for text in texts:
        ids = torch.tensor(student_tok(text, add_special_tokens=False)["input_ids"])
        mask = torch.ones(len(ids), dtype=torch.bool)
        mask[-1] = False
        rows.append({"input_ids": ids, "loss_mask": mask})
    batch = collate(rows, student_tok.pad_token_id)
    return batch, batch["loss_mask"].reshape(-1).nonzero().squeeze(-1)


class _Recorder:
    """Records the input_ids the teacher's transformer body receives."""

    def __init__(self, model):
        self.seen = []
        model.base_model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.seen.append(kwargs["input_ids"].clone())


def test_teacher_sees_only_its_own_tokenization(tiny_teacher, teacher_tok, student_tok):
    rec = _Recorder(tiny_teacher)
    src = CrossTokenizerTeacher(tiny_teacher, teacher_tok, student_tok, method="align", top_k=8)
    batch, positions = _batch(student_tok, TEXTS)
    src.signal(batch, positions)
    assert len(rec.seen) == 1  # one teacher pass per batch
    fed = rec.seen[0]
    for b, text in enumerate(TEXTS):
        expected = teacher_tok(text)["input_ids"]
        assert fed[b, : len(expected)].tolist() == expected
        assert (fed[b, len(expected):] == teacher_tok.pad_token_id).all()


@pytest.mark.parametrize("method", ["align", "uld"])
def test_signal_matches_direct_computation(tiny_teacher, teacher_tok, student_tok, method):
    k = 10
    src = CrossTokenizerTeacher(tiny_teacher, teacher_tok, student_tok, method=method, top_k=k, chunk_size=3)
    batch, positions = _batch(student_tok, TEXTS)
    sig = src.signal(batch, positions)
    T = batch["input_ids"].shape[1]
    t2s = vocab_map(teacher_tok, student_tok).t2s
    aligned_count = 0
    for i, p in enumerate(positions.tolist()):
        b, t = divmod(p, T)
        text = TEXTS[b]
        row = student_row_text(student_tok, student_tok(text, add_special_tokens=False)["input_ids"])
        tt = teacher_tokens(teacher_tok, row, {}, special_prefix(teacher_tok))
        u = align_positions(row.spans, tt.spans)[t]
        if u < 0:
            if method == "uld":
                assert not sig.valid[i] and (sig.probs[i] == 0).all()
            else:
                assert (sig.ids[i] == -1).all()
            continue
        aligned_count += 1
        with torch.no_grad():
            logp = torch.log_softmax(tiny_teacher(torch.tensor([tt.ids])).logits[0, u].float(), -1)
        top = logp.topk(k)
        if method == "uld":
            assert sig.valid[i]
            torch.testing.assert_close(sig.probs[i], top.values.exp(), rtol=1e-4, atol=1e-6)
            continue
        expected: dict[int, float] = {}
        for tid, lp in zip(top.indices.tolist(), top.values.tolist(), strict=True):
            sid = int(t2s[tid])
            if sid >= 0:
                expected[sid] = expected.get(sid, 0.0) + math.exp(lp)
        got = {int(s): float(lp.exp()) for s, lp in zip(sig.ids[i], sig.logprobs[i], strict=True) if s >= 0}
        assert got.keys() == expected.keys()
        for sid in got:
            assert got[sid] == pytest.approx(expected[sid], rel=1e-4)
    assert aligned_count > len(positions) // 5
    st = src.stats.to_dict()
    assert st["aligned"] == aligned_count and st["positions"] == len(positions)
    assert 0 < st["aligned_share"] <= 1 and st["topk_mass"] <= 1 + 1e-6
    if method == "align":
        assert isinstance(sig, SparseSignal) and 0 < st["translated_share"] <= 1 + 1e-6
    else:
        assert isinstance(sig, SortedSignal)


def test_bad_inputs_are_distill_errors(tiny_teacher, teacher_tok, student_tok):
    with pytest.raises(DistillError, match="unknown cross-tokenizer method"):
        CrossTokenizerTeacher(tiny_teacher, teacher_tok, student_tok, method="kl")
    with pytest.raises(DistillError, match="top_k"):
        CrossTokenizerTeacher(tiny_teacher, teacher_tok, student_tok, top_k=0)
    with pytest.raises(DistillError, match="loss.cross_tokenizer"):
        check_compatible(teacher_tok, student_tok)  # the same-tokenizer path refuses this pair
    src = CrossTokenizerTeacher(tiny_teacher, teacher_tok, student_tok)
    batch, positions = _batch(student_tok, TEXTS[:2])
    batch["attention_mask"][1] = batch["attention_mask"][1].flip(0)  # the shorter row, left-padded
    with pytest.raises(DistillError, match="right-padded"):
        src.signal(batch, positions)


def test_gemma_teacher_tokens(gemma_tokenizer, tokenizer):
    """The real pair: SmolLM2 student rows, Gemma 3 teacher tokenization (tiny random Gemma-vocab teacher)."""
    from distill.models.students import fresh_llama

    teacher = fresh_llama(gemma_tokenizer, hidden_size=8, num_layers=1, num_heads=2, seed=3).eval()
    rec = _Recorder(teacher)
    texts = ["First Citizen:\nBefore we proceed any further, hear me speak.", "All:\nSpeak, speak."]
    src = CrossTokenizerTeacher(teacher, gemma_tokenizer, tokenizer, method="align", top_k=4)
    batch, positions = _batch(tokenizer, texts)
    sig = src.signal(batch, positions)
    for b, text in enumerate(texts):
        expected = gemma_tokenizer(text)["input_ids"]
        assert rec.seen[0][b, : len(expected)].tolist() == expected
    assert sig.ids.max() < len(tokenizer)
    st = src.stats.to_dict()
    assert st["aligned_share"] > 0.7 and st["roundtrip_fallbacks"] == 0

"""Vocabulary translation: coverage, duplicates, mass bounds, and untranslatable ids in the residual."""

from __future__ import annotations

import math

import torch

from distill.crosstok.align import translate_topk
from distill.crosstok.vocabmap import build_vocab_map, vocab_map
from distill.loss.divergences import sparse_buckets


def test_vocab_map_matches_decoded_strings(teacher_tok, student_tok):
    vm = vocab_map(teacher_tok, student_tok)
    assert vm is vocab_map(teacher_tok, student_tok)  # built once
    s_by_text = {}
    for i in range(len(student_tok)):
        if i not in student_tok.all_special_ids:
            s_by_text.setdefault(student_tok.decode([i]), i)
    for i in range(len(teacher_tok)):
        if i in teacher_tok.all_special_ids:
            continue
        text = teacher_tok.decode([i])
        if "\ufffd" in text:  # partial UTF-8: compared as bytes by the map, not checkable as text
            continue
        assert int(vm.t2s[i]) == s_by_text.get(text, -1), text
    assert int(vm.t2s[teacher_tok.eos_token_id]) == student_tok.eos_token_id
    zebra = teacher_tok.convert_tokens_to_ids("Ġzebra")
    assert zebra != teacher_tok.unk_token_id and int(vm.t2s[zebra]) == -1
    assert 0 < vm.coverage < 1 and vm.mapped == int((vm.t2s >= 0).sum())


def test_translate_merges_duplicates_and_bounds_mass():
    t2s = torch.tensor([5, -1, 5, 7, 9, -1])  # teacher ids 0 and 2 stand for the same student id 5
    t_ids = torch.tensor([[0, 1, 2, 3], [4, 5, -1, -1], [1, 5, -1, -1]])
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.6, 0.3, 0.0, 0.0], [0.5, 0.4, 0.0, 0.0]])
    lp = torch.where(t_ids >= 0, probs.log(), torch.full_like(probs, -math.inf))
    ids, out_lp = translate_topk(t_ids, lp, t2s)
    assert ids.tolist() == [[5, -1, -1, 7], [9, -1, -1, -1], [-1, -1, -1, -1]]
    got = out_lp.exp()
    assert torch.allclose(got[0], torch.tensor([0.6, 0.0, 0.0, 0.1]), atol=1e-6)
    assert torch.allclose(got[1], torch.tensor([0.6, 0.0, 0.0, 0.0]), atol=1e-6)
    assert (got.sum(-1) <= probs.sum(-1) + 1e-6).all() and (got.sum(-1) <= 1 + 1e-6).all()
    # untranslatable mass lands in the residual bucket of the sparse loss
    residual = sparse_buckets(out_lp)[:, -1].exp()
    assert torch.allclose(residual, torch.tensor([0.3, 0.4, 1.0]), atol=1e-5)


def test_translate_random_never_exceeds_one(teacher_tok, student_tok):
    vm = build_vocab_map(teacher_tok, student_tok)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, len(teacher_tok), generator=g) * 3
    top = torch.log_softmax(logits, -1).topk(40, -1)
    ids, lp = translate_topk(top.indices, top.values, vm.t2s)
    mass = lp.exp().sum(-1)
    assert (mass <= top.values.exp().sum(-1) + 1e-5).all() and (mass <= 1 + 1e-5).all()
    for row_ids in ids.tolist():
        kept = [i for i in row_ids if i >= 0]
        assert len(kept) == len(set(kept)) and all(i < len(student_tok) for i in kept)

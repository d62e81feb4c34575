"""`distill eval --draft`: the accepted-token counts read from transformers' assisted generation against a direct
count of speculative decoding on a fixed case, and the refusal of a student with another tokenizer."""

from __future__ import annotations

import copy

import pytest
import torch

from distill.errors import DistillError
from distill.evaluation.draft import check_draft_tokenizer, measure_draft


@pytest.fixture(scope="module")
def pair(tokenizer):
    """A tiny teacher and a draft that agrees with it often but not always: the teacher with noise on its
    decoder weights (fixed seed)."""
    from distill.models.students import fresh_llama

    teacher = fresh_llama(tokenizer, hidden_size=48, num_layers=2, num_heads=2, seed=1).eval()
    student = copy.deepcopy(teacher)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in student.named_parameters():
            if ".layers." in name and p.ndim == 2:
                p.add_(torch.randn(p.shape, generator=g) * 0.06)
    return teacher, student


@torch.no_grad()
def _greedy(model, ids: list[int], n: int) -> list[int]:
    out = list(ids)
    for _ in range(n):
        out.append(int(model(torch.tensor([out])).logits[0, -1].argmax()))
    return out[len(ids):]


@torch.no_grad()
def reference_speculative(teacher, student, prompt: list[int], new_tokens: int, k: int) -> dict:
    """Greedy speculative decoding written out: each round the draft proposes min(k, tokens left - 1) tokens
    greedily, the teacher's greedy choice is computed at each of those positions and one past them, the leading
    matches are kept and the teacher's own next token added."""
    ctx, rounds, drafted, accepted = list(prompt), 0, 0, 0
    while len(ctx) - len(prompt) < new_tokens:
        left = new_tokens - (len(ctx) - len(prompt))
        draft = _greedy(student, ctx, min(k, left - 1))
        choice = teacher(torch.tensor([ctx + draft])).logits[0, len(ctx) - 1:].argmax(-1).tolist()
        n = next((i for i, (d, t) in enumerate(zip(draft, choice, strict=False)) if d != t), len(draft))
        ctx += draft[:n] + [choice[n]]
        rounds, drafted, accepted = rounds + 1, drafted + len(draft), accepted + n
    return {"rounds": rounds, "drafted": drafted, "accepted": accepted, "tokens": ctx[len(prompt):]}


def test_accepted_tokens_match_a_direct_count_of_greedy_speculative_decoding(pair, tokenizer):
    teacher, student = pair
    prompts = [tokenizer.encode(t) for t in ("To be, or not to be, that is the question",
                                             "Now is the winter of our discontent", "Friends, Romans, countrymen")]
    got = measure_draft(teacher, student, prompts, tokenizer.pad_token_id, new_tokens=24, draft_tokens=4)
    want = [reference_speculative(teacher, student, p, 24, 4) for p in prompts]
    assert got["rounds"] == sum(w["rounds"] for w in want)
    assert got["accepted"] == sum(w["accepted"] for w in want)
    assert got["drafted"] == sum(w["drafted"] for w in want)
    assert got["identical_to_teacher"] == 3 and got["new_tokens"] == 72
    assert all(w["tokens"] == _greedy(teacher, p, 24) for w, p in zip(want, prompts, strict=True))
    assert 0 < got["accepted"] < got["drafted"]  # the fixed case has both accepted and rejected drafts
    assert got["mean_accepted_per_round"] == pytest.approx(got["accepted"] / got["rounds"])
    assert got["acceptance_rate"] == pytest.approx(got["accepted"] / got["drafted"])


def test_the_teacher_drafting_for_itself_accepts_every_drafted_token(pair, tokenizer):
    teacher, _ = pair
    twin = copy.deepcopy(teacher)
    got = measure_draft(teacher, twin, [tokenizer.encode("Good morrow, cousin")], tokenizer.pad_token_id,
                        new_tokens=13, draft_tokens=3)
    # rounds of 3 drafts + 1 teacher token: 4 + 4 + 4, then 1 token left (no draft)
    assert (got["rounds"], got["drafted"], got["accepted"]) == (4, 9, 9)
    assert got["acceptance_rate"] == 1.0


def test_sampled_drafting_counts_rounds_the_same_way(pair, tokenizer):
    teacher, student = pair
    got = measure_draft(teacher, student, [tokenizer.encode("Once more unto the breach")], tokenizer.pad_token_id,
                        new_tokens=16, draft_tokens=4, sample=True, seed=3)
    assert got["new_tokens"] == 16 and got["accepted"] == 16 - got["rounds"] and got["drafted"] >= got["accepted"]
    assert "identical_to_teacher" not in got


def test_a_student_with_another_tokenizer_is_refused_as_a_draft(tokenizer):
    other = copy.deepcopy(tokenizer)
    other.add_tokens(["<extra_draft_token>"])
    with pytest.raises(DistillError, match="tokenizer differs from the teacher's"):
        check_draft_tokenizer(tokenizer, other)
    check_draft_tokenizer(tokenizer, copy.deepcopy(tokenizer))  # the same tokenizer passes


def test_bad_draft_options_are_one_paragraph(capsys, tiny_model_dir):
    from distill.cli import main

    assert main(["eval", "--student", str(tiny_model_dir), "--draft", "--draft-tokens", "0"]) == 2
    assert "--draft-tokens must be at least 1, not 0" in capsys.readouterr().err
    assert main(["eval", "--student", str(tiny_model_dir), "--draft", "--teacher-endpoint",
                 "http://127.0.0.1:9/v1"]) == 2
    assert "--draft runs the teacher locally" in capsys.readouterr().err

"""The student as a draft model: speculative decoding of the teacher with transformers' assisted generation
(`teacher.generate(..., assistant_model=student)`), measured.

Each round the student drafts `draft_tokens` tokens (a constant draft length, no early stop on its confidence, so
the figures mean the same thing for every student) and the teacher checks them in one forward pass, keeping the
drafted tokens up to the first it would not have produced (greedy) or would reject (sampled: speculative
sampling's acceptance test) and adding one token of its own. Forward hooks count the teacher's passes (one per
round) and the student's (one per drafted token); every round adds its accepted tokens plus the teacher's one, so

    accepted = new tokens - rounds,  mean accepted per round = accepted / rounds,
    acceptance rate = accepted / drafted.

Greedy assisted decoding is lossless: its output is checked to equal the teacher's own greedy output. The speed-up
is the teacher's wall-clock time alone over its time with the draft, on the same prompts and token counts.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from distill.errors import DistillError


def check_draft_tokenizer(teacher_tok, student_tok) -> None:
    """A draft proposes the teacher's token ids: the two tokenizers must be the same one."""
    from distill.models.loading import tokenizer_fingerprint

    if tokenizer_fingerprint(teacher_tok) != tokenizer_fingerprint(student_tok):
        raise DistillError("the student's tokenizer differs from the teacher's, so it cannot draft for it: "
                           "assisted generation hands the student's token ids to the teacher unchanged",
                           where="--draft", fix="use a student built on the teacher's tokenizer (student.init: "
                           "fresh, layers or prune), or drop --draft")


@contextmanager
def _counting(model: torch.nn.Module):
    """A dict whose "calls" counts `model`'s forward passes while the block runs."""
    box = {"calls": 0}
    handle = model.register_forward_hook(lambda *_: box.__setitem__("calls", box["calls"] + 1))
    try:
        yield box
    finally:
        handle.remove()


@contextmanager
def _draft_settings(student: torch.nn.Module, draft_tokens: int):
    """A constant draft length and no confidence stop on the student's generation config, restored after."""
    gc = student.generation_config
    old = (gc.num_assistant_tokens, gc.num_assistant_tokens_schedule, gc.assistant_confidence_threshold)
    gc.num_assistant_tokens, gc.num_assistant_tokens_schedule, gc.assistant_confidence_threshold = (
        draft_tokens, "constant", 0.0)
    try:
        yield
    finally:
        gc.num_assistant_tokens, gc.num_assistant_tokens_schedule, gc.assistant_confidence_threshold = old


def _generate(teacher, ids: torch.Tensor, new_tokens: int, pad_id: int, sample: bool, seed: int, **kw):
    torch.manual_seed(seed)
    return teacher.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                            min_new_tokens=new_tokens, do_sample=sample, top_k=0, top_p=1.0, temperature=1.0,
                            pad_token_id=pad_id, **kw)


@torch.no_grad()
def measure_draft(teacher: torch.nn.Module, student: torch.nn.Module, prompts: list[list[int]], pad_id: int,
                  new_tokens: int = 32, draft_tokens: int = 5, sample: bool = False, seed: int = 0) -> dict:
    """Speculative decoding of `teacher` with `student` drafting, on each prompt (token ids) for `new_tokens`
    tokens: rounds, drafted and accepted tokens, mean accepted per round, acceptance rate, wall-clock seconds with
    and without the draft and the speed-up; for greedy decoding also how many outputs equal the teacher's own."""
    totals = {"rounds": 0, "drafted": 0, "accepted": 0, "new_tokens": 0}
    seconds = {"teacher": 0.0, "assisted": 0.0}
    identical = 0
    with _draft_settings(student, draft_tokens):
        for i, p in enumerate(prompts):
            ids = torch.tensor([p])
            t0 = time.perf_counter()
            alone = _generate(teacher, ids, new_tokens, pad_id, sample, seed + i)
            t1 = time.perf_counter()
            with _counting(teacher) as t_calls, _counting(student) as s_calls:
                both = _generate(teacher, ids, new_tokens, pad_id, sample, seed + i, assistant_model=student)
            t2 = time.perf_counter()
            seconds["teacher"] += t1 - t0
            seconds["assisted"] += t2 - t1
            made = both.shape[1] - ids.shape[1]
            totals["rounds"] += t_calls["calls"]
            totals["drafted"] += s_calls["calls"]
            totals["accepted"] += made - t_calls["calls"]
            totals["new_tokens"] += made
            identical += int(torch.equal(alone, both))
    rounds = max(totals["rounds"], 1)
    out = {"decoding": "sampled (T=1)" if sample else "greedy", "prompts": len(prompts), "draft_tokens": draft_tokens,
           **totals, "mean_accepted_per_round": totals["accepted"] / rounds,
           "acceptance_rate": totals["accepted"] / max(totals["drafted"], 1),
           "seconds_teacher": seconds["teacher"], "seconds_assisted": seconds["assisted"],
           "speedup": seconds["teacher"] / max(seconds["assisted"], 1e-9)}
    if not sample:
        out["identical_to_teacher"] = identical
    return out

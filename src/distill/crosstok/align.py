"""Exact character-boundary alignment of two tokenizations, and translation of teacher top-k into student ids.

Student position t predicts student token t+1, which covers characters [a, b). It is aligned with teacher
position u when teacher token u+1 starts at the same character a and both tokens start cleanly (the context
before each is exactly `text[:a]`; see `distill.crosstok.text`). At such a position both models predict "what
comes after text[:a]", so the teacher's distribution over its next token is a distribution over the same
event, expressed in another vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from distill.crosstok.text import clean_starts


def align_positions(student_spans: Sequence[tuple[int, int] | None],
                    teacher_spans: Sequence[tuple[int, int] | None]) -> list[int]:
    """For each student position t (0 .. len-1): the aligned teacher position, or -1.

    The last student position predicts nothing inside the row and is never aligned; neither is a student
    position whose next token would be the teacher's first token (the teacher has no position before it).
    """
    t_clean = clean_starts(teacher_spans)
    first_at: dict[int, int] = {}
    for j, (span, ok) in enumerate(zip(teacher_spans, t_clean, strict=True)):
        if ok and span is not None and span[0] not in first_at:
            first_at[span[0]] = j
    s_clean = clean_starts(student_spans)
    out = [-1] * len(student_spans)
    for t in range(len(student_spans) - 1):
        span = student_spans[t + 1]
        if s_clean[t + 1] and span is not None:
            j = first_at.get(span[0], 0)
            if j >= 1:
                out[t] = j - 1
    return out


def merge_duplicates(ids: Tensor, logprobs: Tensor) -> tuple[Tensor, Tensor]:
    """Sum the probability of repeated ids within each row; repeats become padding (-1 / -inf).

    Two teacher tokens can stand for the same bytes (a piece and its byte-fallback spelling), so after
    translation a student id may appear twice; the sparse loss needs each id once.
    """
    valid = ids >= 0
    same = (ids.unsqueeze(-1) == ids.unsqueeze(-2)) & valid.unsqueeze(-1) & valid.unsqueeze(-2)  # [N, k, k]
    merged = torch.logsumexp(torch.where(same, logprobs.unsqueeze(-2), torch.full_like(same, -torch.inf,
                                                                                        dtype=logprobs.dtype)), -1)
    earlier = torch.tril(same, diagonal=-1).any(-1)  # an equal id sits in an earlier slot
    keep = valid & ~earlier
    out_ids = torch.where(keep, ids, torch.full_like(ids, -1))
    out_lp = torch.where(keep, merged, torch.full_like(logprobs, -torch.inf))
    return out_ids, out_lp


def translate_topk(t_ids: Tensor, t_logprobs: Tensor, t2s: Tensor) -> tuple[Tensor, Tensor]:
    """Teacher top-k (ids in the teacher vocabulary) -> the same log-probabilities under student ids.

    Ids without a student counterpart become padding (-1 / -inf); their mass is left to the residual bucket.
    Duplicates are merged, so the kept mass never exceeds the teacher's top-k mass (≤ 1).
    """
    valid = t_ids >= 0
    s_ids = torch.where(valid, t2s.to(t_ids.device)[t_ids.clamp(min=0)], torch.full_like(t_ids, -1))
    lp = torch.where(s_ids >= 0, t_logprobs, torch.full_like(t_logprobs, -torch.inf))
    return merge_duplicates(s_ids, lp)

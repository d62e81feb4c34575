"""Universal Logit Distillation (Boizard et al. 2024): compare sorted probabilities, not tokens.

ULD needs no vocabulary map: both next-token distributions are sorted in decreasing order, zero-padded to a
common length, and compared by their L1 distance, which is the closed-form Wasserstein-1 distance between
the two sorted probability vectors (each seen as a distribution over ranks). Here the teacher side is its
top-k probabilities (the head of the sorted vector) and the student side its top-k, so the loss is

    uld = Σ_{i<k} | p_(i) − q_(i) |        p_(i), q_(i): i-th largest teacher / student probability

The tail beyond rank k is left out on both sides (it is where both vectors are close to zero).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SortedSignal:
    """The teacher's next-token probabilities sorted in decreasing order, for vocabulary-free losses (ULD)."""

    probs: Tensor  # [N, k] float, descending; 0 where the teacher has fewer than k entries
    valid: Tensor  # [N] bool, False where the position has no teacher signal (not aligned)


def uld_loss(t_sorted_probs: Tensor, s_logits: Tensor, k: int) -> Tensor:
    """Per-position ULD loss: L1 between the teacher's and the student's k largest probabilities.

    Args:
        t_sorted_probs: [N, k_t] teacher probabilities, sorted descending (k_t may differ from k).
        s_logits: [N, V_s] student logits (gradient flows through them).
        k: how many ranks to compare; both sides are cut or zero-padded to k.
    Returns:
        [N] loss per position.
    """
    if k < 1:
        raise ValueError("uld_loss needs k >= 1")
    s_probs = torch.softmax(s_logits.float(), dim=-1)
    s_top = s_probs.topk(min(k, s_probs.shape[-1]), dim=-1).values
    t_top = t_sorted_probs.float()[..., :k]
    s_top = torch.nn.functional.pad(s_top, (0, k - s_top.shape[-1]))
    t_top = torch.nn.functional.pad(t_top, (0, k - t_top.shape[-1]))
    return (t_top - s_top).abs().sum(-1)


def sorted_chunk_terms(s_logits: Tensor, signal: SortedSignal, rows: slice, targets: Tensor, spec
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """`distill.loss.fused.chunk_terms` for a `SortedSignal`: (ULD per token, CE per token, has-signal mask).

    ULD compares probabilities at temperature 1; `spec.temperature` and `spec.kind` do not apply to it.
    """
    from distill.loss.divergences import cross_entropy

    s_logits = s_logits.float() if s_logits.dtype in (torch.float16, torch.bfloat16) else s_logits
    ce = cross_entropy(s_logits, targets)
    has = signal.valid[rows]
    if spec.kd_weight == 0:
        return torch.zeros_like(ce), ce, torch.zeros_like(has)
    probs = signal.probs[rows]
    kd = uld_loss(probs, s_logits, probs.shape[-1])
    return torch.where(has, kd, torch.zeros_like(kd)), ce, has


@contextlib.contextmanager
def uld_dispatch() -> Iterator[None]:
    """Make `distill.loss.fused.distill_loss` accept a `SortedSignal` until `fused.chunk_terms` dispatches on it.

    A stop-gap for the benchmark and tests: while active, `distill.loss.fused.chunk_terms` is wrapped so that a
    `SortedSignal` goes to `sorted_chunk_terms` and everything else to the original. When fused.py already
    handles `SortedSignal` (it imports it), nothing is patched. Call `backward()` inside the block too: with
    `loss.backward="recompute"` the chunk terms run again during backward.
    """
    import distill.loss.fused as fused

    if getattr(fused, "SortedSignal", None) is SortedSignal:
        yield
        return
    original = fused.chunk_terms

    def chunk_terms(s_logits, signal, rows, targets, spec):
        if isinstance(signal, SortedSignal):
            return sorted_chunk_terms(s_logits, signal, rows, targets, spec)
        return original(s_logits, signal, rows, targets, spec)

    fused.chunk_terms = chunk_terms
    try:
        yield
    finally:
        fused.chunk_terms = original

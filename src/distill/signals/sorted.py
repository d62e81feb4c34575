"""Universal Logit Distillation (Boizard et al. 2024): compare sorted probabilities, not tokens.

ULD needs no vocabulary map: both next-token distributions are sorted in decreasing order, zero-padded to a
common length, and compared by their L1 distance, which is the closed-form Wasserstein-1 distance between
the two sorted probability vectors (each seen as a distribution over ranks). Here the teacher side is its
top-k probabilities (the head of the sorted vector) and the student side its top-k, so the loss is

    uld = Σ_{i<k} | p_(i) − q_(i) |        p_(i), q_(i): i-th largest teacher / student probability

The tail beyond rank k is left out on both sides (it is where both vectors are close to zero). ULD compares
probabilities at temperature 1: `loss.temperature` and `loss.kind` do not apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from distill.signals.base import upcast


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


@dataclass
class SortedSignal:
    """The teacher's next-token probabilities sorted in decreasing order (no shared vocabulary needed)."""

    probs: Tensor  # [N, k] float, descending; 0 where the teacher has fewer than k entries
    valid: Tensor  # [N] bool, False where the position has no teacher signal (not aligned)

    def kd_terms(self, s_logits: Tensor, rows: slice, loss) -> tuple[Tensor, Tensor]:
        has = self.valid[rows]
        kd = uld_loss(upcast(self.probs[rows]), s_logits, self.probs.shape[-1])
        return torch.where(has, kd, torch.zeros_like(kd)), has

    def closed_form(self, s_logits: Tensor, rows: slice, loss) -> None:
        return None

    def top1(self, rows: slice) -> None:
        return None  # teacher ranks are not student ids: agreement is not defined

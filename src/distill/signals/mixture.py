"""A mixture of teachers: the target at each scored position is the weighted mixture of the members'
distributions in probability space (several teachers: `distill.teachers.several`).

Each member is turned into a distribution over the whole student vocabulary first: a dense signal (a live teacher,
a store with its tail prior) as it is; a sparse one (a served teacher, a store in bucket mode, a cross-tokenizer
alignment) with the mass outside its top-k spread uniformly over the other ids (the least-informed choice: the
bucket says only how much mass is there, not where). So the union of the members' top-k is kept exactly, and the
mixture is a dense signal: every divergence applies, with the dense closed forms. The mixture is formed at T = 1
and tempered as one distribution (`loss.temperature`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from distill.loss.divergences import mixture_log_probs
from distill.signals.base import upcast
from distill.signals.dense import DenseDistribution
from distill.signals.prior import TailPriorSignal
from distill.signals.sparse import SparseSignal


def vocabulary_log_probs(signal, rows: slice, vocab: int) -> Tensor:
    """A member's normalized log-probabilities over the student vocabulary for `rows`, [C, V]."""
    if isinstance(signal, SparseSignal):  # the bucket's mass spread uniformly over the ids outside the top-k
        uniform = torch.full((vocab,), -math.log(vocab), dtype=upcast(signal.logprobs).dtype,
                             device=signal.logprobs.device)
        signal = TailPriorSignal(ids=signal.ids, logprobs=signal.logprobs, log_prior=uniform)
    if not isinstance(signal, DenseDistribution):
        raise TypeError(f"{type(signal).__name__} has no distribution over the student's vocabulary to mix")
    return torch.log_softmax(upcast(signal.logits(rows)), dim=-1)


@dataclass
class MixtureSignal(DenseDistribution):
    """Members' signals at the same N positions and their weight at each: `weights[n, m]` (rows sum to 1).

    A member whose weight is 0 at every position may be None (its teacher was not asked)."""

    members: list  # M signals (or None), each over the same N positions
    weights: Tensor  # [N, M]
    vocab: int  # the student vocabulary size V
    softcap: float | None = None  # always None: the mixture is already log-probabilities

    def logits(self, rows: slice) -> Tensor:
        active = [m for m, s in enumerate(self.members) if s is not None]
        log_probs = torch.stack([vocabulary_log_probs(self.members[m], rows, self.vocab) for m in active])
        return mixture_log_probs(log_probs, self.weights[rows][:, active].to(log_probs.dtype))

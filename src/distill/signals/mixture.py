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
    """Members' signals at the N scored positions and their weight at each: `weights[n, m]` (rows sum to 1).

    A member whose weight is 0 at every position may be None (its teacher was not asked). A member asked only for
    some positions (the rows routed to it, `distill.teachers.several`) carries `covers[m]`: the ascending indices
    [N_m] among the N of the positions its signal holds, in order; its weight is 0 everywhere else."""

    members: list  # M signals (or None), each over the N positions or over those its `covers` entry names
    weights: Tensor  # [N, M]
    vocab: int  # the student vocabulary size V
    softcap: float | None = None  # always None: the mixture is already log-probabilities
    covers: list | None = None  # per member: None (all N positions) or [N_m] ascending long indices into them

    def member_log_probs(self, m: int, rows: slice) -> tuple[Tensor | None, Tensor]:
        """Member m's log-probabilities over the student vocabulary at the positions of `rows` it covers:
        (their indices within `rows` [C_m] ascending, or None for all of them; [C_m, V])."""
        cover = None if self.covers is None else self.covers[m]
        if cover is None:
            return None, vocabulary_log_probs(self.members[m], rows, self.vocab)
        start, stop, _ = rows.indices(len(self.weights))
        lo, hi = (int(i) for i in torch.searchsorted(cover, torch.tensor([start, stop], device=cover.device)))
        return cover[lo:hi] - start, vocabulary_log_probs(self.members[m], slice(lo, hi), self.vocab)

    def logits(self, rows: slice) -> Tensor:
        w = self.weights[rows]  # [C, M]
        active = [m for m, s in enumerate(self.members) if s is not None and bool((w[:, m] > 0).any())]
        parts = {m: self.member_log_probs(m, rows) for m in active}
        dtype, device = parts[active[0]][1].dtype, parts[active[0]][1].device
        out = torch.full((len(w), self.vocab), -math.inf, dtype=dtype, device=device)
        if bool((w.amax(dim=1) == 1).all()):  # every row routed to one member: its distribution, as it is
            for m, (at, lp) in parts.items():
                at = torch.arange(len(w), device=device) if at is None else at.to(device)
                mine = w[at, m] == 1
                out[at[mine]] = lp[mine]
            return out
        full = []
        for m in active:  # each member over every row (-inf where it was not asked: its weight is 0 there)
            at, lp = parts[m]
            if at is None:
                full.append(lp)
            else:
                f = out.clone()
                f[at.to(device)] = lp
                full.append(f)
        return mixture_log_probs(torch.stack(full), w[:, active].to(dtype))

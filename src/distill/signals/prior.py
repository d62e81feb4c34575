"""A capture store's top-k with the residual mass spread over the other tokens by the teacher's tail prior."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from distill.signals.base import ClosedForm, upcast
from distill.signals.dense import DenseDistribution


@dataclass
class TailPriorSignal(DenseDistribution):
    """The teacher distribution rebuilt from its stored top-k and a tail prior.

    The prior is the teacher's average distribution over tokens outside its top-k (summed at capture over the
    training positions). The teacher distribution is then dense: p_v exactly for the k stored ids, and
    R · prior_v / Z for every other id, where R = 1 − Σ top-k p and Z = the prior's mass outside this
    position's top-k. `logits(rows)` materializes it chunk by chunk (as normalized log-probabilities), so
    every dense loss applies unchanged; forward KL at T=1 has its own closed form that never builds it."""

    ids: Tensor  # [N, k] long, -1 where padded
    logprobs: Tensor  # [N, k] float, -inf where padded
    log_prior: Tensor  # [V] log of the tail prior (normalized over the vocabulary)
    softcap: float | None = None  # always None: the values are already log-probabilities

    def logits(self, rows: slice) -> Tensor:
        ids, lp = self.ids[rows], self.logprobs[rows].float()
        valid = ids >= 0
        safe = ids.clamp_min(0)
        head = torch.where(valid, lp.exp(), torch.zeros_like(lp))
        residual = (1.0 - head.sum(-1)).clamp_min(1e-12)
        prior_in_top = torch.where(valid, self.log_prior[safe].exp(), torch.zeros_like(lp)).sum(-1)
        z = (1.0 - prior_in_top).clamp_min(1e-12)
        out = self.log_prior.expand(len(ids), -1) + (residual.log() - z.log()).unsqueeze(1)
        # padded slots rewrite the row's first entry with its own value, so they never clobber a real id
        first = safe[:, :1]
        first_val = torch.where(valid[:, :1], lp[:, :1], out.gather(1, first))
        idx = torch.where(valid, safe, first.expand_as(safe))
        return out.scatter(1, idx, torch.where(valid, lp, first_val.expand_as(lp)))

    def closed_form(self, s_logits: Tensor, rows: slice, loss) -> ClosedForm | None:
        if loss.kind == "forward_kl" and loss.temperature == 1.0:
            return self._forward_kl(s_logits, rows, loss.kd_weight)
        return super().closed_form(s_logits, rows, loss)

    def _forward_kl(self, s_logits: Tensor, rows: slice, kd_weight: float) -> ClosedForm:
        """Forward KL to this distribution at T=1, without building it.

        p_j is stored for the k top ids and p_v = c·prior_v elsewhere (c = R/Z), so
            KL = Σ_top p_j (log p_j − log q_j) + R·log c + c·(Σ_tail prior_v log prior_v − Σ_tail prior_v log q_v)
        where the tail sums are whole-vocabulary sums (a dot product with log q) minus their top-k terms, and
            ∂KL/∂s = q − c·prior, corrected to q_j − p_j at the stored ids."""
        ids, lp = self.ids[rows], upcast(self.logprobs[rows])
        valid = ids >= 0
        safe = ids.clamp(min=0)
        zero = torch.zeros_like(lp)
        log_prior = self.log_prior
        prior = log_prior.exp()
        log_q = torch.log_softmax(upcast(s_logits), dim=-1)
        q = log_q.exp()
        p_top = torch.where(valid, lp.exp(), zero)
        prior_top = torch.where(valid, prior[safe], zero)
        residual = (1.0 - p_top.sum(-1)).clamp_min(1e-12)
        c = residual / (1.0 - prior_top.sum(-1)).clamp_min(1e-12)
        lq_top = log_q.gather(-1, safe)
        tail_plp = (prior * log_prior).sum() - torch.where(valid, prior_top * log_prior[safe], zero).sum(-1)
        tail_plq = log_q @ prior - torch.where(valid, prior_top * lq_top, zero).sum(-1)
        kd = torch.where(valid, p_top * (lp - lq_top), zero).sum(-1) + residual * c.log() + c * (tail_plp - tail_plq)
        grad = torch.addr(q, c, prior, alpha=-1.0)
        grad.scatter_add_(-1, safe, torch.where(valid, c[:, None] * prior_top - p_top, zero))
        if kd_weight != 1.0:
            grad.mul_(kd_weight)
        return ClosedForm(kd, torch.ones_like(kd, dtype=torch.bool), grad, log_q, q)

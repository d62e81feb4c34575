"""Sparse signals: the teacher's top-k log-probabilities, the rest of its mass as one residual bucket."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from distill.loss.divergences import divergence, forward_kl, sparse_buckets, student_buckets
from distill.signals.base import ClosedForm, upcast


@dataclass
class SparseSignal:
    """Top-k log-probabilities (from an API, a store in bucket mode, or a cross-tokenizer alignment).

    Both sides become distributions over the same k+1 outcomes — the k ids and a residual bucket — so every
    divergence applies unchanged; at T ≠ 1 the buckets are re-tempered over those k+1 outcomes."""

    ids: Tensor  # [N, k] long, -1 where padded
    logprobs: Tensor  # [N, k] float, -inf where padded

    def kd_terms(self, s_logits: Tensor, rows: slice, loss) -> tuple[Tensor, Tensor]:
        T = loss.temperature
        ids, t_top = self.ids[rows], upcast(self.logprobs[rows])
        has = (ids >= 0).any(-1)
        if T != 1.0:
            t_logp = torch.log_softmax(sparse_buckets(t_top) / T, dim=-1)
            s_logp = torch.log_softmax(student_buckets(torch.log_softmax(s_logits, -1), ids) / T, dim=-1)
        else:
            t_logp, s_logp = sparse_buckets(t_top), student_buckets(torch.log_softmax(s_logits, -1), ids)
        kd = divergence(loss.kind, loss.beta, loss.alpha)(t_logp, s_logp) * (T * T)
        return torch.where(has, kd, torch.zeros_like(kd)), has

    def closed_form(self, s_logits: Tensor, rows: slice, loss) -> ClosedForm | None:
        """Forward KL over the k+1 buckets at T=1.

        With p the teacher's and q the student's bucket probabilities, ∂KL/∂s_j = q_j − p_j for a top-k token j
        and q_j·(1 − p_res/q_res) for every other token (they share the residual bucket)."""
        if loss.kind != "forward_kl" or loss.temperature != 1.0:
            return None
        ids, lp = self.ids[rows], upcast(self.logprobs[rows])
        valid = ids >= 0
        has = valid.any(-1)
        safe = ids.clamp(min=0)
        log_q = torch.log_softmax(upcast(s_logits), dim=-1)
        q = log_q.exp()
        t_b = sparse_buckets(lp)
        lq_top = torch.where(valid, log_q.gather(-1, safe), torch.full_like(lp, -math.inf))
        s_b = sparse_buckets(lq_top)
        kd = torch.where(has, forward_kl(t_b, s_b), torch.zeros_like(t_b[:, 0]))
        scale = 1.0 - t_b[:, -1].exp() / s_b[:, -1].exp().clamp_min(1e-12)
        grad = q * scale[:, None]
        q_top = lq_top.exp()
        fix = torch.where(valid, (q_top - lp.exp()) - q_top * scale[:, None], torch.zeros_like(lp))
        grad.scatter_add_(-1, safe, fix)
        grad.mul_((has[:, None] * loss.kd_weight).to(grad.dtype))
        return ClosedForm(kd, has, grad, log_q, q)

    def top1(self, rows: slice) -> Tensor:
        return self.ids[rows][:, 0]

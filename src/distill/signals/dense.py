"""Dense signals: the teacher's whole next-token distribution, formed one chunk at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from distill.loss.divergences import divergence
from distill.signals.base import ClosedForm, upcast

CLOSED_FORM_KINDS = ("forward_kl", "reverse_kl", "jsd")


class DenseDistribution:
    """Loss math shared by every signal that can give the teacher's logits over the whole vocabulary.

    Subclasses provide `logits(rows)` ([C, V]; log-probabilities are fine too) and `softcap`."""

    softcap: float | None = None

    def logits(self, rows: slice) -> Tensor:
        raise NotImplementedError

    def kd_terms(self, s_logits: Tensor, rows: slice, loss) -> tuple[Tensor, Tensor]:
        T = loss.temperature
        s_logp = torch.log_softmax(s_logits / T, dim=-1)
        t_logp = torch.log_softmax(upcast(self.logits(rows)) / T, dim=-1)
        kd = divergence(loss.kind, loss.beta, loss.alpha)(t_logp, s_logp) * (T * T)
        return kd, torch.ones_like(kd, dtype=torch.bool)

    def closed_form(self, s_logits: Tensor, rows: slice, loss) -> ClosedForm | None:
        """Forward KL, reverse KL and JSD(β) at any temperature, in place where possible (few [C, V] buffers).

        With p = softmax(t/T), q = softmax(s/T) and loss T²·D(p, q):
            forward KL:  ∂/∂s = T·(q − p)
            reverse KL:  ∂/∂s = T·q ⊙ (g − Σ q g),  g = log q − log p
            JSD(β):      ∂/∂s = T·q ⊙ (g − Σ q g),  g = (1 − β)·(log q − log m), m = βp + (1 − β)q
        """
        if loss.kind not in CLOSED_FORM_KINDS or self.softcap:
            return None
        T = loss.temperature
        s = upcast(s_logits)
        log_q = torch.log_softmax(s / T if T != 1.0 else s, dim=-1)
        t = upcast(self.logits(rows))
        log_p = torch.log_softmax(t / T if T != 1.0 else t, dim=-1)
        q = log_q.exp()
        p = log_p.exp()
        beta = 0.0 if loss.kind == "forward_kl" else 1.0 if loss.kind == "reverse_kl" else loss.beta
        if beta <= 0.0:  # forward KL
            kd = (p * (log_p - log_q)).sum(-1)
            grad = q.sub(p).mul_(loss.kd_weight * T)
        else:
            if beta >= 1.0:  # reverse KL
                g = log_q - log_p
                kd = (q * g).sum(-1)
            else:
                log_m = torch.logaddexp(log_p + math.log(beta), log_q + math.log1p(-beta))
                kd = beta * (p * (log_p - log_m)).sum(-1) + (1 - beta) * (q * (log_q - log_m)).sum(-1)
                g = log_q.sub_(log_m).mul_(1 - beta)  # log_q is not needed afterwards
            g.sub_((q * g).sum(-1, keepdim=True))
            grad = g.mul_(q).mul_(loss.kd_weight * T)
        if T != 1.0:
            kd = kd * (T * T)
        intact = T == 1.0 and (beta <= 0.0 or beta >= 1.0)  # log_q and q are the student's T=1 distribution
        return ClosedForm(kd, torch.ones_like(kd, dtype=torch.bool), grad, log_q if intact else None,
                          q if intact else None)

    def top1(self, rows: slice) -> Tensor:
        return self.logits(rows).argmax(-1)


@dataclass
class DenseSignal(DenseDistribution):
    """A live teacher's full distribution, kept factored: logits = hidden @ head.T (+ softcap).

    Never materialized for all positions at once: the fused loss multiplies chunk by chunk."""

    hidden: Tensor  # [N, d_teacher] final hidden states at the scored positions
    head: Tensor  # [V, d_teacher] teacher output embedding (rows beyond the real vocabulary are dropped)
    softcap: float | None = None  # final-logit soft-capping (Gemma-style), if the teacher uses it
    layers: tuple[Tensor, ...] = ()  # loss.hidden: [N, d_teacher] outputs of the mapped teacher layers, pair order

    def logits(self, rows: slice) -> Tensor:
        out = self.hidden[rows] @ self.head.T
        if self.softcap:
            out = torch.tanh(out / self.softcap) * self.softcap
        return out

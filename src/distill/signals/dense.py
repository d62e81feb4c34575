"""Dense signals: the teacher's whole next-token distribution, formed one chunk at a time."""

from __future__ import annotations

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
        """Forward KL, reverse KL and JSD(β) at any temperature, with as few passes over [C, V] as possible.

        With p = softmax(t/T), q = softmax(s/T) and loss T²·D(p, q):
            forward KL:  ∂/∂s = T·(q − p)
            reverse KL:  ∂/∂s = T·q ⊙ (g − Σ q g),  g = log q − log p   (Σ q g is the loss itself)
            JSD(β):      ∂/∂s = T·q ⊙ (g − Σ q g),  g = (1 − β)·(log q − log m), m = βp + (1 − β)q
        The loop is bound by memory bandwidth, not arithmetic: every elementwise op is one pass over a 12.6 MB
        buffer at C=64, V=49 152. So m is formed as βp + (1 − β)q and logged in place (not `logaddexp` of the
        log-probabilities: a fifth of the old cost), buffers that are not needed again are overwritten, and the
        student's log q stays intact at T = 1 so the CE term reuses it instead of a second log-softmax.
        """
        if loss.kind not in CLOSED_FORM_KINDS or self.softcap:
            return None
        T = loss.temperature
        s = upcast(s_logits)
        log_q = torch.log_softmax(s / T if T != 1.0 else s, dim=-1)
        t = upcast(self.logits(rows))
        log_p = torch.log_softmax(t / T if T != 1.0 else t, dim=-1)
        del t
        q = log_q.exp()
        p = log_p.exp()
        beta = 0.0 if loss.kind == "forward_kl" else 1.0 if loss.kind == "reverse_kl" else loss.beta
        scale = loss.kd_weight * T
        if beta <= 0.0:  # forward KL
            kd = log_p.sub_(log_q).mul_(p).sum(-1)  # log_p is not needed afterwards
            grad = torch.sub(q, p).mul_(scale)
        elif beta >= 1.0:  # reverse KL
            g = torch.sub(log_q, log_p)
            kd = (q * g).sum(-1)
            grad = g.sub_(kd[:, None]).mul_(q).mul_(scale)
        else:
            log_m = torch.mul(q, 1 - beta).add_(p, alpha=beta).clamp_(min=torch.finfo(q.dtype).tiny).log_()
            kd_p = log_p.sub_(log_m).mul_(p).sum(-1)  # KL(p‖m); log_p is not needed afterwards
            d = torch.sub(log_q, log_m, out=log_m)  # log q − log m, in m's buffer
            kd_q = (q * d).sum(-1)  # KL(q‖m)
            kd = beta * kd_p + (1 - beta) * kd_q
            grad = d.sub_(kd_q[:, None]).mul_(q).mul_((1 - beta) * scale)
        if T != 1.0:
            kd = kd * (T * T)
        intact = T == 1.0  # log_q and q are the student's T=1 distribution
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

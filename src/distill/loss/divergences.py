"""The distillation loss family, as small pure functions.

Every divergence takes the teacher's and the student's log-probabilities over the same support, shape
[..., K], and returns the per-position loss, shape [...]. The support is the whole vocabulary for dense
(white-box) signals, or K = k+1 buckets for sparse signals (the teacher's top-k tokens plus one bucket
holding all remaining mass; see `sparse_buckets`). Reductions and weighting happen in `distill.loss.fused`.

Conventions (p = teacher, q = student):
- forward KL  KL(p‖q)                 mode-covering; the classic KD loss (Hinton et al.).
- reverse KL  KL(q‖p)                 mode-seeking (MiniLLM).
- JSD(β)      β·KL(p‖m) + (1-β)·KL(q‖m), m = β·p + (1-β)·q   (as TRL GKD; β=0 is forward KL, β=1 reverse KL)
- skew FKL(α) KL(p ‖ α·p + (1-α)·q)   (DistiLLM)
- skew RKL(α) KL(q ‖ α·q + (1-α)·p)   (DistiLLM)
- TVD         ½ Σ |p − q|
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LOSSES = ("forward_kl", "reverse_kl", "jsd", "skew_forward_kl", "skew_reverse_kl", "tvd")


def _kl(logp: Tensor, logq: Tensor) -> Tensor:
    """KL(p‖q) from log-probabilities; 0·log 0 counts as 0."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)


def forward_kl(t_logp: Tensor, s_logp: Tensor) -> Tensor:
    return _kl(t_logp, s_logp)


def reverse_kl(t_logp: Tensor, s_logp: Tensor) -> Tensor:
    return _kl(s_logp, t_logp)


def _log_mix(logp: Tensor, logq: Tensor, w: float) -> Tensor:
    """log(w·p + (1-w)·q), computed stably in log space."""
    if w <= 0.0:
        return logq
    if w >= 1.0:
        return logp
    return torch.logaddexp(logp + math.log(w), logq + math.log1p(-w))


def jsd(t_logp: Tensor, s_logp: Tensor, beta: float = 0.5) -> Tensor:
    """Generalized Jensen–Shannon divergence as in TRL's GKD: β·KL(p‖m) + (1-β)·KL(q‖m), m = βp + (1-β)q.

    β=0 and β=1 are defined as forward and reverse KL respectively (the limits used by GKD).
    """
    if beta <= 0.0:
        return forward_kl(t_logp, s_logp)
    if beta >= 1.0:
        return reverse_kl(t_logp, s_logp)
    log_m = _log_mix(t_logp, s_logp, beta)
    return beta * _kl(t_logp, log_m) + (1.0 - beta) * _kl(s_logp, log_m)


def skew_forward_kl(t_logp: Tensor, s_logp: Tensor, alpha: float = 0.1) -> Tensor:
    """KL(p ‖ α·p + (1-α)·q) (DistiLLM's skew KL)."""
    return _kl(t_logp, _log_mix(t_logp, s_logp, alpha))


def skew_reverse_kl(t_logp: Tensor, s_logp: Tensor, alpha: float = 0.1) -> Tensor:
    """KL(q ‖ α·q + (1-α)·p) (DistiLLM's skew reverse KL)."""
    return _kl(s_logp, _log_mix(s_logp, t_logp, alpha))


def tvd(t_logp: Tensor, s_logp: Tensor) -> Tensor:
    return 0.5 * (t_logp.exp() - s_logp.exp()).abs().sum(-1)


def divergence(name: str, beta: float = 0.5, alpha: float = 0.1) -> Callable[[Tensor, Tensor], Tensor]:
    """The divergence `name` with its parameters bound: f(t_logp, s_logp) -> per-position loss."""
    table: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
        "forward_kl": forward_kl,
        "reverse_kl": reverse_kl,
        "jsd": lambda t, s: jsd(t, s, beta),
        "skew_forward_kl": lambda t, s: skew_forward_kl(t, s, alpha),
        "skew_reverse_kl": lambda t, s: skew_reverse_kl(t, s, alpha),
        "tvd": tvd,
    }
    if name not in table:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return table[name]


def cross_entropy(s_logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Per-position cross-entropy on the data (0 where the target is ignored)."""
    return torch.nn.functional.cross_entropy(s_logits, targets, ignore_index=ignore_index, reduction="none")


def sparse_buckets(topk_logp: Tensor) -> Tensor:
    """Append the residual bucket to top-k log-probabilities: [..., k] -> [..., k+1].

    The residual bucket holds 1 − Σ top-k probability: everything the teacher put outside its top k. For the
    student, the same k token ids are gathered from its full distribution and the rest of its mass goes into
    the residual bucket, so both sides are proper distributions over the same k+1 outcomes and any
    divergence above applies unchanged. Padded slots (log-prob −inf) carry no mass.
    """
    mass = topk_logp.exp().sum(-1, keepdim=True).clamp(max=1.0)
    residual = torch.log1p(-mass.clamp(max=1.0 - 1e-6))
    return torch.cat([topk_logp, residual], dim=-1)


def student_buckets(s_logp: Tensor, ids: Tensor) -> Tensor:
    """The student's log-probabilities of the teacher's top-k ids plus its residual bucket.

    `ids` may hold -1 for padded slots; those get log-prob −inf (no mass)."""
    valid = ids >= 0
    gathered = s_logp.gather(-1, ids.clamp(min=0))
    gathered = torch.where(valid, gathered, torch.full_like(gathered, -math.inf))
    return sparse_buckets(gathered)


def mixture_log_probs(log_probs: Tensor, weights: Tensor) -> Tensor:
    """The log of a per-row weighted mixture of M distributions, in probability space.

    Args:
        log_probs: [M, C, V] each member's normalized log-probabilities.
        weights: [C, M] non-negative, each row summing to 1 (a one-hot row = that member alone: routing).
    Returns:
        [C, V] log Σ_m w[c, m] · exp(log_probs[m, c, v]); a member with weight 0 contributes nothing (also where
        its log-probabilities are -inf)."""
    log_w = weights.clamp_min(0).log().T.unsqueeze(-1)  # [M, C, 1], -inf where 0
    terms = torch.where(torch.isneginf(log_w), torch.full_like(log_probs, -math.inf), log_w + log_probs)
    return torch.logsumexp(terms, dim=0)

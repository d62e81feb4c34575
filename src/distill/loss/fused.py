"""Memory-bounded distillation loss with the student's output projection fused in.

The student's final hidden states [N, d] and output head [V, d] go in; full [N, V] logits never exist.
Tokens are processed in chunks of C: per chunk the student logits [C, V] (and, for a dense teacher signal, the
teacher logits [C, V]) are formed, the loss terms computed by the pure functions of `distill.loss.divergences`, and —
in the default 'fused' mode — the chunk's gradients with respect to the hidden states and the head are
computed right away (as Liger-Kernel does), so nothing of the chunk survives it.

Peak extra memory of the loss, in float32 values:
    fused:      ≈ k·C·V  (k ≈ 6 live [C, V] buffers: student logits, teacher logits, two log-softmaxes, their
                product/gradient)  + V·d (head gradient) + N·d (hidden gradient)
    recompute:  the same per chunk, at backward time, plus the saved chunk inputs
independent of batch × sequence length. C=256, V=49152: ≈ 300 MB; the naive [B·T, V] path at 4×256 tokens
holds 2 × 4×256×49152 × 4 B = 400 MB for logits alone, plus as much again for each softmax and gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from distill.crosstok.uld import SortedSignal, uld_loss
from distill.loss.divergences import cross_entropy, divergence, forward_kl, sparse_buckets, student_buckets
from distill.signals import DenseSignal, Signal, SparseSignal, TailPriorSignal


@dataclass(frozen=True)
class LossSpec:
    """What to compute; mirrors `distill.config.LossConfig`."""

    kind: str = "forward_kl"
    beta: float = 0.5
    alpha: float = 0.1
    temperature: float = 1.0
    kd_weight: float = 1.0
    ce_weight: float = 0.0
    chunk_size: int = 64
    backward: str = "fused"

    @classmethod
    def from_config(cls, cfg) -> LossSpec:
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__})


def chunk_terms(s_logits: Tensor, signal: Signal, rows: slice, targets: Tensor, spec: LossSpec
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token KD loss, per-token CE loss and a mask of tokens that carry teacher signal, for one chunk."""
    s_logits = _upcast(s_logits)
    T = spec.temperature
    ce = cross_entropy(s_logits, targets)
    if signal is None or spec.kd_weight == 0:
        zero = torch.zeros_like(ce)
        return zero, ce, torch.zeros_like(ce, dtype=torch.bool)
    if isinstance(signal, SortedSignal):  # ULD: no shared vocabulary, temperature 1
        has = signal.valid[rows]
        kd = uld_loss(_upcast(signal.probs[rows]), s_logits, signal.probs.shape[-1])
        return torch.where(has, kd, torch.zeros_like(kd)), ce, has
    div = divergence(spec.kind, spec.beta, spec.alpha)
    s_logp = torch.log_softmax(s_logits / T, dim=-1)
    if isinstance(signal, DenseSignal | TailPriorSignal):
        t_logp = torch.log_softmax(_upcast(signal.logits(rows)) / T, dim=-1)
        has = torch.ones_like(ce, dtype=torch.bool)
    elif isinstance(signal, SparseSignal):
        ids, t_top = signal.ids[rows], _upcast(signal.logprobs[rows])
        has = (ids >= 0).any(-1)
        if T != 1.0:  # bucket distributions, re-tempered over their k+1 outcomes
            t_logp = torch.log_softmax(sparse_buckets(t_top) / T, dim=-1)
            s_logp = torch.log_softmax(student_buckets(torch.log_softmax(s_logits, -1), ids) / T, dim=-1)
        else:
            t_logp, s_logp = sparse_buckets(t_top), student_buckets(s_logp, ids)
    else:
        raise TypeError(f"unknown teacher signal {type(signal).__name__}")
    kd = div(t_logp, s_logp) * (T * T)
    return torch.where(has, kd, torch.zeros_like(kd)), ce, has


def _upcast(x: Tensor) -> Tensor:
    """Losses run in at least float32 (bf16/fp16 logits from autocast are upcast)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def analytic_terms(s_logits: Tensor, signal: Signal, rows: slice, targets: Tensor, spec: LossSpec
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """Loss terms and their gradient w.r.t. the student logits in closed form, for the common cases.

    Covers dense teacher signals with forward KL, reverse KL and JSD(β) (any temperature) plus the CE term;
    returns None for everything else, which then goes through autograd on `chunk_terms`. Written with
    in-place operations so a chunk needs few [C, V] buffers; equal to autograd (tested).
    With p = softmax(t/T), q = softmax(s/T) and loss T²·D(p, q):
        forward KL:  ∂/∂s = T·(q − p)
        reverse KL:  ∂/∂s = T·q ⊙ (g − Σ q g),  g = log q − log p
        JSD(β):      ∂/∂s = T·q ⊙ (g − Σ q g),  g = (1 − β)·(log q − log m), m = βp + (1 − β)q
        CE:          ∂/∂s = softmax(s) − onehot(target)
    """
    if isinstance(signal, SparseSignal) and spec.kind == "forward_kl" and spec.temperature == 1.0 \
            and spec.kd_weight > 0:
        return _sparse_forward_kl_terms(s_logits, signal, rows, targets, spec)
    if isinstance(signal, TailPriorSignal) and spec.kind == "forward_kl" and spec.temperature == 1.0 \
            and spec.kd_weight > 0:
        return _prior_forward_kl_terms(s_logits, signal, rows, targets, spec)
    dense = isinstance(signal, DenseSignal | TailPriorSignal)
    if not dense or spec.kind not in ("forward_kl", "reverse_kl", "jsd") or signal.softcap or spec.kd_weight == 0:
        return None
    T = spec.temperature
    s = _upcast(s_logits)
    log_q = torch.log_softmax(s / T if T != 1.0 else s, dim=-1)
    t = _upcast(signal.logits(rows))
    log_p = torch.log_softmax(t / T if T != 1.0 else t, dim=-1)
    q = log_q.exp()
    p = log_p.exp()
    beta = 0.0 if spec.kind == "forward_kl" else 1.0 if spec.kind == "reverse_kl" else spec.beta
    if beta <= 0.0:  # forward KL
        kd = (p * (log_p - log_q)).sum(-1)
        grad = q.sub(p).mul_(spec.kd_weight * T)
    else:
        if beta >= 1.0:  # reverse KL
            g = log_q - log_p
            kd = (q * g).sum(-1)
        else:
            log_m = torch.logaddexp(log_p + math.log(beta), log_q + math.log1p(-beta))
            kd = beta * (p * (log_p - log_m)).sum(-1) + (1 - beta) * (q * (log_q - log_m)).sum(-1)
            g = log_q.sub_(log_m).mul_(1 - beta)  # log_q is not needed afterwards
        g.sub_((q * g).sum(-1, keepdim=True))
        grad = g.mul_(q).mul_(spec.kd_weight * T)
    if T != 1.0:
        kd = kd * (T * T)
    if T == 1.0 and (beta <= 0.0 or beta >= 1.0):  # log_q is intact and at T=1
        ce = _ce_terms(log_q, q, targets, grad, spec.ce_weight)
    else:
        log_q1 = torch.log_softmax(s, dim=-1)
        ce = _ce_terms(log_q1, log_q1.exp() if spec.ce_weight else log_q1, targets, grad, spec.ce_weight)
    has = torch.ones_like(ce, dtype=torch.bool)
    return kd, ce, has, grad


def _ce_terms(log_q: Tensor, q: Tensor, targets: Tensor, grad: Tensor, weight: float) -> Tensor:
    """Per-token CE from the student's T=1 log-probabilities; adds weight·(q − onehot) to `grad`."""
    valid = targets != -100
    safe = targets.clamp(min=0)
    ce = -log_q.gather(-1, safe[:, None]).squeeze(-1) * valid
    if weight:
        ce_grad = q * valid[:, None].to(q.dtype)
        ce_grad[valid, safe[valid]] -= 1.0
        grad.add_(ce_grad, alpha=weight)
    return ce


def _sparse_forward_kl_terms(s_logits: Tensor, signal: SparseSignal, rows: slice, targets: Tensor,
                             spec: LossSpec) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Forward KL over the k+1 buckets (top-k + residual) at T=1, in closed form.

    With p the teacher's and q the student's bucket probabilities, ∂KL/∂s_j = q_j − p_j for a top-k token j and
    q_j·(1 − p_res/q_res) for every other token (they share the residual bucket)."""
    ids, lp = signal.ids[rows], _upcast(signal.logprobs[rows])
    valid = ids >= 0
    has = valid.any(-1)
    safe = ids.clamp(min=0)
    log_q = torch.log_softmax(_upcast(s_logits), dim=-1)
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
    grad.mul_((has[:, None] * spec.kd_weight).to(grad.dtype))
    ce = _ce_terms(log_q, q, targets, grad, spec.ce_weight)
    return kd, ce, has, grad


def _prior_forward_kl_terms(s_logits: Tensor, signal: TailPriorSignal, rows: slice, targets: Tensor,
                            spec: LossSpec) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Forward KL to a `TailPriorSignal`'s distribution at T=1, without building that distribution.

    p_j is stored for the k top ids and p_v = c·prior_v elsewhere (c = R/Z), so
        KL = Σ_top p_j (log p_j − log q_j) + R·log c + c·(Σ_tail prior_v log prior_v − Σ_tail prior_v log q_v)
    where the tail sums are whole-vocabulary sums (a dot product with log q) minus their top-k terms, and
        ∂KL/∂s = q − c·prior, corrected to q_j − p_j at the stored ids."""
    ids, lp = signal.ids[rows], _upcast(signal.logprobs[rows])
    valid = ids >= 0
    safe = ids.clamp(min=0)
    zero = torch.zeros_like(lp)
    log_prior = signal.log_prior
    prior = log_prior.exp()
    log_q = torch.log_softmax(_upcast(s_logits), dim=-1)
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
    if spec.kd_weight != 1.0:
        grad.mul_(spec.kd_weight)
    ce = _ce_terms(log_q, q, targets, grad, spec.ce_weight)
    return kd, ce, torch.ones_like(kd, dtype=torch.bool), grad


class _FusedChunkedLoss(torch.autograd.Function):
    """Loss and its gradient in one pass over the chunks (gradient computed in forward)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=None)
    def forward(ctx, hidden: Tensor, weight: Tensor, signal: Signal, targets: Tensor, spec: LossSpec,
                normalizer: float, stats: dict) -> Tensor:
        # Matmuls run in the hidden states' dtype (bf16 under autocast on GPU); the loss itself in fp32 and
        # the head gradient is accumulated in the parameter's dtype.
        w = weight.to(hidden.dtype)
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(weight)
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[0], spec.chunk_size):
            rows = slice(start, start + spec.chunk_size)
            h = hidden[rows]
            logits = h @ w.T
            closed = analytic_terms(logits, signal, rows, targets[rows], spec)
            if closed is not None:
                kd, ce, has, g = closed
                g = g.div_(normalizer)
                chunk_loss = (spec.kd_weight * kd + spec.ce_weight * ce).sum() / normalizer
            else:
                logits.requires_grad_(True)
                with torch.enable_grad():
                    kd, ce, has = chunk_terms(logits, signal, rows, targets[rows], spec)
                    chunk_loss = (spec.kd_weight * kd + spec.ce_weight * ce).sum() / normalizer
                    (g,) = torch.autograd.grad(chunk_loss, logits)
            torch.matmul(g.to(w.dtype), w, out=grad_h[rows])
            grad_w.addmm_(g.T.to(weight.dtype), h.to(weight.dtype))
            total += chunk_loss.detach()
            _accumulate(stats, kd, ce, has)
        ctx.save_for_backward(grad_h, grad_w)
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out, grad_w * grad_out, None, None, None, None, None


def _accumulate(stats: dict, kd: Tensor, ce: Tensor, has: Tensor) -> None:
    stats["kd_sum"] = stats.get("kd_sum", 0.0) + float(kd.detach().sum())
    stats["ce_sum"] = stats.get("ce_sum", 0.0) + float(ce.detach().sum())
    stats["kd_tokens"] = stats.get("kd_tokens", 0) + int(has.sum())
    stats["tokens"] = stats.get("tokens", 0) + int(ce.numel())


def _recompute_loss(hidden: Tensor, weight: Tensor, signal: Signal, targets: Tensor, spec: LossSpec,
                    normalizer: float, stats: dict) -> Tensor:
    """The same loss with activation checkpointing per chunk: logits are recomputed in backward."""

    def one_chunk(h: Tensor, w: Tensor, rows: slice, tgt: Tensor) -> Tensor:
        kd, ce, has = chunk_terms(h @ w.T, signal, rows, tgt, spec)
        if torch.is_grad_enabled() and not stats.get("_in_backward"):
            _accumulate(stats, kd, ce, has)
        return (spec.kd_weight * kd + spec.ce_weight * ce).sum() / normalizer

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], spec.chunk_size):
        rows = slice(start, start + spec.chunk_size)
        total = total + checkpoint(one_chunk, hidden[rows], weight, rows, targets[rows], use_reentrant=False)
    stats["_in_backward"] = True
    return total


def distill_loss(hidden: Tensor, weight: Tensor, signal: Signal, targets: Tensor, spec: LossSpec,
                 normalizer: float | None = None) -> tuple[Tensor, dict]:
    """Weighted KD + CE loss over N scored positions, summed and divided by `normalizer` (default N).

    Args:
        hidden: student final hidden states at the scored positions, [N, d] (requires grad).
        weight: student output head restricted to the real vocabulary, [V, d].
        signal: the teacher's view of the same N positions (dense, sparse, or None).
        targets: next-token ids at those positions, [N] (-100 = not a data target).
    Returns:
        the loss (a scalar with gradient) and sums for logging: kd_sum, ce_sum, kd_tokens, tokens.
    """
    stats: dict = {}
    norm = float(normalizer if normalizer is not None else max(hidden.shape[0], 1))
    if spec.backward == "recompute":
        loss = _recompute_loss(hidden, weight, signal, targets, spec, norm, stats)
        stats.pop("_in_backward", None)
    else:
        loss = _FusedChunkedLoss.apply(hidden, weight, signal, targets, spec, norm, stats)
    return loss, stats


@torch.no_grad()
def evaluate_chunks(hidden: Tensor, weight: Tensor, signal: DenseSignal | SparseSignal | TailPriorSignal,
                    targets: Tensor, chunk_size: int = 64) -> dict:
    """Held-out figures at T=1: sums of KL(teacher‖student), student NLL and top-1 agreement."""
    out = {"kl_sum": 0.0, "nll_sum": 0.0, "agree": 0, "tokens": 0, "kl_tokens": 0}
    spec = LossSpec(kind="forward_kl", chunk_size=chunk_size)
    for start in range(0, hidden.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        s_logits = _upcast(hidden[rows] @ weight.T)
        kd, ce, has = chunk_terms(s_logits, signal, rows, targets[rows], spec)
        out["kl_sum"] += float(kd.sum())
        out["kl_tokens"] += int(has.sum())
        out["nll_sum"] += float(ce.sum())
        out["tokens"] += int((targets[rows] != -100).sum())
        if isinstance(signal, DenseSignal | TailPriorSignal):
            t_top = signal.logits(rows).argmax(-1)
        elif isinstance(signal, SparseSignal):
            t_top = signal.ids[rows][:, 0]
        else:
            continue
        out["agree"] += int(((s_logits.argmax(-1) == t_top) & has).sum())
    return out

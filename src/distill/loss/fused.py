"""Memory-bounded distillation loss with the student's output projection fused in.

The student's final hidden states [N, d] and output head [V, d] go in; full [N, V] logits never exist.
Tokens are processed in chunks of C: per chunk the student logits [C, V] are formed and handed to the teacher
signal, which owns its loss math (`distill.signals`): a closed-form gradient where it has one, else per-token
terms that autograd differentiates. In the default 'fused' mode the chunk's gradients with respect to the hidden
states and the head are computed right away (as Liger-Kernel does), so nothing of the chunk survives it.

Peak extra memory of the loss, in float32 values:
    fused:      ≈ k·C·V  (k ≈ 6 live [C, V] buffers: student logits, teacher logits, two log-softmaxes, their
                product/gradient)  + V·d (head gradient) + N·d (hidden gradient)
    recompute:  the same per chunk, at backward time, plus the saved chunk inputs
independent of batch × sequence length. C=256, V=49152: ≈ 300 MB; the naive [B·T, V] path at 4×256 tokens
holds 2 × 4×256×49152 × 4 B = 400 MB for logits alone, plus as much again for each softmax and gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from distill.config import LossConfig
from distill.loss.chunks import CHUNK_BYTES, chunk_rows  # noqa: F401 (CHUNK_BYTES re-exported)
from distill.loss.divergences import cross_entropy
from distill.signals.base import Signal, upcast


def chunk_terms(s_logits: Tensor, signal: Signal, rows: slice, targets: Tensor, loss: LossConfig
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token KD loss, per-token CE loss and a mask of tokens that carry teacher signal, for one chunk."""
    s_logits = upcast(s_logits)
    ce = cross_entropy(s_logits, targets)
    if signal is None or loss.kd_weight == 0:
        return torch.zeros_like(ce), ce, torch.zeros_like(ce, dtype=torch.bool)
    kd, has = signal.kd_terms(s_logits, rows, loss)
    return kd, ce, has


def closed_terms(s_logits: Tensor, signal: Signal, rows: slice, targets: Tensor, loss: LossConfig
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """KD and CE terms with their gradient w.r.t. the student logits in closed form, where the signal has one.

    Returns (kd, ce, has, grad) with grad = ∂(kd_weight·Σkd + ce_weight·Σce)/∂s, or None (then autograd runs
    on `chunk_terms`). Equal to autograd (tested)."""
    if signal is None or loss.kd_weight == 0:
        return None
    closed = signal.closed_form(s_logits, rows, loss)
    if closed is None:
        return None
    log_q, q = closed.log_q, closed.q
    if log_q is None:
        log_q = torch.log_softmax(upcast(s_logits), dim=-1)
        q = log_q.exp() if loss.ce_weight else log_q
    ce = _ce_terms(log_q, q, targets, closed.grad, loss.ce_weight)
    return closed.kd, ce, closed.has, closed.grad


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


class _FusedChunkedLoss(torch.autograd.Function):
    """Loss and its gradient in one pass over the chunks (gradient computed in forward)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=None)
    def forward(ctx, hidden: Tensor, weight: Tensor, signal: Signal, targets: Tensor, loss: LossConfig,
                normalizer: float, stats: dict) -> Tensor:
        # Matmuls run in the hidden states' dtype (bf16 under autocast on GPU); the loss itself in fp32 and
        # the head gradient is accumulated in the parameter's dtype.
        w = weight.to(hidden.dtype)
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(weight) if weight.requires_grad else None  # a frozen head (LoRA): no V·d gradient
        total = hidden.new_zeros((), dtype=torch.float32)
        size = chunk_rows(loss.chunk_size, weight.shape[0], hidden.device)
        for start in range(0, hidden.shape[0], size):
            rows = slice(start, start + size)
            h = hidden[rows]
            logits = h @ w.T
            closed = closed_terms(logits, signal, rows, targets[rows], loss)
            if closed is not None:
                kd, ce, has, g = closed
                g = g.div_(normalizer)
                chunk_loss = (loss.kd_weight * kd + loss.ce_weight * ce).sum() / normalizer
            else:
                logits.requires_grad_(True)
                with torch.enable_grad():
                    kd, ce, has = chunk_terms(logits, signal, rows, targets[rows], loss)
                    chunk_loss = (loss.kd_weight * kd + loss.ce_weight * ce).sum() / normalizer
                    (g,) = torch.autograd.grad(chunk_loss, logits)
            torch.matmul(g.to(w.dtype), w, out=grad_h[rows])
            if grad_w is not None:
                grad_w.addmm_(g.T.to(weight.dtype), h.to(weight.dtype))
            total += chunk_loss.detach()
            _accumulate(stats, kd, ce, has)
        ctx.save_for_backward(grad_h, grad_w)
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out, None if grad_w is None else grad_w * grad_out, None, None, None, None, None


def _accumulate(stats: dict, kd: Tensor, ce: Tensor, has: Tensor) -> None:
    stats["kd_sum"] = stats.get("kd_sum", 0.0) + float(kd.detach().sum())
    stats["ce_sum"] = stats.get("ce_sum", 0.0) + float(ce.detach().sum())
    stats["kd_tokens"] = stats.get("kd_tokens", 0) + int(has.sum())
    stats["tokens"] = stats.get("tokens", 0) + int(ce.numel())


def _recompute_loss(hidden: Tensor, weight: Tensor, signal: Signal, targets: Tensor, loss: LossConfig,
                    normalizer: float, stats: dict) -> Tensor:
    """The same loss with activation checkpointing per chunk: logits are recomputed in backward."""

    def one_chunk(h: Tensor, w: Tensor, rows: slice, tgt: Tensor) -> Tensor:
        kd, ce, has = chunk_terms(h @ w.T, signal, rows, tgt, loss)
        if torch.is_grad_enabled() and not stats.get("_in_backward"):
            _accumulate(stats, kd, ce, has)
        return (loss.kd_weight * kd + loss.ce_weight * ce).sum() / normalizer

    total = hidden.new_zeros((), dtype=torch.float32)
    size = chunk_rows(loss.chunk_size, weight.shape[0], hidden.device)
    for start in range(0, hidden.shape[0], size):
        rows = slice(start, start + size)
        total = total + checkpoint(one_chunk, hidden[rows], weight, rows, targets[rows], use_reentrant=False)
    stats["_in_backward"] = True
    return total


def distill_loss(hidden: Tensor, weight: Tensor, signal: Signal, targets: Tensor, loss: LossConfig,
                 normalizer: float | None = None) -> tuple[Tensor, dict]:
    """Weighted KD + CE loss over N scored positions, summed and divided by `normalizer` (default N).

    Args:
        hidden: student final hidden states at the scored positions, [N, d] (requires grad).
        weight: student output head restricted to the real vocabulary, [V, d].
        signal: the teacher's view of the same N positions (any signal kind, or None).
        targets: next-token ids at those positions, [N] (-100 = not a data target).
        loss: the loss configuration (kind, temperature, weights, chunk size, backward mode).
    Returns:
        the loss (a scalar with gradient) and sums for logging: kd_sum, ce_sum, kd_tokens, tokens.
    """
    stats: dict = {}
    norm = float(normalizer if normalizer is not None else max(hidden.shape[0], 1))
    if loss.backward == "recompute":
        total = _recompute_loss(hidden, weight, signal, targets, loss, norm, stats)
        stats.pop("_in_backward", None)
    else:
        total = _FusedChunkedLoss.apply(hidden, weight, signal, targets, loss, norm, stats)
    return total, stats


EVAL_LOSS = LossConfig(kind="forward_kl")  # held-out figures: KL(teacher‖student) at T=1


@torch.no_grad()
def evaluate_chunks(hidden: Tensor, weight: Tensor, signal: Signal, targets: Tensor,
                    chunk_size: int | str = "auto") -> dict:
    """Held-out figures at T=1: sums of KL(teacher‖student), student NLL and top-1 agreement."""
    out = {"kl_sum": 0.0, "nll_sum": 0.0, "agree": 0, "tokens": 0, "kl_tokens": 0}
    size = chunk_rows(chunk_size, weight.shape[0], hidden.device)
    for start in range(0, hidden.shape[0], size):
        rows = slice(start, start + size)
        s_logits = upcast(hidden[rows] @ weight.T)
        kd, ce, has = chunk_terms(s_logits, signal, rows, targets[rows], EVAL_LOSS)
        out["kl_sum"] += float(kd.sum())
        out["kl_tokens"] += int(has.sum())
        out["nll_sum"] += float(ce.sum())
        out["tokens"] += int((targets[rows] != -100).sum())
        t_top = signal.top1(rows) if signal is not None else None
        if t_top is not None:
            out["agree"] += int(((s_logits.argmax(-1) == t_top) & has).sum())
    return out

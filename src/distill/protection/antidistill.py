"""Antidistillation sampling (Savani et al. 2025): answers that stay good for users but poison distillation.

A proxy student (a small model on the teacher's tokenizer) stands in for whoever distills the served answers. Let
L(θ) be the proxy's loss on held-out text (mean next-token NLL) and g = ∇θ L. Fine-tuning the proxy on a sampled
token v moves θ along ∇θ log p_θ(v | x), which changes L by about η · ⟨g, ∇θ log p_θ(v | x)⟩ =: η · Δ(v). Tokens with
a large Δ are the ones whose imitation hurts a student most. The sampler adds λ · Δ to the teacher's logits before
sampling, with the paper's finite-difference form (one forward of two perturbed proxy copies per step, no
per-token gradients):

    Δ(v) ≈ [log p_{θ + ε ĝ}(v | x) − log p_{θ − ε ĝ}(v | x)] / (2 ε),   ĝ = g / ‖g‖

(normalising g makes ε a distance in parameter space). λ = 0 is plain sampling. The engine divides the processed
scores by the request's temperature afterwards, so the bias is λ / T on the temperature-scaled scale; greedy
requests (temperature 0) take the argmax of the biased scores.

`AntidistillProcessor(proxy, calibration, lam, eps)` is an HF-style logits processor
`(input_ids [1, seq], scores [1, vocab]) → scores` for the server's per-account processors (`distill serve
--antidistill PROXY --antidistill-lambda L`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from distill.errors import DistillError


def loss_gradient(proxy: nn.Module, sequences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """g = ∇θ of the proxy's mean next-token NLL over `sequences` (one gradient per parameter)."""
    params = [p for p in proxy.parameters()]
    for p in params:
        p.requires_grad_(True)
    grads = [torch.zeros_like(p) for p in params]
    for seq in sequences:
        ids = torch.tensor([list(seq)])
        logits = proxy(input_ids=ids).logits[0, :-1]
        loss = nn.functional.cross_entropy(logits.float(), ids[0, 1:]) / len(sequences)
        for acc, g in zip(grads, torch.autograd.grad(loss, params, allow_unused=True), strict=True):
            if g is not None:
                acc += g
    return grads


def perturbed(proxy: nn.Module, direction: list[torch.Tensor], step: float) -> nn.Module:
    """A frozen copy of the proxy moved by `step` along `direction` (same parameter order)."""
    out = copy.deepcopy(proxy).eval()
    with torch.no_grad():
        for p, d in zip(out.parameters(), direction, strict=True):
            p.add_(d, alpha=step)
            p.requires_grad_(False)
    return out


class AntidistillProcessor:
    """Adds λ · Δ(v) (above) to the teacher's next-token scores."""

    def __init__(self, proxy: nn.Module, calibration: Sequence[Sequence[int]], lam: float, eps: float = 1e-3):
        if lam < 0 or eps <= 0:
            raise DistillError(f"antidistillation needs lambda ≥ 0 and eps > 0 (got {lam}, {eps})",
                               where="--antidistill-lambda / --antidistill-eps", fix="e.g. --antidistill-lambda 1")
        if not calibration:
            raise DistillError("antidistillation needs held-out text to compute the proxy's loss gradient",
                               where="--antidistill-data", fix="point it at some text (default: shakespeare)")
        g = loss_gradient(proxy, calibration)
        norm = torch.sqrt(sum((x.double() ** 2).sum() for x in g))
        if not torch.isfinite(norm) or norm == 0:
            raise DistillError("the proxy's loss gradient is zero or not finite", where="--antidistill",
                               fix="use another proxy model or other calibration text")
        unit = [x / norm.to(x.dtype) for x in g]
        self.lam, self.eps = lam, eps
        self.plus, self.minus = perturbed(proxy, unit, eps), perturbed(proxy, unit, -eps)
        self.vocab = proxy.get_output_embeddings().weight.shape[0]
        for p in proxy.parameters():
            p.requires_grad_(False)

    @torch.inference_mode()
    def delta(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Δ(v) for the next token after each row of `input_ids` ([batch, seq] → [batch, proxy vocab])."""
        # only the last position's logits are needed (the head is most of a small proxy's compute)
        up = torch.log_softmax(self.plus(input_ids=input_ids, logits_to_keep=1).logits[:, -1].float(), -1)
        down = torch.log_softmax(self.minus(input_ids=input_ids, logits_to_keep=1).logits[:, -1].float(), -1)
        return (up - down) / (2 * self.eps)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.lam == 0:
            return scores
        d = self.delta(input_ids.to(torch.long))
        n = min(d.shape[-1], scores.shape[-1])
        out = scores.clone()
        out[..., :n] += self.lam * d[..., :n].to(scores.dtype)
        return out


def load_antidistill(proxy_spec: str, teacher_tokenizer, lam: float, eps: float = 1e-3, data: str = "shakespeare",
                     sequences: int = 8, seq_len: int = 128) -> AntidistillProcessor:
    """The processor for `distill serve --antidistill PROXY`: the proxy must share the served model's tokenizer."""
    from distill.config import DataConfig
    from distill.data.corpus import load_corpus
    from distill.models.loading import load_model, tokenizer_fingerprint

    proxy = load_model(proxy_spec)
    if tokenizer_fingerprint(proxy.tokenizer) != tokenizer_fingerprint(teacher_tokenizer):
        raise DistillError("the antidistillation proxy has another tokenizer than the served model", where=proxy_spec,
                           fix="use a proxy student built on the served model's tokenizer (e.g. a `distill train` "
                               "student of it)")
    corpus = load_corpus(DataConfig(path=data, seq_len=seq_len), proxy.tokenizer)
    calibration = [ex["input_ids"].tolist() for ex in corpus.heldout[:sequences]]
    return AntidistillProcessor(proxy.model.float(), calibration, lam, eps)

"""The ULD loss against a direct NumPy reference, its gradients, and its path through the fused loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.config import LossConfig
from distill.loss.fused import distill_loss
from distill.signals import SortedSignal, uld_loss


def _reference(t_sorted: np.ndarray, s_logits: np.ndarray, k: int) -> np.ndarray:
    s = np.exp(s_logits - s_logits.max(-1, keepdims=True))
    s = s / s.sum(-1, keepdims=True)
    s_sorted = -np.sort(-s, axis=-1)
    n = max(k, s_sorted.shape[-1], t_sorted.shape[-1])
    pad = lambda a: np.pad(a, ((0, 0), (0, n - a.shape[-1])))  # noqa: E731
    return np.abs(pad(t_sorted[:, :k]) - pad(s_sorted[:, :k])).sum(-1)


@pytest.mark.parametrize("k,V", [(8, 50), (50, 20), (5, 5)])
def test_uld_matches_numpy(k, V):
    g = torch.Generator().manual_seed(k * V)
    t = torch.softmax(torch.randn(6, 37, generator=g) * 2, -1).sort(-1, descending=True).values[:, :k]
    s_logits = torch.randn(6, V, generator=g, dtype=torch.float64) * 2
    got = uld_loss(t, s_logits, k)
    ref = _reference(t.double().numpy(), s_logits.numpy(), k)
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=1e-5, atol=1e-6)


def test_uld_gradient_matches_sort_reference():
    g = torch.Generator().manual_seed(1)
    t = torch.softmax(torch.randn(4, 30, generator=g), -1).sort(-1, descending=True).values[:, :10]
    x = torch.randn(4, 40, generator=g, dtype=torch.float64, requires_grad=True)
    uld_loss(t.double(), x, 10).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    s_sorted = torch.softmax(x2, -1).sort(-1, descending=True).values[:, :10]
    (t.double() - s_sorted).abs().sum(-1).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    assert x.grad.abs().sum() > 0


def test_uld_is_zero_for_permuted_identical_distributions():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(3, 12, generator=g), -1)
    perm = p[:, torch.randperm(12, generator=g)]
    t_sorted = p.sort(-1, descending=True).values
    assert torch.allclose(uld_loss(t_sorted, perm.log(), 12), torch.zeros(3), atol=1e-6)


@pytest.mark.parametrize("backward", ["fused", "recompute"])
def test_fused_loss_with_sorted_signal(backward):
    g = torch.Generator().manual_seed(2)
    N, d, V, k = 9, 8, 30, 6
    h = torch.randn(N, d, generator=g, requires_grad=True)
    w = torch.randn(V, d, generator=g, requires_grad=True)
    t = torch.softmax(torch.randn(N, 50, generator=g), -1).sort(-1, descending=True).values[:, :k]
    valid = torch.tensor([True, False, True, True, False, True, True, True, False])
    targets = torch.randint(0, V, (N,), generator=g)
    spec = LossConfig(kd_weight=1.0, ce_weight=0.5, chunk_size=4, backward=backward)
    loss, stats = distill_loss(h, w, SortedSignal(t, valid), targets, spec)
    loss.backward()
    h2, w2 = h.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    logits = h2 @ w2.T
    kd = torch.where(valid, uld_loss(t, logits, k), torch.zeros(N))
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    ref = (kd + 0.5 * ce).sum() / N
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h.grad, h2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(w.grad, w2.grad, rtol=1e-4, atol=1e-6)
    assert stats["kd_tokens"] == int(valid.sum())

"""The fused chunked loss equals the naive full-logits computation (values and gradients), in both
backward modes, for dense and sparse teacher signals, with temperature and a CE term."""

from __future__ import annotations

import pytest
import torch

from distill.config import LossConfig
from distill.loss.divergences import LOSSES, divergence, sparse_buckets, student_buckets
from distill.loss.fused import CHUNK_BYTES, chunk_rows, distill_loss, evaluate_chunks
from distill.signals import DenseSignal, SparseSignal


def _inputs(seed=0, N=37, d=8, V=50):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, d, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(V, d, generator=g, dtype=torch.float64, requires_grad=True)
    th, tW = torch.randn(N, 6, generator=g, dtype=torch.float64), torch.randn(V, 6, generator=g, dtype=torch.float64)
    targets = torch.randint(0, V, (N,), generator=g)
    targets[[3, 10]] = -100
    return h, W, th, tW, targets


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("mode", ["fused", "recompute"])
@pytest.mark.parametrize("T", [1.0, 1.7])
def test_dense_matches_naive(kind, mode, T):
    """Fused mode takes the closed-form gradient for forward/reverse KL and JSD, autograd for the rest."""
    h, W, th, tW, targets = _inputs()
    spec = LossConfig(kind=kind, temperature=T, ce_weight=0.3, kd_weight=0.8, chunk_size=10, backward=mode)
    loss, stats = distill_loss(h, W, DenseSignal(th, tW), targets, spec)
    grads = torch.autograd.grad(loss, [h, W])
    s_logits, t_logits = h @ W.T, th @ tW.T
    kd = divergence(kind)(torch.log_softmax(t_logits / T, -1), torch.log_softmax(s_logits / T, -1)) * T * T
    ce = torch.nn.functional.cross_entropy(s_logits, targets, reduction="none")
    ref = (0.8 * kd + 0.3 * ce).sum() / h.shape[0]
    ref_grads = torch.autograd.grad(ref, [h, W])
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-8)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    assert stats["tokens"] == h.shape[0] and stats["kd_tokens"] == h.shape[0]
    assert abs(stats["kd_sum"] - float(kd.sum())) < 1e-6


@pytest.mark.parametrize("kind", ["forward_kl", "jsd", "reverse_kl"])
@pytest.mark.parametrize("T", [1.0, 2.0])
def test_sparse_matches_bucket_reference(kind, T):
    h, W, th, tW, targets = _inputs(seed=3)
    t_logp = torch.log_softmax(th @ tW.T, -1)
    top = t_logp.topk(5, dim=-1)
    ids, lps = top.indices.clone(), top.values.clone()
    ids[7] = -1  # a position without teacher data
    lps[7] = -float("inf")
    spec = LossConfig(kind=kind, temperature=T, chunk_size=8, ce_weight=0.4)
    loss, stats = distill_loss(h, W, SparseSignal(ids, lps), targets, spec)
    g, gw = torch.autograd.grad(loss, [h, W])
    s_logp = torch.log_softmax(h @ W.T, -1)
    tb = torch.log_softmax(sparse_buckets(lps) / T, -1)
    sb = torch.log_softmax(student_buckets(s_logp, ids) / T, -1)
    kd = divergence(kind)(tb, sb) * T * T
    kd[7] = 0.0
    ce = torch.nn.functional.cross_entropy(h @ W.T, targets, reduction="none")
    ref = (kd + 0.4 * ce).sum() / h.shape[0]
    g_ref, gw_ref = torch.autograd.grad(ref, [h, W])
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-6, atol=1e-8)
    assert stats["kd_tokens"] == h.shape[0] - 1


def test_no_teacher_is_plain_cross_entropy():
    h, W, _, _, targets = _inputs(seed=5)
    loss, _ = distill_loss(h, W, None, targets, LossConfig(kd_weight=1.0, ce_weight=1.0, chunk_size=7))
    ref = torch.nn.functional.cross_entropy(h @ W.T, targets, reduction="sum") / h.shape[0]
    torch.testing.assert_close(loss.double(), ref)


def test_evaluate_chunks_counts_agreement_and_kl():
    h, W, th, tW, targets = _inputs(seed=9)
    with torch.no_grad():
        out = evaluate_chunks(h, W, DenseSignal(th, tW), targets, chunk_size=6)
        s, t = h @ W.T, th @ tW.T
        kl = divergence("forward_kl")(torch.log_softmax(t, -1), torch.log_softmax(s, -1)).sum()
    assert out["agree"] == int((s.argmax(-1) == t.argmax(-1)).sum())
    assert abs(out["kl_sum"] - float(kl)) < 1e-6
    assert out["tokens"] == int((targets != -100).sum())


@pytest.mark.parametrize("mode", ["fused", "recompute"])
def test_a_frozen_head_gets_no_gradient_and_the_hidden_states_the_same_one(mode):
    """A LoRA student's head is frozen: the fused loss skips its V×d gradient, the hidden states' is unchanged."""
    h, W, th, tW, targets = _inputs(seed=11)
    spec = LossConfig(kind="jsd", ce_weight=0.3, chunk_size=10, backward=mode)
    (ref,) = torch.autograd.grad(distill_loss(h, W, DenseSignal(th, tW), targets, spec)[0], [h])
    frozen = W.detach()
    loss, _ = distill_loss(h, frozen, DenseSignal(th, tW), targets, spec)
    loss.backward()
    assert frozen.grad is None
    torch.testing.assert_close(h.grad, ref, rtol=0, atol=1e-12)


def test_auto_chunk_rows_fit_the_allocator_budget():
    """'auto' = the most rows (multiple of 16) whose [rows, V] fp32 buffer fits 26 MiB on CPU / 128 MiB on GPU."""
    assert chunk_rows(64, 49152) == 64  # an integer is taken as given
    for vocab, device in [(49152, "cpu"), (128256, "cpu"), (262144, "cpu"), (49152, "cuda"), (128256, "cuda")]:
        rows = chunk_rows("auto", vocab, device)
        budget = CHUNK_BYTES[device]
        assert rows % 16 == 0 and rows * vocab * 4 <= budget < (rows + 16) * vocab * 4
    assert chunk_rows("auto", 49152) == 128 and chunk_rows("auto", 128256) == 48
    assert chunk_rows("auto", 50) == 4096  # a tiny vocabulary: capped


def test_auto_chunking_gives_the_loss_of_any_fixed_chunking():
    h, W, th, tW, targets = _inputs(seed=13)
    ref, _ = distill_loss(h, W, DenseSignal(th, tW), targets, LossConfig(kind="jsd", ce_weight=0.2, chunk_size=5))
    auto, _ = distill_loss(h, W, DenseSignal(th, tW), targets, LossConfig(kind="jsd", ce_weight=0.2))
    torch.testing.assert_close(auto, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_closed_form_stays_finite_where_probabilities_underflow(kind):
    """float32 with logits 300 nats apart: p and q underflow to 0 in places (m = βp + (1-β)q is clamped, never
    log 0); the loss and gradients match a float64 autograd reference."""
    g = torch.Generator().manual_seed(21)
    h = torch.randn(24, 8, generator=g) * 12
    W = torch.randn(60, 8, generator=g) * 3
    th, tW = torch.randn(24, 6, generator=g) * 10, torch.randn(60, 6, generator=g) * 5
    targets = torch.randint(0, 60, (24,), generator=g)
    spec = LossConfig(kind=kind, chunk_size=8)
    hh, WW = h.clone().requires_grad_(True), W.clone().requires_grad_(True)
    loss, _ = distill_loss(hh, WW, DenseSignal(th, tW), targets, spec)
    grads = torch.autograd.grad(loss, [hh, WW])
    assert (th @ tW.T).softmax(-1).eq(0).any() and (h @ W.T).softmax(-1).eq(0).any()  # underflow does happen
    h64, W64 = h.double().requires_grad_(True), W.double().requires_grad_(True)
    kd = divergence(kind)(torch.log_softmax((th @ tW.T).double(), -1), torch.log_softmax(h64 @ W64.T, -1))
    ref_grads = torch.autograd.grad(kd.sum() / 24, [h64, W64])
    assert torch.isfinite(loss) and all(torch.isfinite(x).all() for x in grads)
    torch.testing.assert_close(loss.double(), kd.sum() / 24, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-3, atol=1e-3)

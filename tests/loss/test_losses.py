"""Every loss against a direct reference computation (plain probabilities, no log-space tricks): values
and gradients."""

from __future__ import annotations

import math
import zlib

import pytest
import torch

from distill.loss import divergences as losses


def _ref(name: str, p: torch.Tensor, q: torch.Tensor, beta: float, alpha: float) -> torch.Tensor:
    """Textbook definitions on probabilities."""

    def kl(a, b):
        return (a * (a / b).log()).sum(-1)

    if name == "forward_kl":
        return kl(p, q)
    if name == "reverse_kl":
        return kl(q, p)
    if name == "jsd":
        m = beta * p + (1 - beta) * q
        return beta * kl(p, m) + (1 - beta) * kl(q, m)
    if name == "skew_forward_kl":
        return kl(p, alpha * p + (1 - alpha) * q)
    if name == "skew_reverse_kl":
        return kl(q, alpha * q + (1 - alpha) * p)
    if name == "tvd":
        return 0.5 * (p - q).abs().sum(-1)
    raise AssertionError(name)


@pytest.mark.parametrize("name", losses.LOSSES)
@pytest.mark.parametrize("beta,alpha", [(0.5, 0.1), (0.2, 0.3), (0.9, 0.0)])
def test_values_and_gradients_match_reference(name, beta, alpha):
    g = torch.Generator().manual_seed(zlib.crc32(f"{name}/{beta}/{alpha}".encode()))  # stable across runs
    t_logits = torch.randn(7, 33, generator=g, dtype=torch.float64) * 2
    s_logits = torch.randn(7, 33, generator=g, dtype=torch.float64, requires_grad=True)
    fn = losses.divergence(name, beta=beta, alpha=alpha)
    ours = fn(torch.log_softmax(t_logits, -1), torch.log_softmax(s_logits, -1))
    ref = _ref(name, torch.softmax(t_logits, -1), torch.softmax(s_logits, -1), beta, alpha)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-10)
    (g_ours,) = torch.autograd.grad(ours.sum(), s_logits)
    (g_ref,) = torch.autograd.grad(ref.sum(), s_logits)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-7, atol=1e-9)


def test_divergences_vanish_on_equal_distributions_and_are_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    x = torch.log_softmax(torch.randn(5, 20, generator=g), -1)
    y = torch.log_softmax(torch.randn(5, 20, generator=g), -1)
    for name in losses.LOSSES:
        fn = losses.divergence(name)
        assert fn(x, x).abs().max() < 1e-5, name
        assert (fn(x, y) > 0).all(), name


def test_jsd_limits_are_forward_and_reverse_kl():
    g = torch.Generator().manual_seed(2)
    t, s = torch.log_softmax(torch.randn(4, 9, generator=g), -1), torch.log_softmax(torch.randn(4, 9, generator=g), -1)
    torch.testing.assert_close(losses.jsd(t, s, 0.0), losses.forward_kl(t, s))
    torch.testing.assert_close(losses.jsd(t, s, 1.0), losses.reverse_kl(t, s))


def test_zero_probability_tokens_contribute_nothing():
    t = torch.tensor([[0.0, -math.inf, math.log(1.0)]])  # not normalized on purpose: mass on 0 and 2
    t = torch.log_softmax(t, -1)
    s = torch.log_softmax(torch.tensor([[0.3, 2.0, -1.0]]), -1)
    value = losses.forward_kl(t, s)
    assert torch.isfinite(value).all()
    p = t.exp()
    expected = sum(float(p[0, i] * (t[0, i] - s[0, i])) for i in (0, 2))
    assert abs(float(value) - expected) < 1e-6


def test_sparse_buckets_form_distributions_and_match_dense_when_k_is_full():
    g = torch.Generator().manual_seed(3)
    logits_t, logits_s = torch.randn(6, 12, generator=g), torch.randn(6, 12, generator=g)
    t_logp, s_logp = torch.log_softmax(logits_t, -1), torch.log_softmax(logits_s, -1)
    top = t_logp.topk(4, dim=-1)
    tb = losses.sparse_buckets(top.values)
    sb = losses.student_buckets(s_logp, top.indices)
    torch.testing.assert_close(tb.exp().sum(-1), torch.ones(6))
    torch.testing.assert_close(sb.exp().sum(-1), torch.ones(6))
    # residual bucket = the mass outside the top-k, on both sides
    mask = torch.ones_like(s_logp, dtype=torch.bool).scatter(-1, top.indices, False)
    torch.testing.assert_close(sb[:, -1].exp(), (s_logp.exp() * mask).sum(-1), rtol=1e-4, atol=1e-6)
    # with k = V the bucket is empty and the sparse loss equals the dense one
    full = t_logp.topk(12, dim=-1)
    sparse = losses.forward_kl(losses.sparse_buckets(full.values), losses.student_buckets(s_logp, full.indices))
    torch.testing.assert_close(sparse, losses.forward_kl(t_logp, s_logp), rtol=1e-4, atol=1e-5)


def test_padded_sparse_slots_carry_no_mass():
    s_logp = torch.log_softmax(torch.randn(2, 10, generator=torch.Generator().manual_seed(4)), -1)
    ids = torch.tensor([[3, 5, -1], [1, -1, -1]])
    sb = losses.student_buckets(s_logp, ids)
    assert torch.isinf(sb[0, 2]) and torch.isinf(sb[1, 1])
    torch.testing.assert_close(sb.exp().sum(-1), torch.ones(2))


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="forward_kl"):
        losses.divergence("kl_forward")

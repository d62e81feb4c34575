"""The quantized top-k encoding: size, round trip within the documented bound, clamping, id widths."""

from __future__ import annotations

import numpy as np
import torch

from distill.store import codec


def _sorted_topk(n: int, k: int, scale: float, vocab: int = 49152, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, vocab, generator=g) * scale
    values, ids = torch.log_softmax(logits, -1).topk(k, -1)
    return ids, values


def test_record_is_100_bytes_at_k32_and_ids_widen_past_65536():
    assert codec.record_dtype(32, 49152).itemsize == 100
    assert codec.record_dtype(32, 65536)["ids"].base == np.dtype("<u2")
    assert codec.record_dtype(32, 151936).itemsize == 164
    ids = torch.tensor([[151000, 70000]])
    recs = codec.encode(ids, torch.tensor([[-0.5, -2.0]]), 151936)
    assert codec.decode(recs)[0].tolist() == [[151000, 70000]]


def test_round_trip_within_documented_bound():
    for scale in (0.5, 3.0, 8.0):  # flat to very peaked distributions
        ids, values = _sorted_topk(64, 32, scale, vocab=4096, seed=int(scale))
        recs = codec.encode(ids, values, 4096)
        dec_ids, dec = codec.decode(recs)
        assert torch.equal(dec_ids, ids)
        bound = torch.from_numpy(codec.error_bound(recs))
        in_grid = values >= values[:, :1] - codec.MAX_SPAN
        err = (dec - values).abs()
        assert bool((err[in_grid] <= bound[in_grid]).all())
        # the bound is tight enough to matter: at most a grid step of the actual span, and much finer near
        # the top-1, where the mass is (the square-root grid)
        span = (values[:, 0] - values[:, -1].clamp(min=values[:, 0] - codec.MAX_SPAN))[:, None]
        assert bool((bound <= span / 255 + 0.01).all())
        near_top = (values[:, :1] - values) < 0.5
        assert bool((err[near_top] <= (0.5 * span).sqrt().expand_as(err)[near_top] / 255 + 0.002).all())
        mass = values.double().exp().sum(-1)
        assert float((dec.double().exp().sum(-1) - mass).abs().max()) < 0.01
        # decoded values stay sorted and never exceed log 1
        assert bool((dec[:, :-1] >= dec[:, 1:]).all()) and bool((dec <= 0).all())


def test_entries_beyond_max_span_are_clamped_not_wrapped():
    values = torch.tensor([[-0.01, -1.0, -50.0, -200.0]])
    recs = codec.encode(torch.tensor([[1, 2, 3, 4]]), values, 10)
    _, dec = codec.decode(recs)
    assert abs(float(dec[0, 1]) + 1.0) <= float(codec.error_bound(recs)[0, 1])
    assert torch.allclose(dec[0, 2:], torch.full((2,), -0.01 - codec.MAX_SPAN), atol=0.02)


def test_flat_distribution_zero_span():
    values = torch.full((2, 4), -np.log(4.0))
    _, dec = codec.decode(codec.encode(torch.arange(8).view(2, 4), values, 8))
    assert torch.allclose(dec, values, atol=1e-3)

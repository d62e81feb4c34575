"""The vectorized green list against a plain-Python reference of the scheme, and the processor's bias."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import torch

from distill.keys.watermark import WatermarkKey
from distill.protection.watermark.greenlist import green_mask, score_pairs
from distill.protection.watermark.processor import WatermarkLogitsProcessor

V = 3000


def _fmix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def _seed(secret: bytes, msg: bytes) -> tuple[int, int]:
    v = int.from_bytes(hmac.new(secret, msg, hashlib.sha256).digest()[:8], "big") >> 1
    return v & 0xFFFFFFFF, (v >> 31) & 0xFFFFFFFF


def ref_green(key: WatermarkKey, window: list[int], x: int) -> bool:
    k = int.from_bytes(hmac.new(key.secret, b"final", hashlib.sha256).digest()[:8], "big") & 0xFFFFFFFF
    thr = round(key.gamma * 2**32)
    if key.self_hash:
        ws = []
        for c in window:
            lo, hi = _seed(key.secret, b"tok" + c.to_bytes(4, "big"))
            ws.append(_fmix(_fmix(x ^ lo) ^ hi))
        return _fmix(min(ws) ^ k) < thr
    if key.context_width == 1:
        lo, hi = _seed(key.secret, b"tok" + window[0].to_bytes(4, "big"))
    else:
        lo, hi = _seed(key.secret, b"win" + b"".join(c.to_bytes(4, "big") for c in window))
    return _fmix(_fmix(_fmix(x ^ lo) ^ hi) ^ k) < thr


def _key(self_hash: bool, h: int, gamma: float = 0.25) -> WatermarkKey:
    return WatermarkKey(b"k" * 32, gamma, 2.0, h, self_hash, V)


def test_vectorized_matches_reference():
    g = torch.Generator().manual_seed(0)
    for self_hash, h in [(True, 4), (False, 1), (False, 3)]:
        key = _key(self_hash, h)
        windows = torch.randint(0, V, (40, h), generator=g)
        tokens = torch.randint(0, V, (40,), generator=g)
        green, _ = score_pairs(key, windows, tokens)
        assert green == [ref_green(key, w, t) for w, t in zip(windows.tolist(), tokens.tolist(), strict=True)]
        mask = green_mask(key, windows[:2], V)
        for b in range(2):
            for x in range(0, V, 97):
                assert bool(mask[b, x]) == ref_green(key, windows[b].tolist(), x)


def test_green_fraction_is_gamma_and_varies_with_context():
    key = _key(True, 4)
    windows = torch.randint(0, V, (20, 4), generator=torch.Generator().manual_seed(1))
    mask = green_mask(key, windows, V)
    frac = mask.float().mean().item()
    sd = (0.25 * 0.75 / mask.numel()) ** 0.5
    assert abs(frac - 0.25) < 5 * sd
    assert not torch.equal(mask[0], mask[1])
    other = green_mask(WatermarkKey(b"j" * 32, 0.25, 2.0, 4, True, V), windows, V)
    assert (mask == other).float().mean() < 0.7  # another key, another green list


def test_processor_adds_delta_on_green_only_and_topk_agrees():
    key = _key(True, 4)
    ids = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(2))
    scores = torch.randn(2, V + 5, generator=torch.Generator().manual_seed(3))  # padded columns get no bias
    out = WatermarkLogitsProcessor(key)(ids, scores.clone())
    mask = green_mask(key, ids[:, -4:], V)
    assert torch.allclose(out[:, :V] - scores[:, :V], 2.0 * mask.float())
    assert torch.equal(out[:, V:], scores[:, V:])
    top = WatermarkLogitsProcessor(key, top_k=50)(ids, scores.clone())
    idx = scores[:, :V].topk(50, dim=-1).indices
    assert torch.allclose(top.gather(1, idx), out.gather(1, idx))
    assert torch.equal(WatermarkLogitsProcessor(key)(ids[:, :3], scores), scores)  # too little context


@pytest.mark.parametrize("h,self_hash", [(4, True), (1, False), (3, False)])
def test_green_mask_row_cache_matches_direct_values_through_evictions(monkeypatch, h, self_hash):
    """The whole-vocabulary mask reuses cached per-token rows; with a cache far smaller than the tokens seen
    (constant eviction) every step must still equal the direct computation."""
    from distill.protection.watermark import greenlist
    from distill.protection.watermark.greenlist import green_values, threshold

    monkeypatch.setattr(greenlist, "ROW_CACHE_SIZE", 3)
    key = WatermarkKey(bytes(range(32)), 0.25, 2.0, h, self_hash, V)
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        windows = torch.randint(0, 40, (5, h), generator=g)  # repeats within and across steps
        direct = green_values(key, windows, torch.arange(V)[None])[0] < threshold(key.gamma)
        assert torch.equal(green_mask(key, windows, V), direct)

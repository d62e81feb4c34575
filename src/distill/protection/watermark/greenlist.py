"""The green list: a keyed pseudo-random function of (context window, candidate token) -> green or red.

Each vocabulary id `c` gets a 64-bit value A[c] = HMAC-SHA256(key, "tok" || c)[:8] (a table built once per
key). For a candidate token x:

* self-hash (default, h = 4; the "anchored min-hash, self-salted" scheme of Kirchenbauer et al. 2023): for each
  context token c_i, w_i(x) = mix(A[c_i], x); the seed of x is the smallest w_i(x), so it depends on x itself and
  on one *anchor* token of the window (robust to edits of the other h-1 tokens). x is green iff
  fmix32(min_i w_i(x) XOR K) < gamma * 2^32.
* left-hash (h tokens, plain): the seed is S = HMAC-SHA256(key, "win" || window)[:8] (for h = 1 simply A[c]);
  x is green iff fmix32(mix(S, x) XOR K) < gamma * 2^32.

`mix(a, x) = fmix32(fmix32(x XOR a_lo) XOR a_hi)` with MurmurHash3's 32-bit finalizer. Everything is evaluated
with torch int64 ops on values below 2^32 (no overflow), vectorized over the whole vocabulary, so one decoding
step costs a few dozen elementwise ops on [B, h, V] and no permutation; for self-hash and h = 1 the per-token
rows mix(A[c], .) are LRU-cached (`green_mask`), leaving a min over h rows and one fmix32 per candidate.

Under the null hypothesis (text written without the key), distinct *units* are green independently with
probability exactly round(gamma * 2^32) / 2^32. A unit is (anchor token, x) for self-hash and (window, x) for
left-hash: repeated units must be scored once.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict

import torch

from distill.keys.watermark import WatermarkKey

M32 = 0xFFFFFFFF
_C1, _C2 = 0x85EBCA6B, 0xC2B2AE35

_TABLES: dict[tuple[bytes, int], tuple[torch.Tensor, torch.Tensor, int]] = {}
_LOCK = threading.Lock()


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """(a * c) mod 2^32 for int64 tensors holding values in [0, 2^32), without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (a * lo + (((a * hi) & 0xFFFF) << 16)) & M32


def fmix32(h: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finalizer (a bijection on [0, 2^32)) on int64 tensors."""
    h = h ^ (h >> 16)
    h = _mul32(h, _C1)
    h = h ^ (h >> 13)
    h = _mul32(h, _C2)
    return h ^ (h >> 16)


def threshold(gamma: float) -> int:
    """Green iff the 32-bit value is below this; the exact green probability is threshold / 2^32."""
    return int(round(gamma * 2**32))


def exact_gamma(gamma: float) -> float:
    """The green probability actually used (gamma rounded to a multiple of 2^-32)."""
    return threshold(gamma) / 2**32


def _digest64(secret: bytes, msg: bytes) -> int:
    return int.from_bytes(hmac.new(secret, msg, hashlib.sha256).digest()[:8], "big")


def key_tables(key: WatermarkKey, vocab_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(A_lo[V], A_hi[V], K) for `key`: the per-token seeds and the final mixing constant (cached per key)."""
    v = int(vocab_size or key.vocab_size)
    cache_id = (hashlib.sha256(key.secret).digest(), v)
    with _LOCK:
        hit = _TABLES.get(cache_id)
    if hit is not None:
        return hit
    vals = [_digest64(key.secret, b"tok" + c.to_bytes(4, "big")) for c in range(v)]
    t = torch.tensor([x >> 1 for x in vals], dtype=torch.int64)  # 63 bits fit int64
    a_lo, a_hi = t & M32, (t >> 31) & M32
    k = _digest64(key.secret, b"final") & M32
    out = (a_lo, a_hi, k)
    with _LOCK:
        if len(_TABLES) > 64:
            _TABLES.clear()
        _TABLES[cache_id] = out
    return out


def _mix(a_lo: torch.Tensor, a_hi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return fmix32(fmix32(x ^ a_lo) ^ a_hi)


def _window_seeds(key: WatermarkKey, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-hash seeds for windows [N, h] (h > 1): HMAC of the window's ids."""
    seeds = []
    for row in windows.tolist():
        msg = b"win" + b"".join(int(c).to_bytes(4, "big") for c in row)
        seeds.append(_digest64(key.secret, msg) >> 1)
    t = torch.tensor(seeds, dtype=torch.int64).reshape(windows.shape[:-1])
    return t & M32, (t >> 31) & M32


def _lefthash_values(key: WatermarkKey, windows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Left-hash 32-bit values for windows [N, h] and tokens [N, X] (or [1, X]): u[N, X]; green iff u < thr."""
    a_lo, a_hi, k = key_tables(key)
    if key.context_width == 1:
        s_lo, s_hi = a_lo[windows[:, 0]], a_hi[windows[:, 0]]
    else:
        s_lo, s_hi = _window_seeds(key, windows)
    return fmix32(_mix(s_lo.unsqueeze(-1), s_hi.unsqueeze(-1), tokens) ^ k)


def green_values(key: WatermarkKey, windows: torch.Tensor, cands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """32-bit values u [B, X] for windows [B, h] and candidates [B, X] (or [1, X]); green iff u < threshold.

    Also returns the anchor token of each (window, candidate) for self-hash (None for left-hash).
    """
    windows, cands = windows.long(), cands.long()
    if not key.self_hash:
        return _lefthash_values(key, windows, cands), None
    a_lo, a_hi, k = key_tables(key)
    w = _mix(a_lo[windows].unsqueeze(-1), a_hi[windows].unsqueeze(-1), cands.unsqueeze(1))  # [B, h, X]
    wmin, arg = w.min(dim=1)
    anchors = torch.gather(windows, 1, arg) if arg.shape[0] == windows.shape[0] else None
    return fmix32(wmin ^ k), anchors


ROW_CACHE_SIZE = 128  # context tokens whose whole-vocabulary row is kept per (key, vocab): 393 KB each at 49k
ROW_CACHE_KEYS = 4  # (sub-)keys with a row cache at once, least recently used dropped: <= 200 MB in all
_ROWS: OrderedDict[tuple[bytes, int], OrderedDict[int, torch.Tensor]] = OrderedDict()


def _token_rows(key: WatermarkKey, tokens: list[int], vocab: int) -> torch.Tensor:
    """[len(tokens), vocab]: mix(A[c], x) for every candidate x, per context token c (LRU-cached).

    Decoding sees the same context tokens step after step, and this row is all of the per-token hashing work in
    the self-hash and h = 1 schemes, so caching it makes the whole-vocabulary green list several times cheaper."""
    a_lo, a_hi, _ = key_tables(key)  # (takes _LOCK itself: call it outside)
    cache_id = (hashlib.sha256(key.secret).digest(), vocab)
    with _LOCK:
        rows = _ROWS.setdefault(cache_id, OrderedDict())
        _ROWS.move_to_end(cache_id)
        while len(_ROWS) > ROW_CACHE_KEYS:
            _ROWS.popitem(last=False)
        missing = sorted({c for c in tokens if c not in rows})
        if missing:
            m = torch.tensor(missing, dtype=torch.int64)
            fresh = _mix(a_lo[m].unsqueeze(-1), a_hi[m].unsqueeze(-1), torch.arange(vocab, dtype=torch.int64)[None])
            for c, row in zip(missing, fresh, strict=True):
                rows[c] = row
        out = torch.stack([rows[c] for c in tokens])
        for c in tokens:
            rows.move_to_end(c)
        while len(rows) > ROW_CACHE_SIZE:
            rows.popitem(last=False)
    return out


def green_mask(key: WatermarkKey, windows: torch.Tensor, vocab: int) -> torch.Tensor:
    """Bool [B, vocab]: which candidate tokens are green after each of the B windows [B, h]."""
    windows = windows.long()
    if key.self_hash or key.context_width == 1:
        b, h = windows.shape
        mixed = _token_rows(key, windows.flatten().tolist(), vocab).view(b, h, vocab)
        low = mixed[:, 0]
        for i in range(1, h):  # elementwise: int64 amin over a short middle dim is ~50x slower on CPU
            low = torch.minimum(low, mixed[:, i])
        _, _, k = key_tables(key)
        return fmix32(low ^ k) < threshold(key.gamma)
    u, _ = green_values(key, windows, torch.arange(vocab, dtype=torch.int64).unsqueeze(0))
    return u < threshold(key.gamma)


def green_of(key: WatermarkKey, windows: torch.Tensor, cands: torch.Tensor) -> torch.Tensor:
    """Bool [B, X]: is candidate cands[b, j] green after window windows[b]?"""
    u, _ = green_values(key, windows, cands)
    return u < threshold(key.gamma)


def score_pairs(key: WatermarkKey, windows: torch.Tensor, tokens: torch.Tensor) -> tuple[list[bool], list[tuple]]:
    """Green flags and dedup units for N scored positions: windows [N, h], tokens [N].

    The unit identifies what the green bit depends on: (anchor, token) for self-hash, (window..., token) for
    left-hash. Two positions with the same unit always have the same colour, so a unit is scored once.
    """
    if tokens.numel() == 0:
        return [], []
    windows, tokens = windows.long(), tokens.long()
    u, anchors = green_values(key, windows, tokens.unsqueeze(-1))
    green = (u.squeeze(-1) < threshold(key.gamma)).tolist()
    if anchors is not None:
        units = list(zip(anchors.squeeze(-1).tolist(), tokens.tolist(), strict=True))
    else:
        units = [(*w, t) for w, t in zip(windows.tolist(), tokens.tolist(), strict=True)]
    return green, units

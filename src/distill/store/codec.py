"""The quantized encoding of one scored position: the teacher's top-k ids and log-probabilities.

Encoding "topk-u8-sqrt-v1". One fixed-size record per scored position (a numpy structured dtype):

    ids  [k]  uint16 (uint32 when the vocabulary exceeds 65536 ids)   token ids, sorted by probability, descending
    hi        float16   the top-1 log-probability
    lo        float16   the k-th log-probability (clamped to hi − MAX_SPAN)
    q    [k]  uint8     each entry's distance below the top-1 on a square-root grid of 256 levels

With span = hi − lo and d_i = hi − log p_i ∈ [0, span]:  q_i = round(255 · √(d_i / span)),  and decoding is
log p_i = hi − span · (q_i / 255)². The top-k log-probabilities are sorted, so they all lie in [lo, hi]: the
grid adapts to each position's own span, and the square root makes it fine near the top-1 (where the
probability mass is) and coarse in the tail (where it is not). At k = 32 a record is 32·2 + 2 + 2 + 32 = 100
bytes (uint32 ids: 164 bytes).

Error bound, per stored log-probability within MAX_SPAN nats of the top-1 (see `error_bound`), with
û = q / 255:

    |decoded − exact| ≤ span · (2û + 1/510) / 510 + 2⁻¹¹ · max(|hi|, |lo|) + 1e-6

(half a grid step in √d, mapped back to d, plus the float16 rounding of the two end points). Near the top-1
the error is ≈ √(d · span) / 255: an entry 0.5 nats below the top-1 of a position with a 30-nat span is off by
at most ≈ 0.015 nats (1.5 % of its probability); a linear grid would give 0.06. Log-probabilities more than
MAX_SPAN (30) nats below the top-1 — probabilities below 1e-13 × the top-1's — are stored as top-1 − 30.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ENCODING = "topk-u8-sqrt-v1"
MAX_SPAN = 30.0  # nats below the top-1 log-probability that the grid covers
LEVELS = 255  # largest code of the uint8 grid
_F16_REL = 2.0 ** -11  # float16 relative rounding (half an ulp, 10-bit mantissa)


def id_dtype(vocab_size: int) -> np.dtype:
    """uint16 ids when every id fits, else uint32."""
    return np.dtype("<u2") if vocab_size <= 65536 else np.dtype("<u4")


def record_dtype(k: int, vocab_size: int) -> np.dtype:
    """The structured dtype of one record (little-endian, no padding)."""
    return np.dtype([("ids", id_dtype(vocab_size), (k,)), ("hi", "<f2"), ("lo", "<f2"), ("q", "u1", (k,))])


def encode(ids: Tensor, logprobs: Tensor, vocab_size: int) -> np.ndarray:
    """Encode top-k ids [N, k] and their log-probabilities [N, k] (sorted descending) into N records."""
    n, k = ids.shape
    lp = logprobs.detach().to(torch.float32).cpu().numpy()
    hi16 = lp[:, 0].astype(np.float16)
    lo16 = np.maximum(lp[:, -1], lp[:, 0] - MAX_SPAN).astype(np.float16)
    hi, lo = hi16.astype(np.float32)[:, None], lo16.astype(np.float32)[:, None]
    span = hi - lo
    depth = np.clip(hi - lp, 0.0, span)  # distance below the top-1, in nats
    u = np.sqrt(depth / np.where(span > 0, span, 1.0))
    out = np.empty(n, dtype=record_dtype(k, vocab_size))
    out["ids"] = ids.detach().cpu().numpy()
    out["hi"], out["lo"] = hi16, lo16
    out["q"] = np.clip(np.rint(u * LEVELS), 0, LEVELS).astype(np.uint8)
    return out


def _span(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hi = records["hi"].astype(np.float32)[:, None]
    return hi, hi - records["lo"].astype(np.float32)[:, None]


def decode_numpy(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Records -> (ids [N, k] int64, log-probabilities [N, k] float32)."""
    hi, span = _span(records)
    u = records["q"].astype(np.float32) / LEVELS
    return records["ids"].astype(np.int64), (hi - span * u * u).astype(np.float32)


def decode(records: np.ndarray) -> tuple[Tensor, Tensor]:
    """Records -> (ids [N, k] long, log-probabilities [N, k] float32) as torch tensors."""
    ids, lp = decode_numpy(records)
    return torch.from_numpy(ids), torch.from_numpy(lp)


def error_bound(records: np.ndarray) -> np.ndarray:
    """The documented worst-case |decoded − exact| per entry [N, k] (entries within MAX_SPAN of the top-1)."""
    hi, span = _span(records)
    u = records["q"].astype(np.float32) / LEVELS
    lo = hi - span
    f16 = _F16_REL * np.maximum(np.abs(hi), np.abs(lo))
    return span * (2 * u + 1 / (2 * LEVELS)) / (2 * LEVELS) + f16 + 1e-6

"""How many rows a loss chunk has (`loss.chunk_size`): the one bound on the loss's memory. Config-free, so a teacher
kind (`distill.teachers`) can size its own chunks without importing the loss."""

from __future__ import annotations

import torch

CHUNK_BYTES = {"cpu": 26 * 2**20, "cuda": 128 * 2**20}  # one [C, V] fp32 buffer; see LossConfig.chunk_size


def chunk_rows(chunk_size: int | str, vocab: int, device: torch.device | str = "cpu") -> int:
    """Rows per loss chunk: `chunk_size` itself, or for 'auto' the most rows (a multiple of 16, at least 16 and at
    most 4096) whose [rows, vocab] fp32 buffer fits the device's budget. On CPU the budget keeps every chunk buffer
    under glibc's pinned mmap threshold (`distill.training.allocator`), where larger chunks would be faulted in
    afresh each time; within it, more rows make the chunk's GEMMs faster (measured: 128 rows ≈ 10% less loss time
    than 64 for a 49k vocabulary, `docs/benchmarks.md`)."""
    if chunk_size != "auto":
        return int(chunk_size)
    kind = torch.device(device).type
    budget = CHUNK_BYTES.get(kind, CHUNK_BYTES["cuda"])
    return max(16, min(4096, budget // (4 * max(vocab, 1)) // 16 * 16))

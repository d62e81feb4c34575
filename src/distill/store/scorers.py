"""Where a capture's top-k comes from: a teacher model in this process, or a teacher behind a scoring server.

A scorer turns a list of examples into the teacher's top-k at every scored position (`loss_mask`), in example and
position order: `(log-probabilities [N, k] sorted descending, ids [N, k])` per chunk, on the CPU. The live scorer
also sums the probability outside the top-k over training positions (the store's tail prior); a server cannot give
that, so a store captured from one has no tail prior and trains with the one-bucket tail.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from distill.data.corpus import collate
from distill.signals import LiveTeacher

Chunk = tuple[Tensor, Tensor]


class LiveScorer:
    """The teacher's final hidden states times its output head, `chunk_size` positions at a time (full [B, T, V]
    logits never exist)."""

    def __init__(self, teacher: LiveTeacher, vocab: int, *, batch_size: int, chunk_size: int, pad_id: int,
                 device: torch.device):
        self.teacher, self.vocab, self.batch_size, self.chunk_size = teacher, vocab, batch_size, chunk_size
        self.pad_id, self.device = pad_id, device
        self.tail_sum: Tensor | None = None

    @torch.inference_mode()
    def chunks(self, examples: Sequence[dict], is_train: Sequence[bool], k: int) -> Iterator[Chunk]:
        head = self.teacher.model.get_output_embeddings().weight[:self.vocab]
        self.tail_sum = torch.zeros(self.vocab, dtype=torch.float64, device=self.device)
        for start in range(0, len(examples), self.batch_size):
            batch = collate(list(examples[start:start + self.batch_size]), self.pad_id)
            hidden = self.teacher.hidden_states(batch["input_ids"].to(self.device),
                                                batch["attention_mask"].to(self.device))
            positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(1).to(self.device)
            train = torch.tensor(list(is_train[start:start + self.batch_size]), device=self.device)
            train = train[positions // batch["loss_mask"].shape[1]]
            flat = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
            for c in range(0, flat.shape[0], self.chunk_size):
                logits = (flat[c:c + self.chunk_size] @ head.T).float()
                if self.teacher.softcap:
                    logits = torch.tanh(logits / self.teacher.softcap) * self.teacher.softcap
                top, ids = logits.topk(k, dim=-1, sorted=True)
                lse = torch.logsumexp(logits, dim=-1, keepdim=True)
                rows = train[c:c + self.chunk_size]
                if rows.any():  # the tail prior: probabilities outside the top-k, summed over positions
                    tail = logits[rows].sub_(lse[rows]).exp_().scatter_(1, ids[rows], 0.0)
                    self.tail_sum += tail.sum(0, dtype=torch.float64)
                yield (top - lse).cpu(), ids.cpu()

    def take_tail(self) -> np.ndarray | None:
        return None if self.tail_sum is None else self.tail_sum.cpu().numpy()


class ServedScorer:
    """Each batch of examples is one scoring request (`distill.remote.client.ScoringClient`: vLLM's
    `prompt_logprobs`, with its retries); `concurrency` requests are in flight at once, results kept in order.

    A position where the server returned fewer than k usable entries (tokens it sent as strings that do not map to
    an id) is filled with the smallest unused ids at MAX_SPAN nats below its top-1 (probability ~1e-13 of it), and
    counted in `padded`."""

    def __init__(self, client, *, batch_size: int, concurrency: int, floor_nats: float):
        self.client, self.batch_size, self.concurrency, self.floor_nats = client, batch_size, concurrency, floor_nats
        self.padded = 0

    def chunks(self, examples: Sequence[dict], is_train: Sequence[bool], k: int) -> Iterator[Chunk]:
        rows = [ex["input_ids"].tolist() for ex in examples]
        batches = [rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="distill-capture") as pool:
            for start, scored in zip(range(0, len(rows), self.batch_size), pool.map(self.client.score, batches),
                                     strict=True):
                for ex, s in zip(examples[start:start + self.batch_size], scored, strict=True):
                    pos = ex["loss_mask"].nonzero().squeeze(1)
                    yield self._filled(s.logprobs[pos], s.ids[pos])

    def _filled(self, lps: Tensor, ids: Tensor) -> Chunk:
        missing = ids < 0
        if missing.any():
            self.padded += int(missing.any(1).sum())
            for r in missing.any(1).nonzero().squeeze(1).tolist():
                have, n_miss = set(ids[r][~missing[r]].tolist()), int(missing[r].sum())
                spare = [t for t in range(len(have) + n_miss) if t not in have][:n_miss]
                ids[r, missing[r]] = torch.tensor(spare, dtype=ids.dtype)
                top = lps[r, 0] if not missing[r, 0] else torch.tensor(0.0)
                lps[r, missing[r]] = top - self.floor_nats
        return lps, ids

    def take_tail(self) -> np.ndarray | None:
        return None

"""`ServedTeacher`: the teacher signal from a server, with the coming micro-batches already in flight.

The data order is a pure function of the step (`training.sampler`), so the source knows which rows the loop will
ask for next: it keeps up to `prefetch` micro-batches' requests running in a thread pool while the student computes,
and a step costs max(teacher, student) instead of their sum. Rows are matched by their token ids, so a batch that was
not foreseen (held-out evaluation, on-policy samples) is simply scored when asked; nothing about the order of
training changes, and resume restarts the schedule at the resumed step.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import Tensor

from distill.remote.client import ScoringClient
from distill.remote.protocol import RowScores
from distill.signals import SparseSignal, TailPriorSignal

Row = tuple[int, ...]


def row_key(ids: Row) -> bytes:
    return hashlib.blake2b(torch.tensor(ids, dtype=torch.long).numpy().tobytes(), digest_size=16).digest()


class ServedTeacher:
    """A `TeacherSource` scoring each batch's rows through `client`.

    Args:
        schedule: the rows of each coming micro-batch of this process, in order (token-id tuples), or None.
        log_prior: with a tail prior, the residual mass is spread over the other tokens by it (else one bucket).
        cache_rows: rows kept after use (held-out sequences are asked for at every evaluation).
    """

    def __init__(self, client: ScoringClient, *, schedule: Iterator[list[Row]] | None = None, prefetch: int = 2,
                 concurrency: int = 2, log_prior: Tensor | None = None, device: torch.device | None = None,
                 cache_rows: int = 256):
        self.client, self.log_prior, self.device = client, log_prior, device or torch.device("cpu")
        self.schedule, self.prefetch = schedule, prefetch
        self.pool = ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="distill-teacher")
        self.inflight: dict[bytes, _Part] = {}  # row -> its place in a request still running
        self.done: OrderedDict[bytes, RowScores] = OrderedDict()
        self.cache_rows = cache_rows
        self.pending: deque[frozenset[bytes]] = deque()  # scheduled micro-batches submitted, not yet asked for
        self.waited_s = 0.0  # time the loop spent blocked on the server (0 when prefetch hides it all)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def summary(self) -> dict[str, float | int]:
        """What this process asked of the server: requests, retries, rows, tokens, seconds inside requests (summed
        over threads) and seconds the loop waited for them."""
        st = self.client.stats
        return {"requests": st.requests, "retries": st.retries, "rows": st.rows, "tokens": st.tokens,
                "unmapped": st.unmapped, "request_s": round(st.seconds, 3), "waited_s": round(self.waited_s, 3)}

    def _submit(self, rows: list[Row]) -> None:
        todo = [r for r in dict.fromkeys(rows) if row_key(r) not in self.inflight and row_key(r) not in self.done]
        if todo:
            fut = self.pool.submit(self.client.score, todo)
            for i, r in enumerate(todo):
                self.inflight[row_key(r)] = _Part(fut, i)

    def _top_up(self) -> None:
        while self.schedule is not None and len(self.pending) < self.prefetch:
            nxt = next(self.schedule, None)
            if nxt is None:
                self.schedule = None
                return
            self._submit(nxt)
            self.pending.append(frozenset(map(row_key, nxt)))

    def scores(self, rows: list[Row]) -> list[RowScores]:
        """The scores of `rows`: from requests already in flight, the cache, or a request made now."""
        self._submit(rows)
        out = []
        for r in rows:
            k = row_key(r)
            if k in self.done:
                self.done.move_to_end(k)
                out.append(self.done[k])
                continue
            t0 = time.perf_counter()
            res = self.inflight.pop(k).result()  # re-raises the client's DistillError after its retries
            self.waited_s += time.perf_counter() - t0
            self.done[k] = res
            out.append(res)
        while len(self.done) > self.cache_rows:
            self.done.popitem(last=False)
        return out

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> SparseSignal | TailPriorSignal:
        lengths = batch["attention_mask"].sum(1).tolist()
        rows = [tuple(batch["input_ids"][b, :n].tolist()) for b, n in enumerate(lengths)]
        scored = self.scores(rows)
        if self.pending and frozenset(map(row_key, rows)) <= self.pending[0]:
            self.pending.popleft()  # the foreseen micro-batch (or the rows of it routed here): make room for the next
        self._top_up()
        B, T = batch["input_ids"].shape
        k = self.client.top_k
        ids = torch.full((B, T, k), -1, dtype=torch.long)
        lps = torch.full((B, T, k), -float("inf"), dtype=torch.float32)
        for b, (n, s) in enumerate(zip(lengths, scored, strict=True)):
            ids[b, :n], lps[b, :n] = s.ids, s.logprobs
        ids = ids.reshape(B * T, k).index_select(0, positions.cpu()).to(self.device)
        lps = lps.reshape(B * T, k).index_select(0, positions.cpu()).to(self.device)
        if self.log_prior is not None:
            return TailPriorSignal(ids=ids, logprobs=lps, log_prior=self.log_prior.to(self.device))
        return SparseSignal(ids=ids, logprobs=lps)

    def start(self) -> ServedTeacher:
        self._top_up()
        return self


class _Part:
    """Row i of a multi-row request's future."""

    def __init__(self, fut: Future, index: int):
        self.fut, self.index = fut, index

    def result(self) -> RowScores:
        return self.fut.result()[self.index]


def data_log_prior(corpus, vocab_size: int) -> Tensor:
    """Log of the training targets' token frequencies (add-½ smoothed): the tail prior a server cannot give."""
    counts = torch.full((vocab_size,), 0.5, dtype=torch.float64)
    for ex in corpus.train:
        targets = ex["input_ids"][1:][ex["loss_mask"][:-1]]
        counts += torch.bincount(targets.clamp(max=vocab_size - 1), minlength=vocab_size).double()
    return (counts / counts.sum()).log().float()


def server_log_prior(client: ScoringClient, corpus, vocab_size: int, *, rows: int, tail_k: int,
                     fallback: Tensor) -> Tensor:
    """The teacher's own average tail, asked of the server once: `rows` training sequences scored with `tail_k`
    entries per position; the probability of entries ranked below the training top-k is summed per token over their
    scored positions, and the mass beyond `tail_k` is spread by `fallback` (the data prior). Returns log-probs [V]."""
    from distill.errors import DistillError

    k = client.top_k
    tail = torch.zeros(vocab_size, dtype=torch.float64)
    sample = corpus.train[:rows]
    for start in range(0, len(sample), 4):
        batch = sample[start:start + 4]
        try:
            scored = client.score([ex["input_ids"].tolist() for ex in batch], top_k=tail_k)
        except DistillError as e:
            raise DistillError(f"the teacher server would not score with {tail_k} log-probabilities per position for "
                               f"the tail prior ({e.what})", where="teacher.endpoint_tail=server_prior",
                               fix=f"start the server with --max-logprobs >= {tail_k} (vLLM and `distill serve`), lower "
                                   "teacher.tail_k, or use teacher.endpoint_tail: data_prior") from None
        for ex, s in zip(batch, scored, strict=True):
            pos = ex["loss_mask"].nonzero().squeeze(1)
            ids, p = s.ids[pos], s.logprobs[pos].double().exp()
            valid = ids >= 0
            below = valid.clone()
            below[:, :k] = False
            tail.index_add_(0, ids[below], p[below])
            beyond = (1.0 - (p * valid).sum(1)).clamp_min(0.0).sum()
            tail += beyond * fallback.double().exp()
    return (tail / tail.sum().clamp_min(1e-300)).clamp_min(1e-30).log().float()


def training_schedule(cfg, corpus, world, sampler, start_step: int, examples: frozenset[int] | None = None
                      ) -> Iterator[list[Row]]:
    """This process's rows of every coming micro-batch that the data supplies (on-policy ones are sampled); with
    `examples`, only those examples' rows (a micro-batch with none of them is not asked for)."""
    from distill.training.onpolicy import is_on_policy

    t = cfg.train
    for step in range(start_step, t.steps):
        for m in range(t.grad_accum):
            if t.on_policy_fraction > 0 and is_on_policy(t.seed, step, m, t.on_policy_fraction):
                continue
            mine = [i for i in sampler.rows(step, m)[world.rank:: world.size] if examples is None or i in examples]
            if mine:
                yield [tuple(corpus.train[i]["input_ids"].tolist()) for i in mine]


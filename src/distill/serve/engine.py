"""Batched text generation with a KV cache, per-row sampling, log-probabilities and extra logits processors.

One worker thread owns the model. Requests are queued; the worker takes the first one, waits `batch_wait_s`
for more, and runs up to `max_batch` rows (a request with `n` choices is `n` rows) in one left-padded forward
pass per step, so concurrent requests share the GPU/CPU and never see each other's state.

Per-row order of operations at each step (documented, because watermarking relies on it)::

    scores = model logits for the row (float32)
    for p in logits_processors: scores = p(input_ids_of_the_row[None], scores[None])[0]   # HF signature
    logprob = log_softmax(scores)               # what `logprobs` / `top_logprobs` report
    temperature == 0 -> argmax, else sample from softmax(top_p_filter(scores / temperature))
    (a temperature so small that scores / temperature overflows to inf or NaN, e.g. 1e-320, is argmax too)

Sampling uses one `torch.Generator` per row seeded from the request's `seed` (and the choice index), so the
same seeded request gives the same tokens whether it runs alone or batched with others.
"""

from __future__ import annotations

import codecs
import inspect
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from distill.tokens.tokenmap import vocab_bytes

log = logging.getLogger(__name__)

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""HF `LogitsProcessor` call signature: (input_ids [batch, seq], scores [batch, vocab]) -> scores."""


class EngineInputError(ValueError):
    """A request the engine cannot run (e.g. longer than the model's context); the app turns it into a 400."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass
class SamplingParams:
    """Decoding settings of one request (shared by its `n` choices)."""

    max_tokens: int = 16  # new tokens at most per choice
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0  # nucleus sampling mass, (0, 1]
    stop: list[str] = field(default_factory=list)  # strings that end a choice (not included in the text)
    seed: int | None = None  # None = fresh randomness
    n: int = 1  # choices
    top_logprobs: int = 0  # alternatives reported per token (0 = only the sampled token's logprob)
    prompt_logprobs: int | None = None  # vLLM's extension: top-k of every prompt token given the tokens before it


@dataclass
class TokenInfo:
    """One generated token: id, its text and exact bytes, its log-probability and the top alternatives."""

    id: int
    text: str
    bytes: bytes
    logprob: float
    top: list[tuple[int, float]]  # (id, logprob), best first, `top_logprobs` entries
    text_offset: int  # character offset of the token in the choice's text


@dataclass
class Choice:
    """One finished (or, while streaming, partial) choice."""

    index: int
    text: str
    tokens: list[TokenInfo]
    finish_reason: str | None  # "stop" (eos or stop string) or "length"


@dataclass
class Completion:
    """The result of one request."""

    choices: list[Choice]
    prompt_tokens: int
    # with SamplingParams.prompt_logprobs = k: per prompt token, None for the first, else the top-k (id, logprob,
    # rank) given the tokens before it, best first, plus the prompt's own token when it is not among them
    prompt_logprobs: list[list[tuple[int, float, int]] | None] | None = None

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.tokens) for c in self.choices)


StreamCallback = Callable[[int, str, list[TokenInfo], "str | None"], None]
"""Streaming callback (choice index, text delta, tokens in the delta, finish reason or None), worker thread."""


@dataclass
class _Job:
    prompt_ids: list[int]
    params: SamplingParams
    processors: list[LogitsProcessor]
    on_delta: StreamCallback | None
    future: Future


class _Row:
    """Decoding state of one choice."""

    def __init__(self, job: _Job, index: int, seed: int, stops: list[str]):
        self.job, self.index = job, index
        self.gen = torch.Generator().manual_seed(seed)
        self.ids: list[int] = []
        self.tokens: list[TokenInfo] = []
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.emitted_chars = 0
        self.emitted_tokens = 0
        self.finish: str | None = None

    def emit(self, final: bool) -> None:
        """Send the text (and tokens) that can no longer change to the stream callback."""
        cb = self.job.on_delta
        if cb is None:
            return
        end = len(self.text) if final else max(self.emitted_chars, len(self.text) - self.hold)
        toks = [t for t in self.tokens[self.emitted_tokens:] if final or t.text_offset + len(t.text) <= end]
        if end > self.emitted_chars or toks or final:
            cb(self.index, self.text[self.emitted_chars:end], toks, self.finish if final else None)
            self.emitted_chars = end
            self.emitted_tokens += len(toks)


def _row_seed(seed: int | None, index: int) -> int:
    if seed is None:
        return secrets.randbits(63)
    return (int(seed) * 1_000_003 + index * 0x9E3779B1) % (1 << 63)


def _top_p_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    if top_p >= 1.0:
        return scores
    sorted_scores, order = torch.sort(scores, descending=True)
    cum = torch.softmax(sorted_scores, dim=-1).cumsum(-1)
    drop = (cum - torch.softmax(sorted_scores, dim=-1)) >= top_p  # keep tokens until the mass reaches top_p
    drop[0] = False
    out = scores.clone()
    out[order[drop]] = float("-inf")
    return out


def tempered(scores: torch.Tensor, temperature: float) -> torch.Tensor | None:
    """`scores / temperature`, or None for greedy: temperature 0, or one so small that the division overflows to
    inf or NaN (1e-320 is 0 in float32) - the limit of sampling as the temperature goes to 0 is the argmax.
    Also None when no score is finite (softmax would be NaN everywhere)."""
    if temperature <= 0:
        return None
    scaled = scores / temperature
    if bool((torch.isnan(scaled) | torch.isposinf(scaled)).any()) or not bool(torch.isfinite(scaled).any()):
        return None
    return scaled


class Engine:
    """Owns a causal LM and serves generation requests from a queue on one worker thread.

    Args:
        model: a Hugging Face causal LM (eval mode).
        tokenizer: its tokenizer.
        max_batch: most rows (choices) decoded together in one forward pass.
        batch_wait_s: how long the worker waits for more requests before starting a batch.
        max_context: longest prompt + max_tokens accepted (default: the model's max_position_embeddings).
    """

    def __init__(self, model, tokenizer, *, max_batch: int = 8, batch_wait_s: float = 0.003,
                 max_context: int | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.batch_wait_s = max(1, max_batch), batch_wait_s
        cfg = getattr(model, "config", None)
        self.max_context = max_context or int(getattr(cfg, "max_position_embeddings", 2048) or 2048)
        self.eos_ids = self._eos_ids()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.bytes_of = vocab_bytes(tokenizer)
        self.device = next(model.parameters()).device
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # transformers >= 5.x renamed it

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        gen_cfg = getattr(self.model, "generation_config", None)
        extra = getattr(gen_cfg, "eos_token_id", None)
        if isinstance(extra, int):
            ids.add(extra)
        elif isinstance(extra, (list, tuple)):
            ids.update(int(i) for i in extra)
        return sorted(ids) or [0]

    # ------------------------------------------------------------------ public API
    def start(self) -> Engine:
        """Start the worker thread (idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="distill-engine", daemon=True)
                self._thread.start()
        return self

    def close(self) -> None:
        """Stop the worker after the requests already queued."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=30)
            self._thread = None

    def check(self, prompt_ids: Sequence[int], params: SamplingParams) -> None:
        """Raise EngineInputError for a request that cannot run."""
        if not prompt_ids:
            raise EngineInputError("the prompt is empty", "prompt")
        if len(prompt_ids) + params.max_tokens > self.max_context:
            raise EngineInputError(
                f"the prompt ({len(prompt_ids)} tokens) plus max_tokens ({params.max_tokens}) exceeds the model's "
                f"context of {self.max_context} tokens", "max_tokens")
        vocab = len(self.bytes_of)
        if any(not 0 <= int(i) < vocab for i in prompt_ids):
            raise EngineInputError(f"prompt token ids must lie in [0, {vocab})", "prompt")

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams,
               logits_processors: Sequence[LogitsProcessor] | None = None,
               on_delta: StreamCallback | None = None) -> Future:
        """Queue a request; the future resolves to a `Completion`. `on_delta` receives streaming deltas."""
        self.check(prompt_ids, params)
        self.start()
        fut: Future = Future()
        self._queue.put(_Job(list(map(int, prompt_ids)), params, list(logits_processors or []), on_delta, fut))
        return fut

    def generate(self, prompt_ids: Sequence[int], params: SamplingParams | None = None,
                 logits_processors: Sequence[LogitsProcessor] | None = None) -> Completion:
        """Generate synchronously (through the queue, so it is safe alongside the server)."""
        return self.submit(prompt_ids, params or SamplingParams(), logits_processors).result()

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, rows = [job], job.params.n
            deadline = time.monotonic() + self.batch_wait_s
            stop_after = False
            while rows < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop_after = True
                    break
                if rows + nxt.params.n > self.max_batch:
                    self._run([nxt]) if nxt.params.n > self.max_batch else self._queue.put(nxt)
                    break
                jobs.append(nxt)
                rows += nxt.params.n
            self._run(jobs)
            if stop_after:
                return

    def _run(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        scoring = [j for j in live if j.params.prompt_logprobs is not None]
        batches = [[j] for j in scoring] + ([[j for j in live if j not in scoring]] if len(scoring) < len(live) else [])
        for batch in batches:
            try:
                results = [self._score_job(batch[0])] if batch[0] in scoring else self._generate_batch(batch)
            except Exception as e:  # noqa: BLE001 - reported to every caller of the batch, the worker lives on
                log.exception("generation failed")
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            for j, res in zip(batch, results, strict=True):
                j.future.set_result(res)

    @torch.inference_mode()
    def _score_job(self, job: _Job) -> Completion:
        """A request with prompt_logprobs: one forward pass over the prompt gives every position's distribution
        (the model's own log-softmax, before any logits processor); a single new token comes from its last one."""
        ids = torch.tensor([job.prompt_ids], dtype=torch.long, device=self.device)
        logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].float().cpu()
        logits = logits[:, : len(self.bytes_of)]
        k = job.params.prompt_logprobs
        entries: list[list[tuple[int, float, int]] | None] = [None]
        for start in range(0, len(job.prompt_ids) - 1, 256):  # [chunk, V] log-softmax buffers, not [L, V]
            lp = torch.log_softmax(logits[start: start + 256], dim=-1)
            nxt = torch.tensor(job.prompt_ids[start + 1: start + 1 + lp.shape[0]], dtype=torch.long)
            lp = lp[: len(nxt)]
            vals, idx = torch.topk(lp, min(k, lp.shape[-1]), dim=-1)
            own = lp.gather(1, nxt[:, None]).squeeze(1)
            ranks = (lp > own[:, None]).sum(1) + 1
            for j in range(len(nxt)):
                row = [(int(i), float(v), r + 1) for r, (i, v) in enumerate(zip(idx[j], vals[j], strict=True))]
                if int(ranks[j]) > len(row):
                    row.append((int(nxt[j]), float(own[j]), int(ranks[j])))
                entries.append(row)
        if job.params.max_tokens == 1 and job.params.n == 1:
            r = _Row(job, 0, _row_seed(job.params.seed, 0), [s for s in job.params.stop if s])
            self._step_row(r, logits[-1])
            if r.finish is None:
                r.finish = "length"
            r.text += r.decoder.decode(b"", final=True)
            r.emit(final=True)
            done = Completion([Choice(0, r.text, r.tokens, r.finish)], len(job.prompt_ids))
        else:
            done = self._generate_batch([job])[0]
        done.prompt_logprobs = entries
        return done

    @torch.inference_mode()
    def _generate_batch(self, jobs: list[_Job]) -> list[Completion]:
        rows: list[_Row] = []
        for j in jobs:
            for i in range(j.params.n):
                rows.append(_Row(j, i, _row_seed(j.params.seed, i), [s for s in j.params.stop if s]))
        lengths = [len(r.job.prompt_ids) for r in rows]
        width = max(lengths)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, width - lengths[b]:] = torch.tensor(r.job.prompt_ids)
            mask[b, width - lengths[b]:] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        steps = max(r.job.params.max_tokens for r in rows)
        from transformers import DynamicCache

        cache = DynamicCache()  # updated in place by every forward pass
        inp, positions = ids, pos
        next_pos = torch.tensor(lengths, dtype=torch.long)
        for _ in range(steps):
            kwargs = {self._cache_kw: cache}
            out = self.model(input_ids=inp.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=positions.to(self.device), use_cache=True, logits_to_keep=1, **kwargs)
            logits = out.logits[:, -1, :].float().cpu()
            chosen = torch.full((len(rows),), self.pad_id, dtype=torch.long)
            for b, r in enumerate(rows):
                if r.finish is None:
                    chosen[b] = self._step_row(r, logits[b, : len(self.bytes_of)])
            if all(r.finish is not None for r in rows):
                break
            inp = chosen[:, None]
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            positions = next_pos[:, None].clone()
            next_pos += 1
        completions: list[Completion] = []
        for j in jobs:
            choices = []
            for r in rows:
                if r.job is j:
                    if r.finish is None:
                        r.finish = "length"
                        r.text += r.decoder.decode(b"", final=True)
                    r.emit(final=True)
                    choices.append(Choice(r.index, r.text, r.tokens, r.finish))
            completions.append(Completion(choices, len(j.prompt_ids)))
        return completions

    def _step_row(self, r: _Row, scores: torch.Tensor) -> int:
        p = r.job.params
        if r.job.processors:
            seq = torch.tensor([r.job.prompt_ids + r.ids], dtype=torch.long)
            s = scores[None].clone()
            for proc in r.job.processors:
                s = proc(seq, s)
            scores = s[0].float()
        logprobs = torch.log_softmax(scores, dim=-1)
        scaled = tempered(scores, p.temperature)
        if scaled is None:
            tok = int(torch.argmax(scores))
        else:
            probs = torch.softmax(_top_p_filter(scaled, p.top_p), dim=-1)
            cdf = probs.double().cumsum(0)  # inverse-CDF sampling: one uniform draw per token, fast and seeded
            u = torch.rand((), generator=r.gen, dtype=torch.float64) * cdf[-1]
            tok = min(int(torch.searchsorted(cdf, u, right=True)), probs.numel() - 1)
        r.ids.append(tok)
        if tok in self.eos_ids:
            r.finish = "stop"
            r.text += r.decoder.decode(b"", final=True)
            return tok
        top: list[tuple[int, float]] = []
        if p.top_logprobs > 0:
            vals, idx = torch.topk(logprobs, min(p.top_logprobs, logprobs.numel()))
            top = [(int(i), float(v)) for i, v in zip(idx, vals, strict=True)]
        raw = self.bytes_of[tok]
        offset = len(r.text)
        r.text += r.decoder.decode(raw)
        r.tokens.append(TokenInfo(tok, raw.decode("utf-8", errors="replace"), raw, float(logprobs[tok]), top, offset))
        if r.stops:
            lo = max(0, offset - r.hold)
            hits = [i for i in (r.text.find(s, lo) for s in r.stops) if i >= 0]
            if hits:
                cut = min(hits)
                r.text = r.text[:cut]
                r.tokens = [t for t in r.tokens if t.text_offset < cut]
                r.finish = "stop"
                return tok
        if len(r.tokens) >= p.max_tokens:
            r.finish = "length"
            r.text += r.decoder.decode(b"", final=True)
            return tok
        r.emit(final=False)
        return tok

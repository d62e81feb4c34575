"""Per-API-key traffic features over a sliding window, updated incrementally (O(words) per request).

Features (all computed over the key's requests in the window):
  volume      log(1 + number of requests)
  coverage    distinct content words / content-word occurrences in the prompts (systematic topic sweeps -> high)
  template    share of the other requests that reuse the key's most common prefix or suffix skeleton
              (first / last 3 words): (max skeleton count - 1) / (n - 1)
  cot         share of prompts asking for chain of thought ("step by step", "explain your reasoning", ...)
  logprobs    share of requests asking for log-probabilities
  out_in      log((output tokens + 1) / (input tokens + 1)), summed over the window
  timing_cv   coefficient of variation (std / mean) of inter-arrival times; scripts are regular (low), people
              are bursty (high); 1.0 until three requests were seen
  cross_key   share of the key's requests whose prefix (or suffix) skeleton another key also uses
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

FEATURES = ("volume", "coverage", "template", "cot", "logprobs", "out_in", "timing_cv", "cross_key")
COT_PHRASES = ("step by step", "step-by-step", "explain your reasoning", "show your work", "show your reasoning",
               "think carefully", "reason through", "chain of thought", "let's think", "walk me through",
               "justify your answer", "think it through", "explain each step")
_WORD = re.compile(r"[a-z0-9']+")
STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with about from into over under as is are was were be been this "
    "that these those it its i you he she we they me my your our their what which who whom how why when where can "
    "could would should will shall may might do does did not no yes so than then there here please tell give "
    "explain describe write some any all more most very just also like make".split())
SKELETON_WORDS = 3


def prompt_text(request: dict[str, Any]) -> str:
    """The user-visible text of a chat or completion request."""
    msgs = request.get("messages")
    if isinstance(msgs, list):
        parts = []
        for m in msgs:
            c = m.get("content") if isinstance(m, dict) else None
            if isinstance(c, str):
                parts.append(c)
            elif isinstance(c, list):  # content parts
                parts += [p.get("text", "") for p in c if isinstance(p, dict)]
        return "\n".join(parts)
    p = request.get("prompt")
    return p if isinstance(p, str) else " ".join(map(str, p)) if isinstance(p, list) else ""


def wants_logprobs(request: dict[str, Any]) -> bool:
    return bool(request.get("logprobs")) or bool(request.get("top_logprobs"))


def token_counts(request: dict[str, Any], response: dict[str, Any] | None, prompt_words: int) -> tuple[int, int]:
    """(input, output) tokens from the response's usage block, else word counts."""
    usage = (response or {}).get("usage") or {}
    if isinstance(usage, dict) and "prompt_tokens" in usage:
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    out = 0
    for c in (response or {}).get("choices") or []:
        if isinstance(c, dict):
            t = c.get("text") or (c.get("message") or {}).get("content") or ""
            out += len(str(t).split())
    return prompt_words, out


@dataclass
class Entry:
    ts: float
    prefix: str
    suffix: str
    words: tuple[str, ...]
    cot: bool
    logprobs: bool
    tokens_in: int
    tokens_out: int


def make_entry(request: dict[str, Any], response: dict[str, Any] | None, ts: float) -> Entry:
    """Reduce one request/response pair to what the features need (no raw text is kept)."""
    text = prompt_text(request)
    low = text.lower()
    ws = _WORD.findall(low)
    prefix = " ".join(ws[:SKELETON_WORDS])
    suffix = " ".join(ws[-SKELETON_WORDS:])
    content = tuple(w for w in ws if len(w) >= 4 and w not in STOPWORDS)
    tin, tout = token_counts(request, response, len(ws))
    return Entry(float(ts), prefix, suffix, content, any(p in low for p in COT_PHRASES), wants_logprobs(request),
                 tin, tout)


class KeyWindow:
    """One API key's recent requests with running counts, so features cost O(1) per request."""

    def __init__(self, window_seconds: float, max_requests: int):
        self.window_seconds, self.max_requests = window_seconds, max_requests
        self.entries: deque[Entry] = deque()
        self.prefixes: Counter[str] = Counter()
        self.suffixes: Counter[str] = Counter()
        self.words: Counter[str] = Counter()
        self.n_words = self.n_cot = self.n_lp = self.t_in = self.t_out = 0
        self.gap_sum = self.gap_sq = 0.0
        self.total_seen = 0

    def _apply(self, e: Entry, sign: int) -> None:
        self.prefixes[e.prefix] += sign
        self.suffixes[e.suffix] += sign
        if self.prefixes[e.prefix] <= 0:
            del self.prefixes[e.prefix]
        if self.suffixes[e.suffix] <= 0:
            del self.suffixes[e.suffix]
        for w in e.words:
            self.words[w] += sign
            if self.words[w] <= 0:
                del self.words[w]
        self.n_words += sign * len(e.words)
        self.n_cot += sign * e.cot
        self.n_lp += sign * e.logprobs
        self.t_in += sign * e.tokens_in
        self.t_out += sign * e.tokens_out

    def add(self, e: Entry) -> list[Entry]:
        """Add a request and drop those outside the window; returns the dropped entries."""
        if self.entries:
            gap = max(0.0, e.ts - self.entries[-1].ts)
            self.gap_sum += gap
            self.gap_sq += gap * gap
        self.entries.append(e)
        self._apply(e, +1)
        self.total_seen += 1
        dropped = []
        while self.entries and (len(self.entries) > self.max_requests
                                or e.ts - self.entries[0].ts > self.window_seconds):
            old = self.entries.popleft()
            self._apply(old, -1)
            if self.entries:
                gap = max(0.0, self.entries[0].ts - old.ts)
                self.gap_sum -= gap
                self.gap_sq -= gap * gap
            dropped.append(old)
        return dropped

    def features(self, shared_prefixes: int = 0) -> dict[str, float]:
        """The feature vector (see the module docstring); `shared_prefixes` = requests whose skeleton other keys use."""
        n = len(self.entries)
        if n == 0:
            return dict.fromkeys(FEATURES, 0.0) | {"timing_cv": 1.0}
        top = max(max(self.prefixes.values(), default=1), max(self.suffixes.values(), default=1))
        gaps = n - 1
        if gaps >= 2:
            mean = self.gap_sum / gaps
            var = max(0.0, self.gap_sq / gaps - mean * mean)
            cv = math.sqrt(var) / mean if mean > 0 else 0.0
        else:
            cv = 1.0
        return {
            "volume": math.log1p(n),
            "coverage": len(self.words) / self.n_words if self.n_words else 0.0,
            "template": (top - 1) / (n - 1) if n > 1 else 0.0,
            "cot": self.n_cot / n,
            "logprobs": self.n_lp / n,
            "out_in": math.log((self.t_out + 1) / (self.t_in + 1)),
            "timing_cv": cv,
            "cross_key": shared_prefixes / n,
        }

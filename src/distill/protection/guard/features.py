"""Per-API-key traffic features over a sliding window, updated incrementally (O(words) per request).

Every feature lies in [0, 1] and is oriented so that *higher is more like an extraction campaign*; the scorer
gives each a non-negative weight no larger than a cap, so no feature can move the score on its own (see
`scoring.py` and docs/protect.md, which gives each feature's reason). Over the key's served requests in the window:

  volume      log(1 + n) / log(1 + max_window_requests): how much the key asks
  steady      active 10-minute bins / max(bins spanned, 36): scripts run around the clock, people in sessions;
              a burst sent as fast as possible fills one bin, so bursts do not raise it
  regular     1 / (1 + 2 * MAD(log inter-arrival gaps)) over the last 64 gaps (gaps floored at 0.05 s): scripts
              keep a steady pace, people alternate quick follow-ups with long breaks; a median-based spread, so a
              few bursts or pauses do not move it
  template    mean share of a prompt's content words that are *frame* words of the key - words already in at
              least 10% (and 2) of the key's earlier prompts in the window: a template (or paraphrases drawn from a
              few synonyms) fills most of each prompt with the same words, a person's prompts differ
  coverage    share of prompts that bring a *topic* new to the key: a content word the key has not used before in
              its window and that is rare in the whole traffic (in the windows of fewer than max(3, 1% of) the keys
              - general words are used by many people, topics by few): a sweep of a topic space brings a new
              topic with each prompt, people come back to their topics and ask follow-ups
  slot        share of prompts that fill a one-slot template with a new topic: at least 3 frame words (here words
              in >= 5% and 2 of the key's earlier prompts), at most 2 other content words, and one of those a
              topic word new to the key (see coverage): a sweep script
              changes one slot of a fixed (or paraphrased) frame per request; an app wrapping its users' messages
              changes a whole message, a tutorial's users write sentences after its frame; it does not depend on
              the answer, so it holds when answers are short
  cot         share of prompts eliciting chain of thought ("step by step", "show your reasoning", "think it
              through before answering", ...)
  logprobs    mean log-probability demand: 0 without, 0.5 + 0.5 * min(1, top_logprobs / 10) with
  lp_harvest  share of requests that ask for log-probabilities, get at most 4 answer tokens, and send a prompt
              the key has not sent before in the window (harvesting the signal sparse KD needs, prompt by prompt),
              times min(1, such requests / 300): a harvest is worth something at scale, a developer's one-off
              evaluation of a hundred prompts with top log-probabilities is not
  long_out    mean of min(1, answer tokens / 512): distillation sets want long answers
  cross_key   min(1, log(1 + k) / log(1 + 20)), k = other keys whose frame words overlap this key's (at least 4
              shared words and Jaccard >= 0.5): many keys on one template or one plan (computed by the Guard,
              which sees every key). Here a frame word must also be typical of the key - in a share of its
              prompts at least 3 times its share of all prompts in the traffic - so the language's commonest
              words, frequent in everyone's prompts, never make two keys look coordinated

`KeyWindow.statistics` adds what the calibrated guard (`calibration.py`) also compares with the owner's benign
traffic; each is a share or a mean in [0, 1], higher = further from conversation:

  single_turn  share of requests that are a lone user message (no assistant turn before it): data collection sends
               one prompt per request; people and agents carry their conversation
  asked_long   mean of min(1, max_tokens asked / 1024) (512 when a request asks nothing): the demand for long
               answers, which a server that caps answers does not hide
  tools        share of requests that declare tools or carry tool results: agent traffic
  similarity   mean pairwise cosine of the prompts' hashed bags of words (an unbiased U-statistic): one template or
               near-duplicates reused (high), or a sweep that never returns to a topic (low, see pool_distance)
  pool_distance  squared distance between the key's mean prompt vector and the mean of the other keys' (the
               linear-kernel MMD between this key's prompts and everyone else's, unbiased within the key): how far
               this key's prompt distribution is from the traffic around it
  rate         requests per hour over the window's span (at least an hour; log-scaled: log1p(rate) / log1p(3600)):
               the window is capped at max_window_requests, the rate is not
  novel        share of prompts that bring a content word new to the key's window, rare in the traffic or not
               (`coverage` without its rarity test): a sweep of a topic space, however common its topics' words,
               brings a new word with nearly every prompt; people come back to their topics. Apps relaying many
               users, eval harnesses and RAG contexts drive it up (0 for a window's first FRAME_AFTER prompts, as template)
  requests     served requests in the window (the volume band the others are compared within)
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURES = ("volume", "steady", "regular", "template", "coverage", "slot", "cot", "logprobs", "lp_harvest",
            "long_out", "cross_key")
COT_PATTERNS = (
    r"step[- ]by[- ]step", r"chain[- ]of[- ]thought", r"let'?s think", r"think (it )?(carefully|through|aloud|out loud)",
    r"think (this|it) over", r"reason (it )?(through|carefully|first|out)", r"(explain|show|give|walk me through|"
    r"spell out|lay out|outline|detail) (all |each |every )?(of )?(your|the|each|every) (reasoning|steps?|work|"
    r"thought process|logic|derivation)", r"(your|the) reasoning (first|before)", r"show (all )?(your )?work",
    r"justify (your|each|every) (answer|step)", r"before (giving|answering|the final answer|you answer)",
    r"(first|then) (reason|think)", r"one step at a time", r"intermediate steps")
COT = re.compile("|".join(f"(?:{p})" for p in COT_PATTERNS))
COT_PHRASES = COT_PATTERNS  # kept for callers of the old name
_WORD = re.compile(r"[a-z0-9']+")
STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with about from into over under as is are was were be been this "
    "that these those it its i you he she we they me my your our their what which who whom how why when where can "
    "could would should will shall may might do does did not no yes so than then there here please tell give "
    "explain describe write some any all more most very just also like make".split())
SKELETON_WORDS = 3
TINY_ANSWER = 4  # answer tokens at most this: a log-probability probe, not an answer
HARVEST_SCALE = 300  # lp_harvest counts in full once the window holds this many probes
LONG_ANSWER = 512  # answer tokens at which long_out saturates
BIN_SECONDS = 600.0  # steady: activity bins
MIN_BINS = 36  # ... over at least six hours
GAPS = 64  # regular: the last inter-arrival gaps
MIN_GAP = 0.05  # seconds; requests sent at once are this far apart
FRAME_SHARE, FRAME_MIN = 0.1, 2  # a frame word is in >= 10% and >= 2 of the key's earlier prompts in the window
FRAME_AFTER = 5  # ... once the window holds this many prompts (template and coverage are 0 before)
SLOT_FRAME, SLOT_OTHER = 3, 2  # slot: at least this many frame words, at most this many other content words
SLOT_SHARE = 0.05  # ... a slot's frame word is in >= 5% (and FRAME_MIN) of the key's earlier prompts: a sweep
# that is half of a key's traffic, in a paraphrase family of five synonyms per slot, still has its frame
RARE_MIN, RARE_SHARE = 3, 0.01  # coverage: a topic word is in the windows of < max(3, 1% of) the keys
CROSS_SATURATE = 20  # cross_key reaches 1 at this many overlapping keys
CROSS_LIFT = 3.0  # a cross-key frame word is in a share of the key's prompts >= this times its share in all prompts
ALL_PROMPTS = ""  # the key of `word_prompts` that counts the prompts of all windows (no content word is empty)
EXTRA = ("single_turn", "asked_long", "tools", "similarity", "pool_distance", "rate", "novel")
STATISTICS = FEATURES + EXTRA  # what the calibrated guard compares with benign traffic (plus "requests")
DIM = 256  # hashed bag-of-words prompt vectors
ASKED_LONG, ASKED_DEFAULT = 1024, 512  # asked_long saturates at this; a request asking nothing counts as this


def word_hash(word: str) -> str:
    """A content word as the traffic log keeps it: 12 hex digits, never the word (a dictionary of common words can
    still match them: keep the log as private as the traffic)."""
    return hashlib.blake2b(word.encode(), digest_size=6).hexdigest()


def prompt_vector(hashes: tuple[str, ...]) -> dict[int, float]:
    """The prompt's hashed bag of words, unit length: {dimension: value} (signed feature hashing, DIM dimensions)."""
    vec: dict[int, float] = {}
    for h in hashes:
        v = int(h, 16)
        i = v % DIM
        vec[i] = vec.get(i, 0.0) + (1.0 if (v >> 20) & 1 else -1.0)
    norm = math.sqrt(sum(x * x for x in vec.values()))
    return {i: x / norm for i, x in vec.items() if x} if norm else {}


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


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def logprob_demand(request: dict[str, Any]) -> float:
    """0 without log-probabilities; 0.5 + 0.5 * min(1, k / 10) with k top log-probabilities per token (chat's
    `top_logprobs`, or the completions API's integer `logprobs`)."""
    if not wants_logprobs(request):
        return 0.0
    k = _int(request.get("top_logprobs"))
    if k is None:
        lp = request.get("logprobs")
        k = _int(lp) if not isinstance(lp, bool) else 0
    return 0.5 + 0.5 * min(1.0, max(0, k or 0) / 10)


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


def asked_tokens(request: dict[str, Any]) -> int | None:
    """The answer length the request asked for (max_completion_tokens or max_tokens), if any."""
    for k in ("max_completion_tokens", "max_tokens"):
        v = _int(request.get(k))
        if v is not None:
            return v
    return None


@dataclass
class Entry:
    ts: float
    prefix: str
    suffix: str
    words: tuple[str, ...]  # distinct content words of the prompt
    cot: bool
    logprobs: float  # logprob_demand
    tokens_in: int
    tokens_out: int
    digest: str = ""  # of the prompt text (repeats), never the text itself
    tiny: bool = False  # asked for or got at most TINY_ANSWER tokens
    template: float = 0.0  # set by KeyWindow.add: share of frame words
    coverage: float = 0.0  # ... 1 when it brings a rare word new to the key
    slot: bool = False  # ... a one-slot template filled with such a word
    novel: bool = False  # ... brings a content word new to the key (rare in the traffic or not)
    harvest: bool = False  # ... a log-probability probe on a new prompt
    single: bool = False  # a lone user message (no assistant turn before it)
    asked: int = ASKED_DEFAULT  # answer tokens asked for
    tools: bool = False  # declares tools or carries tool results
    hashes: tuple[str, ...] = ()  # word_hash of each content word (what the traffic log keeps)

    LOGGED = ("ts", "prefix", "suffix", "words", "cot", "logprobs", "tokens_in", "tokens_out", "digest", "tiny",
              "single", "asked", "tools")

    def to_log(self) -> dict[str, Any]:
        """The traffic log's record: numbers and hashes, no prompt text (words, skeletons hashed)."""
        row = {k: getattr(self, k) for k in self.LOGGED}
        row["words"] = list(self.hashes)
        row["prefix"], row["suffix"] = word_hash(self.prefix), word_hash(self.suffix)
        return row

    @classmethod
    def from_log(cls, row: dict[str, Any]) -> Entry:
        """An entry from a traffic-log record (its words are already hashes)."""
        kw = {k: row[k] for k in cls.LOGGED}
        kw["words"] = tuple(kw["words"])
        return cls(**kw, hashes=kw["words"])

    def vector(self) -> dict[int, float]:
        return prompt_vector(self.hashes)


def make_entry(request: dict[str, Any], response: dict[str, Any] | None, ts: float) -> Entry:
    """Reduce one request/response pair to what the features need (no raw text is kept)."""
    text = prompt_text(request)
    low = text.lower()
    ws = _WORD.findall(low)
    prefix = " ".join(ws[:SKELETON_WORDS])
    suffix = " ".join(ws[-SKELETON_WORDS:])
    content = tuple(dict.fromkeys(w for w in ws if len(w) >= 4 and w not in STOPWORDS))
    tin, tout = token_counts(request, response, len(ws))
    asked = asked_tokens(request)
    tiny = tout <= TINY_ANSWER or (asked is not None and asked <= TINY_ANSWER)
    digest = hashlib.blake2b(" ".join(ws).encode(), digest_size=8).hexdigest()
    msgs = request.get("messages")
    msgs = [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []
    roles = [m.get("role") for m in msgs]
    single = "assistant" not in roles and "tool" not in roles and roles.count("user") <= 1
    tools = bool(request.get("tools")) or "tool" in roles or any(m.get("tool_calls") for m in msgs)
    return Entry(float(ts), prefix, suffix, content, COT.search(low) is not None, logprob_demand(request), tin, tout,
                 digest, tiny, single=single, asked=asked if asked is not None else ASKED_DEFAULT, tools=tools,
                 hashes=tuple(word_hash(w) for w in content))


def _bump(counter: Counter[str], key: str, by: int) -> None:
    """counter[key] += by, dropping the key at zero."""
    counter[key] += by
    if counter[key] <= 0:
        del counter[key]


def median(xs: list[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])


class KeyWindow:
    """One API key's recent requests with running counts, so features cost O(its words) per request."""

    def __init__(self, window_seconds: float, max_requests: int, word_keys: Counter[str] | None = None,
                 word_prompts: Counter[str] | None = None):
        """`word_keys`: content word -> keys whose window holds it; `word_prompts`: content word -> prompts of all
        windows holding it, and ALL_PROMPTS -> prompts of all windows. Both are shared by all the windows of a
        Guard (each window keeps them up to date); None: this key alone."""
        self.window_seconds, self.max_requests = window_seconds, max_requests
        self.word_keys: Counter[str] = Counter() if word_keys is None else word_keys
        self.word_prompts: Counter[str] = Counter() if word_prompts is None else word_prompts
        self.attached = True  # this window counts in word_keys and word_prompts (see detach)
        self.entries: deque[Entry] = deque()
        self.prefixes: Counter[str] = Counter()
        self.suffixes: Counter[str] = Counter()
        self.words: Counter[str] = Counter()  # content word -> prompts of the window holding it
        self.digests: Counter[str] = Counter()
        self.bins: Counter[int] = Counter()
        self.gaps: deque[float] = deque(maxlen=GAPS)  # log inter-arrival gaps, the latest GAPS
        self.n_cot = self.n_harvest = self.n_tiny = self.n_slot = 0
        self.lp_sum = self.template_sum = self.coverage_sum = self.long_sum = 0.0
        self.t_in = self.t_out = 0
        self.total_seen = 0
        self.n_single = self.n_tools = self.n_vec = self.n_novel = 0
        self.asked_sum = 0.0
        self.vec_sum = np.zeros(DIM)  # sum of the window's prompt vectors

    @property
    def n_lp(self) -> int:
        return sum(1 for e in self.entries if e.logprobs > 0)

    def frame_words(self, top: int = 12) -> frozenset[str]:
        """The key's frame for cross-key overlap: its commonest content words among those in >= FRAME_SHARE of its
        prompts and typical of it (a share of its prompts >= CROSS_LIFT times the word's share in all prompts)."""
        n = len(self.entries)
        if n < FRAME_AFTER:
            return frozenset()
        need = max(FRAME_MIN, FRAME_SHARE * n)
        total = self.word_prompts[ALL_PROMPTS]
        return frozenset(w for w, c in self.words.most_common(top)
                         if c >= need and c * total >= CROSS_LIFT * n * self.word_prompts[w])

    def _apply(self, e: Entry, sign: int) -> None:
        for counter, k in ((self.prefixes, e.prefix), (self.suffixes, e.suffix), (self.digests, e.digest),
                           (self.bins, int(e.ts // BIN_SECONDS))):
            counter[k] += sign
            if counter[k] <= 0:
                del counter[k]
        shared = self.attached
        if shared:
            _bump(self.word_prompts, ALL_PROMPTS, sign)
        for w in e.words:
            self.words[w] += sign
            if shared:
                _bump(self.word_prompts, w, sign)
            if self.words[w] <= 0:
                del self.words[w]
                if shared:
                    _bump(self.word_keys, w, -1)
            elif shared and sign > 0 and self.words[w] == 1:
                self.word_keys[w] += 1
        self.n_cot += sign * e.cot
        self.n_novel += sign * e.novel
        self.n_harvest += sign * e.harvest
        self.n_slot += sign * e.slot
        self.n_tiny += sign * e.tiny
        self.lp_sum += sign * e.logprobs
        self.template_sum += sign * e.template
        self.coverage_sum += sign * e.coverage
        self.long_sum += sign * min(1.0, e.tokens_out / LONG_ANSWER)
        self.t_in += sign * e.tokens_in
        self.t_out += sign * e.tokens_out
        self.n_single += sign * e.single
        self.n_tools += sign * e.tools
        self.asked_sum += sign * min(1.0, e.asked / ASKED_LONG)
        vec = e.vector()
        if vec:
            self.n_vec += sign
            for i, x in vec.items():
                self.vec_sum[i] += sign * x

    def detach(self, attach: bool = False) -> None:
        """Take this window out of the shared word counts (`attach`: put it back). The Guard detaches the windows
        of accounts it acts on: what other keys are compared to is the traffic of accounts in good standing, so a
        throttled harvester's frozen window does not make everyone's topics look common."""
        if self.attached == attach:
            return
        sign = 1 if attach else -1
        _bump(self.word_prompts, ALL_PROMPTS, sign * len(self.entries))
        for w, c in self.words.items():
            _bump(self.word_prompts, w, sign * c)
            _bump(self.word_keys, w, sign)
        self.attached = attach

    def _score_prompt(self, e: Entry, rare_below: float) -> None:
        """template, coverage, slot and harvest of a new entry, against the window before it."""
        n = len(self.entries)
        e.harvest = e.logprobs > 0 and e.tiny and e.digest not in self.digests
        if n < FRAME_AFTER or not e.words:
            return
        need = max(FRAME_MIN, FRAME_SHARE * n)
        frame = sum(1 for w in e.words if self.words.get(w, 0) >= need)
        e.template = frame / len(e.words)
        new = [w for w in e.words if w not in self.words]
        new_topic = any(self.word_keys.get(w, 0) < rare_below for w in new)
        e.coverage = float(new_topic)
        slot_need = max(FRAME_MIN, SLOT_SHARE * n)
        slot_frame = sum(1 for w in e.words if self.words.get(w, 0) >= slot_need)
        e.slot = new_topic and slot_frame >= SLOT_FRAME and len(e.words) - slot_frame <= SLOT_OTHER
        e.novel = bool(new)

    def add(self, e: Entry, rare_below: float = RARE_MIN) -> list[Entry]:
        """Add a request and drop those outside the window; returns the dropped entries. `rare_below`: a word in
        the windows of fewer keys than this is a topic word (coverage)."""
        if self.entries:
            self.gaps.append(math.log(max(MIN_GAP, e.ts - self.entries[-1].ts)))
        self._score_prompt(e, rare_below)
        self.entries.append(e)
        self._apply(e, +1)
        self.total_seen += 1
        dropped = []
        while self.entries and (len(self.entries) > self.max_requests
                                or e.ts - self.entries[0].ts > self.window_seconds):
            old = self.entries.popleft()
            self._apply(old, -1)
            dropped.append(old)
        return dropped

    def regular(self) -> float:
        """1 / (1 + 2 * MAD of the log gaps); 0 until three gaps were seen."""
        if len(self.gaps) < 3:
            return 0.0
        g = list(self.gaps)
        m = median(g)
        return 1.0 / (1.0 + 2.0 * median([abs(x - m) for x in g]))

    def steady(self) -> float:
        if not self.entries:
            return 0.0
        span = int(self.entries[-1].ts // BIN_SECONDS) - int(self.entries[0].ts // BIN_SECONDS) + 1
        return len(self.bins) / max(span, MIN_BINS)

    def mean_vector(self) -> np.ndarray | None:
        """The mean of the window's prompt vectors (None without any)."""
        return self.vec_sum / self.n_vec if self.n_vec else None

    def similarity(self) -> float:
        """Mean cosine over pairs of distinct prompts of the window (0 below two prompts with content words)."""
        n = self.n_vec
        return float(self.vec_sum @ self.vec_sum - n) / (n * (n - 1)) if n >= 2 else 0.0

    def pool_distance(self, others: np.ndarray | None) -> float:
        """||mean(prompts) - others||^2 with the within-key term unbiased (linear-kernel MMD^2); 0 without both."""
        mean = self.mean_vector()
        if mean is None or others is None or self.n_vec < 2:
            return 0.0
        return max(0.0, self.similarity() - 2.0 * float(mean @ others) + float(others @ others))

    def rate(self) -> float:
        """log1p(requests per hour over the window's span, at least an hour) / log1p(3600)."""
        if not self.entries:
            return 0.0
        span = max(3600.0, self.entries[-1].ts - self.entries[0].ts)
        return math.log1p(3600.0 * len(self.entries) / span) / math.log1p(3600.0)

    def statistics(self, cross_keys: int = 0, others: np.ndarray | None = None) -> dict[str, float]:
        """`features` plus EXTRA and "requests" (see the module docstring); `others`: the mean prompt vector of the
        other keys (pool_distance)."""
        n = len(self.entries)
        stats = self.features(cross_keys)
        stats.update(single_turn=self.n_single / n if n else 0.0, asked_long=self.asked_sum / n if n else 0.0,
                     tools=self.n_tools / n if n else 0.0, similarity=self.similarity(),
                     pool_distance=self.pool_distance(others), rate=self.rate(), novel=self.n_novel / n if n else 0.0,
                     requests=float(n))
        return stats

    def features(self, cross_keys: int = 0) -> dict[str, float]:
        """The feature vector (see the module docstring); `cross_keys` = other keys whose frame overlaps this one's."""
        n = len(self.entries)
        if n == 0:
            return dict.fromkeys(FEATURES, 0.0)
        return {
            "volume": min(1.0, math.log1p(n) / math.log1p(self.max_requests)),
            "steady": self.steady(),
            "regular": self.regular(),
            "template": self.template_sum / n,
            "coverage": self.coverage_sum / n,
            "slot": self.n_slot / n,
            "cot": self.n_cot / n,
            "logprobs": self.lp_sum / n,
            "lp_harvest": self.n_harvest / n * min(1.0, self.n_harvest / HARVEST_SCALE),
            "long_out": self.long_sum / n,
            "cross_key": min(1.0, math.log1p(cross_keys) / math.log1p(CROSS_SATURATE)),
        }

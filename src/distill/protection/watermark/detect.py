"""Detecting the watermark in text: score each distinct unit once and compute the exact binomial p-value."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from distill.errors import DistillError
from distill.protection.watermark.greenlist import exact_gamma, score_pairs
from distill.protection.watermark.keys import WatermarkKey
from distill.protection.watermark.stats import bonferroni, log10_p_value, min_tokens_needed, p_value, z_score


@dataclass
class Detection:
    """The result of scoring text with one key."""

    tokens_total: int  # positions with a full context window
    tokens_scored: int  # distinct units scored (repeats and prompt windows removed)
    green: int
    gamma: float
    z: float
    p_value: float
    log10_p_value: float
    key_id: str = ""
    account: str | None = None
    dropped_prompt_windows: int = 0
    repeats: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class UnitCounter:
    """Accumulates (window, token) observations for one key, scoring each unit once."""

    def __init__(self, key: WatermarkKey, exclude_windows: Iterable[tuple[int, ...]] = ()):
        self.key = key
        self.exclude = set(exclude_windows)
        self.units: dict[tuple, bool] = {}
        self.total = self.dropped = self.repeats = 0

    def add(self, windows: Sequence[Sequence[int]], tokens: Sequence[int]) -> None:
        """Score tokens[i] against windows[i] (each window has exactly h ids)."""
        keep = []
        for w, t in zip(windows, tokens, strict=True):
            self.total += 1
            if tuple(w) in self.exclude:
                self.dropped += 1
            else:
                keep.append((list(w), t))
        if not keep:
            return
        w_t = torch.tensor([w for w, _ in keep], dtype=torch.int64)
        t_t = torch.tensor([t for _, t in keep], dtype=torch.int64)
        green, units = score_pairs(self.key, w_t, t_t)
        for g, u in zip(green, units, strict=True):
            if u in self.units:
                self.repeats += 1
            else:
                self.units[u] = g

    def add_sequence(self, ids: Sequence[int]) -> None:
        """Score every token of `ids` that has h tokens before it."""
        h = self.key.context_width
        ids = [int(i) for i in ids]
        if len(ids) <= h:
            self.total += 0
            return
        self.add([ids[t - h:t] for t in range(h, len(ids))], ids[h:])

    def result(self) -> Detection:
        gamma = exact_gamma(self.key.gamma)
        n, g = len(self.units), sum(self.units.values())
        return Detection(self.total, n, g, gamma, z_score(g, n, gamma), p_value(g, n, gamma),
                         log10_p_value(g, n, gamma), self.key.key_id, self.key.account, self.dropped, self.repeats)


def windows_of(ids: Sequence[int], h: int) -> set[tuple[int, ...]]:
    """Every h-token window occurring in `ids` (used to drop windows copied from a prompt)."""
    return {tuple(ids[i:i + h]) for i in range(0, max(0, len(ids) - h + 1))}


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_ids(key: WatermarkKey, ids: Sequence[int], where: str) -> None:
    if ids and key.vocab_size and max(ids) >= key.vocab_size:
        raise DistillError(f"token id {max(ids)} is outside the key's vocabulary of {key.vocab_size}", where=where,
                           fix="use the tokenizer the key was made for")


def detect_ids(key: WatermarkKey, sequences: Sequence[Sequence[int]],
               prompt_ids: Sequence[Sequence[int]] = ()) -> Detection:
    """Score token-id sequences with `key`; windows that occur in any prompt are not scored."""
    exclude: set[tuple[int, ...]] = set()
    for p in prompt_ids:
        exclude |= windows_of(list(p), key.context_width)
    counter = UnitCounter(key, exclude)
    for ids in sequences:
        check_ids(key, ids, "text")
        counter.add_sequence(ids)
    return counter.result()


def strip_prompt(text: str, prompt: str | None) -> str:
    """Remove the prompt when the text starts with it (a completion saved together with its prompt)."""
    if prompt and text.startswith(prompt):
        return text[len(prompt):]
    return text


def detect_text(key: WatermarkKey, tokenizer, text: str, prompt: str | None = None) -> Detection:
    """Score `text` (tokenized with the key's tokenizer); the prompt, when given, is excluded."""
    key.check_tokenizer(tokenizer)
    ids = encode(tokenizer, strip_prompt(text, prompt))
    prompt_ids = [encode(tokenizer, prompt)] if prompt else []
    return detect_ids(key, [ids], prompt_ids)


def require_enough(det: Detection, alpha: float, n_keys: int = 1) -> None:
    """Refuse to report a p-value for text too short to ever reach `alpha` (after correcting for n_keys)."""
    need = min_tokens_needed(alpha, det.gamma, n_keys)
    if det.tokens_scored < need:
        extra = f" when testing {n_keys} keys" if n_keys > 1 else ""
        raise DistillError(
            f"the text is too short to test: {det.tokens_scored} distinct tokens could be scored, but at least "
            f"{need} are needed before any p-value can fall below {alpha:g} with gamma={det.gamma:g}{extra}; "
            f"in practice watermarked text needs several times more",
            where="text", fix="pass a longer text (or several answers concatenated), or raise --alpha", code=4)


def detect_accounts(master: WatermarkKey, accounts: Sequence[str], tokenizer, text: str,
                    prompt: str | None = None) -> dict:
    """Test the master key and every account's sub-key; Bonferroni-correct for the number of keys tested."""
    keys = [master] + [master.for_account(a) for a in accounts]
    results = [detect_text(k, tokenizer, text, prompt) for k in keys]
    best = min(results, key=lambda d: d.log10_p_value)
    n = len(keys)
    return {"keys_tested": n, "correction": "bonferroni", "best_account": best.account,
            "best": best.to_dict(), "p_value_corrected": bonferroni(best.p_value, n),
            "log10_p_value_corrected": min(0.0, best.log10_p_value + math.log10(n)),
            "results": [r.to_dict() for r in results]}

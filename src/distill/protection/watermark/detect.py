"""Detecting the watermark in text: score each distinct unit once and compute the exact binomial p-value."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from distill.errors import DistillError
from distill.keys.watermark import WatermarkKey
from distill.protection.watermark.greenlist import exact_gamma, score_pairs
from distill.protection.watermark.stats import binom_log_sf, bonferroni, min_tokens_needed, z_score

if TYPE_CHECKING:
    from distill.protection.watermark.calibrate import Calibration


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
    """Accumulates (window, token) observations for one key, scoring each unit once.

    With a `calibration` (`distill.protection.watermark.calibrate`), units frequent in the key's reference corpus
    are not scored and the p-value comes from the key's fitted null instead of Binomial(T, gamma)."""

    def __init__(self, key: WatermarkKey, exclude_windows: Iterable[tuple[int, ...]] = (),
                 calibration: Calibration | None = None):
        if calibration is not None and calibration.key_id != key.key_id:
            raise DistillError(f"the calibration is for key {calibration.key_id}, not key {key.key_id}",
                               fix="use the calibration made for this key (`distill watermark calibrate`)")
        self.key, self.calibration = key, calibration
        self.exclude = set(exclude_windows)
        self.units: dict[tuple, bool] = {}
        self.frequent: set[tuple] = set()  # units not scored because the calibration excludes them
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
        cal = self.calibration
        for g, u in zip(green, units, strict=True):
            if u in self.units or u in self.frequent:
                self.repeats += 1
            elif cal is not None and cal.excludes(u):
                self.frequent.add(u)
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

    def log_p(self) -> float:
        """Natural log of the p-value of the units scored so far."""
        n, g = len(self.units), sum(self.units.values())
        if self.calibration is not None:
            return self.calibration.log_sf(g, n)
        return binom_log_sf(g, n, exact_gamma(self.key.gamma))

    def result(self) -> Detection:
        gamma = exact_gamma(self.key.gamma)
        n, g = len(self.units), sum(self.units.values())
        log_p = self.log_p()
        cal = self.calibration
        z = z_score(g, n, gamma) if cal is None else cal.z(g, n)
        extra = {"calibrated": cal is not None}
        if cal is not None:
            extra.update(frequent_units_skipped=len(self.frequent), null_mean=cal.mean, null_rho=cal.rho)
        return Detection(self.total, n, g, gamma, z, math.exp(log_p), log_p / math.log(10), self.key.key_id,
                         self.key.account, self.dropped, self.repeats, extra)


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
               prompt_ids: Sequence[Sequence[int]] = (), calibration: Calibration | None = None) -> Detection:
    """Score token-id sequences with `key`; windows that occur in any prompt are not scored."""
    exclude: set[tuple[int, ...]] = set()
    for p in prompt_ids:
        exclude |= windows_of(list(p), key.context_width)
    counter = UnitCounter(key, exclude, calibration)
    for ids in sequences:
        check_ids(key, ids, "text")
        counter.add_sequence(ids)
    return counter.result()


def account_keys(master: WatermarkKey, accounts: Sequence[str]) -> list[WatermarkKey]:
    """The master key followed by each account's sub-key."""
    return [master] + [master.for_account(a) for a in accounts]


def strip_prompt(text: str, prompt: str | None) -> str:
    """Remove the prompt when the text starts with it (a completion saved together with its prompt)."""
    if prompt and text.startswith(prompt):
        return text[len(prompt):]
    return text


def detect_text(key: WatermarkKey, tokenizer, text: str, prompt: str | None = None,
                calibration: Calibration | None = None) -> Detection:
    """Score `text` (tokenized with the key's tokenizer); the prompt, when given, is excluded."""
    key.check_tokenizer(tokenizer)
    ids = encode(tokenizer, strip_prompt(text, prompt))
    prompt_ids = [encode(tokenizer, prompt)] if prompt else []
    return detect_ids(key, [ids], prompt_ids, calibration)


def tokens_needed(key: WatermarkKey, ids: Sequence[int], alpha: float,
                  calibration: Calibration | None = None) -> int | None:
    """Scored units needed before the running p-value of `ids` falls below alpha (None if it never does)."""
    c = UnitCounter(key, calibration=calibration)
    h, target, n = key.context_width, math.log(alpha), 0
    for t in range(h, len(ids)):
        c.add([ids[t - h:t]], [ids[t]])
        if len(c.units) > n:
            n = len(c.units)
            if c.log_p() < target:
                return n
    return None


def require_enough(det: Detection, alpha: float, n_keys: int = 1, calibration: Calibration | None = None) -> None:
    """Refuse to report a p-value for text too short to ever reach `alpha` (after correcting for n_keys)."""
    need = (min_tokens_needed(alpha, det.gamma, n_keys) if calibration is None
            else calibration.min_tokens(alpha, n_keys))
    if det.tokens_scored < need:
        extra = f" when testing {n_keys} keys" if n_keys > 1 else ""
        raise DistillError(
            f"the text is too short to test: {det.tokens_scored} distinct tokens could be scored, but at least "
            f"{need} are needed before any p-value can fall below {alpha:g} with gamma={det.gamma:g}{extra}; "
            f"in practice watermarked text needs several times more",
            where="text", fix="pass a longer text (or several answers concatenated), or raise --alpha", code=4)


def detect_accounts(master: WatermarkKey, accounts: Sequence[str], tokenizer, text: str,
                    prompt: str | None = None, calibrations: Mapping[str, Calibration] | None = None) -> dict:
    """Test the master key and every account's sub-key; Bonferroni-correct for the number of keys tested.

    With `calibrations` (by key_id, e.g. from `load_calibration`), each key uses its own."""
    keys = account_keys(master, accounts)
    results = [detect_text(k, tokenizer, text, prompt, calibrations[k.key_id] if calibrations else None)
               for k in keys]
    best = min(results, key=lambda d: d.log10_p_value)
    n = len(keys)
    return {"keys_tested": n, "correction": "bonferroni", "best_account": best.account,
            "best": best.to_dict(), "p_value_corrected": bonferroni(best.p_value, n),
            "log10_p_value_corrected": min(0.0, best.log10_p_value + math.log10(n)),
            "results": [r.to_dict() for r in results]}

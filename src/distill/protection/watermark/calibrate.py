"""Per-key calibration of the detector on a reference corpus of ordinary text (`distill watermark calibrate`).

Why. The binomial p-value of `detect` is exact over random keys: a unit's colour is a fair coin with bias gamma
when the key is drawn at random. An owner tests many texts with *one* key, and related texts share units
(frequent phrases, a play's speaker names): under that key each shared unit has one fixed colour, so its texts
are all pushed the same way, and the false-positive rate over the owner's texts depends on the key (0.1%-2.6%
at p0 = 0.01 over eight keys on Shakespeare, issue 16). Two steps, both fitted with the owner's key on passages
of ordinary text (the reference corpus), give a p-value that holds for that key:

1. **Frequent units are not scored.** A unit (what a colour depends on: (anchor, token) or (window, token))
   that occurs in at least a share `max_unit_share` of the reference passages is excluded from scoring. If
   every scored unit occurs in a text with probability at most q, the key-conditional shift of a text's
   standardised green count has standard deviation at most sqrt(q) (Var = sum q_u^2 / sum q_u): removing the
   frequent units is what makes the key-to-key spread small. This is the corpus-frequency form of scoring only
   high-entropy tokens (SWEET, Lee et al. 2024, "Who Wrote this Code? Watermarking for Code Generation"): a
   unit frequent in ordinary text is a low-entropy choice, which carries little watermark and most of the
   key-dependent bias.
2. **An empirical null per key** (Efron 2004, "Large-scale simultaneous hypothesis testing: the choice of a null
   hypothesis"). The green counts of the remaining units in held-out reference documents are fitted with a
   beta-binomial: mean m and intra-text correlation rho (method of moments). Its variance, T m (1-m)
   (1 + (T-1) rho), absorbs what the exclusions cannot remove: units repeated across the passages of one new
   document (names, refrains), which no reference corpus can know. The fit is cross-fitted: the exclusions
   come from one half of the reference documents and the null is measured on the other half (both ways), so it
   sees new documents' repeats the way a tested text does. The p-value is P(X >= G) with X ~
   BetaBinomial(T, max(gamma, m), max(0, rho)): never based on a green rate below gamma.

What is stored (JSON, next to the key: `<key file>.calib.json`): for each key (the master and any accounts'
sub-keys), its `key_id`, the scheme, the fitted null (m, rho), diagnostics, and the excluded units as *keyed*
64-bit tags (BLAKE2b keyed with a sub-key derived from the secret), sorted — without the key, a tag says nothing
about a unit or its colour — plus an HMAC of the entry, so a calibration edited by hand or made for another key
is refused. No colour, no unit and nothing else derived from the secret is written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from distill.errors import DistillError
from distill.fileio import read_json_object, write_json_atomic
from distill.keys.watermark import WatermarkKey
from distill.protection.watermark.greenlist import exact_gamma, score_pairs
from distill.protection.watermark.stats import betabinom_log_sf, min_tokens_needed

FORMAT = "distill-watermark-calibration/1"
MAX_UNIT_SHARE = 0.002
"""Default `max_unit_share`: units in at least 0.2% of reference passages are not scored (sd of the residual
key-conditional z shift <= sqrt(0.002) = 0.045)."""
PASSAGE_TOKENS = 114
MIN_PASSAGES = 200
_TAG_LABEL = b"distill-watermark-calibration\x00"
_FIX_RECALIBRATE = "run `distill watermark calibrate --key KEY --corpus FILES` again for this key"


def calibration_path(key_path: str | Path) -> Path:
    """Where `calibrate` stores a key's calibration: next to the key file, `<key file>.calib.json`."""
    p = Path(key_path)
    return p.with_name(p.name + ".calib.json")


def _tag_secret(key: WatermarkKey) -> bytes:
    return hmac.new(key.secret, _TAG_LABEL, hashlib.sha256).digest()


def _unit_bytes(unit: tuple) -> bytes:
    return b"".join(int(x).to_bytes(4, "big") for x in unit)


def _tag(secret: bytes, unit: tuple) -> int:
    return int.from_bytes(hashlib.blake2b(_unit_bytes(unit), key=secret, digest_size=8).digest(), "big")


def _scheme(key: WatermarkKey) -> dict[str, Any]:
    return {"gamma": key.gamma, "context_width": key.context_width, "self_hash": key.self_hash,
            "vocab_size": key.vocab_size}


@dataclass(frozen=True)
class Calibration:
    """The fitted null of one key: excluded units (keyed tags), beta-binomial mean and correlation."""

    key_id: str
    account: str | None
    scheme: dict[str, Any]
    excluded: frozenset[int] = field(repr=False)
    mean: float  # null green rate used, >= gamma
    rho: float  # beta-binomial intra-text correlation used, >= 0
    fit: dict[str, Any] = field(default_factory=dict)  # what it was fitted on, and diagnostics
    tag_secret: bytes = field(default=b"", repr=False)  # derived from the key in memory, never written

    def excludes(self, unit: tuple) -> bool:
        return _tag(self.tag_secret, unit) in self.excluded

    def log_sf(self, green: int, total: int) -> float:
        """Natural log of the calibrated p-value of `green` green units out of `total` scored."""
        return betabinom_log_sf(green, total, self.mean, self.rho)

    def z(self, green: int, total: int) -> float:
        if total == 0:
            return 0.0
        m = self.mean
        return (green - m * total) / math.sqrt(total * m * (1 - m) * (1 + (total - 1) * self.rho))

    def min_tokens(self, alpha: float, n_keys: int = 1, limit: int = 100_000) -> int:
        """Fewest scored units with which an all-green text reaches alpha / n_keys (limit + 1 if none below limit)."""
        target = math.log(alpha / n_keys)
        n = min_tokens_needed(alpha, self.mean, n_keys)
        while n <= limit and self.log_sf(n, n) > target:
            n = n + 1 if n < 64 else int(n * 1.05) + 1
        return n

    def public_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "account": self.account, "null_mean": self.mean, "null_rho": self.rho,
                "excluded_units": len(self.excluded), **{k: v for k, v in self.fit.items() if k != "corpus"}}


def reference_passages(tokenizer, documents: Sequence[str],
                       passage_tokens: int = PASSAGE_TOKENS) -> tuple[list[list[int]], list[int]]:
    """Consecutive passages of `passage_tokens` tokens of each document, and the document index of each."""
    passages, docs = [], []
    for d, text in enumerate(documents):
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        for i in range(0, len(ids) - passage_tokens + 1, passage_tokens):
            passages.append(ids[i:i + passage_tokens])
            docs.append(d)
    return passages, docs


def passage_units(key: WatermarkKey, passages: Sequence[Sequence[int]]) -> list[dict[tuple, bool]]:
    """For each passage, its distinct units and their colours (the same units `UnitCounter` scores)."""
    h = key.context_width
    wins, toks, owner = [], [], []
    for i, ids in enumerate(passages):
        if len(ids) <= h:
            continue
        t = torch.tensor(list(ids), dtype=torch.int64)
        wins.append(t.unfold(0, h, 1)[:-1])
        toks.append(t[h:])
        owner += [i] * (len(ids) - h)
    out: list[dict[tuple, bool]] = [{} for _ in passages]
    if not toks:
        return out
    green, units = score_pairs(key, torch.cat(wins), torch.cat(toks))
    for i, g, u in zip(owner, green, units, strict=True):
        out[i].setdefault(u, g)
    return out


def _frequent(units: Sequence[dict[tuple, bool]], max_unit_share: float) -> set[tuple]:
    df = Counter(u for p in units for u in p)
    need = max(2, math.ceil(max_unit_share * len(units)))
    return {u for u, c in df.items() if c >= need}


def fit_null(counts: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """Beta-binomial method of moments on (green, scored) pairs: (mean, rho), rho clipped at 0.

    m = sum g / sum n; rho = (sum (g - n m)^2 - sum n m (1-m)) / (m (1-m) sum n (n-1))."""
    counts = [(g, n) for g, n in counts if n > 0]
    tot = sum(n for _, n in counts)
    if not counts or tot == 0:
        raise ValueError("no scored units")
    m = sum(g for g, _ in counts) / tot
    if m <= 0.0 or m >= 1.0:
        return m, 0.0
    num = sum((g - n * m) ** 2 for g, n in counts) - sum(n * m * (1 - m) for _, n in counts)
    den = m * (1 - m) * sum(n * (n - 1) for _, n in counts)
    return m, max(0.0, num / den) if den > 0 else 0.0


def _folds(docs: Sequence[int]) -> list[int]:
    """Two folds by document (alternating), or by halves of the one document there is."""
    ids = sorted(set(docs))
    if len(ids) >= 2:
        rank = {d: i for i, d in enumerate(ids)}
        return [rank[d] % 2 for d in docs]
    return [int(i >= len(docs) / 2) for i in range(len(docs))]


def _kept_counts(units: Sequence[dict[tuple, bool]], excluded: set[tuple]) -> list[tuple[int, int]]:
    out = []
    for p in units:
        kept = [g for u, g in p.items() if u not in excluded]
        out.append((sum(kept), len(kept)))
    return out


def fit_calibration(key: WatermarkKey, passages: Sequence[Sequence[int]], docs: Sequence[int] | None = None,
                    max_unit_share: float = MAX_UNIT_SHARE, corpus: str = "") -> Calibration:
    """Fit `key`'s calibration on reference `passages` (token ids; `docs[i]` = the document of passage i)."""
    if not 0.0 < max_unit_share < 1.0:
        raise DistillError(f"max_unit_share must be between 0 and 1 (got {max_unit_share})", fix="use e.g. 0.002")
    if len(passages) < MIN_PASSAGES:
        raise DistillError(f"the reference corpus gives only {len(passages)} passages; calibration needs at least "
                           f"{MIN_PASSAGES} to measure which units are frequent and how much texts vary",
                           where=corpus or "reference corpus",
                           fix=f"pass more ordinary text of the kind you will test (about {MIN_PASSAGES} x "
                               "the passage length in tokens, ideally thousands of passages)")
    docs = list(docs) if docs is not None else [0] * len(passages)
    units = passage_units(key, passages)
    gamma = exact_gamma(key.gamma)
    fold = _folds(docs)
    held: list[tuple[int, int]] = []
    for f in (0, 1):
        train = [u for u, k in zip(units, fold, strict=True) if k == f]
        test = [u for u, k in zip(units, fold, strict=True) if k != f]
        held += _kept_counts(test, _frequent(train, max_unit_share))
    m_hat, rho_hat = fit_null(held)
    excluded_units = _frequent(units, max_unit_share)
    all_units = sum(len(p) for p in units)
    kept_units = sum(n for _, n in _kept_counts(units, excluded_units))
    fit = {"passages": len(passages), "documents": len(set(docs)), "passage_tokens": max(map(len, passages)),
           "max_unit_share": max_unit_share, "green_rate_fitted": m_hat, "rho_fitted": rho_hat,
           "units_kept_share": kept_units / max(1, all_units), "corpus": corpus,
           "method": "frequent units excluded + cross-fitted beta-binomial null (docs/protect.md)"}
    return make_calibration(key, excluded_units, max(gamma, m_hat), max(0.0, rho_hat), fit)


def make_calibration(key: WatermarkKey, excluded_units: Iterable[tuple], mean: float, rho: float,
                     fit: dict[str, Any] | None = None) -> Calibration:
    """A calibration of `key` that skips `excluded_units` and uses BetaBinomial(mean, rho) as the null."""
    if not 0.0 < mean < 1.0 or not 0.0 <= rho < 1.0:
        raise DistillError(f"a calibration needs 0 < mean < 1 and 0 <= rho < 1 (got {mean}, {rho})")
    secret = _tag_secret(key)
    return Calibration(key.key_id, key.account, _scheme(key), frozenset(_tag(secret, u) for u in excluded_units),
                       mean, rho, dict(fit or {}), secret)


def _entry(cal: Calibration) -> dict[str, Any]:
    packed = b"".join(t.to_bytes(8, "big") for t in sorted(cal.excluded))
    body = {"key_id": cal.key_id, "account": cal.account, "scheme": cal.scheme, "null_mean": cal.mean,
            "null_rho": cal.rho, "fit": cal.fit, "excluded_tags": base64.b64encode(packed).decode("ascii")}
    return {**body, "mac": _mac(cal.tag_secret, body)}


def _mac(secret: bytes, body: dict) -> str:
    return hmac.new(secret, json.dumps(body, sort_keys=True).encode("utf-8"), hashlib.sha256).hexdigest()


def save_calibration(cals: Sequence[Calibration], path: str | Path) -> Path:
    """Write the calibrations (the master key's and any sub-keys') to one JSON file, atomically."""
    path = Path(path)
    payload = {"format": FORMAT, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "keys": [_entry(c) for c in cals]}
    try:
        write_json_atomic(path, payload)
    except OSError as e:
        raise DistillError(f"cannot write the calibration file ({e.strerror or type(e).__name__})", where=str(path),
                           fix="choose an --out path in a folder you can write to") from None
    return path


def load_calibration(path: str | Path, keys: Sequence[WatermarkKey]) -> dict[str, Calibration]:
    """The calibration of each of `keys` (by key_id) from `path`; refused when one is missing, edited or made
    for another key or scheme."""
    path = Path(path)
    data = read_json_object(path, "watermark calibration file",
                            "pass the file written by `distill watermark calibrate` for this key",
                            fix_missing="create it with `distill watermark calibrate`, or run without it "
                                        "(`--no-calibration`)", fmt=FORMAT)
    entries = data.get("keys")
    if not isinstance(entries, list):
        raise DistillError("the calibration file is damaged (no list of keys)", where=str(path), fix=_FIX_RECALIBRATE)
    by_id = {e.get("key_id"): e for e in entries if isinstance(e, dict)}
    out = {}
    for key in keys:
        e = by_id.get(key.key_id)
        name = f"key {key.key_id}" + (f" (account {key.account})" if key.account else "")
        if e is None:
            have = ", ".join(sorted(str(k) for k in by_id)) or "none"
            raise DistillError(f"the calibration file has no calibration for {name} (it holds key ids: {have}); it "
                               "was made for another key", where=str(path), fix=_FIX_RECALIBRATE
                               + (" with `--accounts`" if key.account else ""))
        secret = _tag_secret(key)
        body = {k: v for k, v in e.items() if k != "mac"}
        if not hmac.compare_digest(str(e.get("mac", "")), _mac(secret, body)):
            raise DistillError(f"the calibration of {name} does not match the key (edited, damaged, or made for "
                               "another key with the same id)", where=str(path), fix=_FIX_RECALIBRATE)
        if body.get("scheme") != _scheme(key):
            raise DistillError(f"the calibration of {name} was made for another scheme ({body.get('scheme')})",
                               where=str(path), fix=_FIX_RECALIBRATE)
        try:
            packed = base64.b64decode(body["excluded_tags"])
            tags = frozenset(int.from_bytes(packed[i:i + 8], "big") for i in range(0, len(packed), 8))
            cal = Calibration(key.key_id, key.account, body["scheme"], tags, float(body["null_mean"]),
                              float(body["null_rho"]), dict(body.get("fit") or {}), secret)
        except (KeyError, TypeError, ValueError) as err:
            raise DistillError(f"the calibration file is damaged ({err})", where=str(path),
                               fix=_FIX_RECALIBRATE) from None
        out[key.key_id] = cal
    return out

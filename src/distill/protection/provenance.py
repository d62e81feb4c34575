"""Provenance testing without a watermark: is a suspect model derived from a candidate parent?

After Nikolić et al. 2025 ("Model Provenance Testing for Large Language Models"): a model distilled or fine-tuned from a
parent keeps agreeing with the parent's next-token choices more than with unrelated models of the same domain. So
every model gets the same queries and, per query, we measure how often the suspect agrees with it:

* **open** (the suspect's and every other model's weights here, one tokenizer): each query is a passage of text fed
  to every model (teacher forcing); agreement = the share of positions where the suspect's most likely next token is
  the other model's most likely next token.
* **black-box** (any model behind an OpenAI-compatible endpoint, or tokenizers that differ): each query is a prompt
  answered greedily (temperature 0) by every model; agreement = the share of the first `words` whitespace-separated
  words of the suspect's answer that equal the other model's at the same position (missing words count as
  disagreement). Words, not tokens, so models with different tokenizers compare on the same footing.

The test. For each reference r, H0_r: "the suspect agrees with the parent no more than with r". The unit is the query
(dependence inside a text does not inflate the evidence): d_i = agreement_i(parent) − agreement_i(r), and the exact
one-sided sign test gives p_r = P(Binomial(n, 1/2) ≥ #{d_i > 0}) over the n queries with d_i ≠ 0 (exact under H0
whenever, per query, a positive and a negative difference are equally likely; conservative otherwise). The suspect
is called derived only if it beats *every* reference, so the reported p is max_r p_r (an intersection-union test:
no multiplicity correction needed). A 95% bootstrap interval (queries resampled, fixed seed) is given for the mean gap
to the closest reference.

What it does not say: agreement comes from shared *training data* as well as from distillation, so references must
include models trained on the same kind of data (same domain, similar size): a model that only learned the same
corpus then agrees with those references as much as with the parent, and is not flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distill.errors import DistillError
from distill.protection.watermark.stats import binom_log_sf


@dataclass(frozen=True)
class Candidate:
    """One model to query: local weights (`spec`) or an OpenAI-compatible endpoint with a model name."""

    label: str  # how the report names it
    spec: str | None = None  # local model: directory, GGUF or hub id
    endpoint: str | None = None
    model: str | None = None  # the endpoint's model name

    @property
    def local(self) -> bool:
        return self.endpoint is None


def sign_test(diffs: Sequence[float]) -> tuple[float, int, int]:
    """Exact one-sided sign test that the differences are positive: (p, positives, non-zero)."""
    pos = sum(1 for d in diffs if d > 0)
    n = sum(1 for d in diffs if d != 0)
    if n == 0:
        return 1.0, 0, 0
    return math.exp(binom_log_sf(pos, n, 0.5)), pos, n


def bootstrap_ci(diffs: Sequence[float], seed: int = 0, resamples: int = 10_000) -> tuple[float, float]:
    """95% percentile interval of the mean difference, queries resampled with replacement (fixed seed)."""
    d = np.asarray(diffs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def min_queries(alpha: float) -> int:
    """Queries needed before the sign test can reach p ≤ alpha at all (every difference positive: p = 2^-n)."""
    return math.ceil(math.log2(1 / alpha))


def word_agreement(suspect: str, other: str, words: int) -> float:
    """Share of the suspect's first `words` words that equal the other answer's word at the same position."""
    a, b = suspect.split()[:words], other.split()[:words]
    return sum(x == y for x, y in zip(a, b, strict=False)) / words


@torch.inference_mode()
def top1_predictions(model: torch.nn.Module, sequences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """The model's most likely next token at every position of each sequence (teacher forcing)."""
    return [model(input_ids=torch.tensor([list(s)])).logits[0].argmax(-1) for s in sequences]


def open_agreements(suspect: list[torch.Tensor], other: list[torch.Tensor]) -> list[float]:
    """Per sequence: the share of positions where both models predict the same next token."""
    return [float((a == b).float().mean()) for a, b in zip(suspect, other, strict=True)]


@torch.inference_mode()
def greedy_answers(spec: str, prompts: Sequence[str], max_tokens: int) -> list[str]:
    """A local model's greedy answers to chat prompts (its own chat template)."""
    from distill.models.loading import load_model
    from distill.tokens.chat import render_chat

    loaded = load_model(spec)
    tok, out = loaded.tokenizer, []
    for prompt in prompts:
        ids = torch.tensor([render_chat(tok, [{"role": "user", "content": prompt}])])
        gen = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                    do_sample=False, pad_token_id=tok.pad_token_id)
        out.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True))
    return out


def answers(c: Candidate, prompts: Sequence[str], max_tokens: int, api_key: str | None = None) -> list[str]:
    if c.local:
        return greedy_answers(c.spec or "default", prompts, max_tokens)
    from distill.protection.trace import query_suspect

    return query_suspect(c.endpoint or "", c.model or "", prompts, api_key=api_key, max_tokens=max_tokens)


def judge(agreement: dict[str, list[float]], parent: str, alpha: float = 0.01) -> dict[str, Any]:
    """The provenance test on per-query agreements of the suspect with the parent and each reference."""
    n = len(agreement[parent])
    refs = [r for r in agreement if r != parent]
    if not refs:
        raise DistillError("the provenance test needs at least one reference model besides the parent",
                           where="--reference", fix="add unrelated models of the same domain and size with --reference")
    if n < min_queries(alpha):
        raise DistillError(f"{n} queries cannot reach p < {alpha:g} (the best possible p is 2^-{n})",
                           where="--queries", fix=f"use at least {min_queries(alpha)} queries (more for real power)")
    per_ref = {}
    for r in refs:
        d = [a - b for a, b in zip(agreement[parent], agreement[r], strict=True)]
        p, pos, nonzero = sign_test(d)
        per_ref[r] = {"p": p, "parent_wins": pos, "decided": nonzero, "mean_gap": float(np.mean(d))}
    closest = max(refs, key=lambda r: float(np.mean(agreement[r])))
    gaps = [a - b for a, b in zip(agreement[parent], agreement[closest], strict=True)]
    p = max(v["p"] for v in per_ref.values())
    return {"queries": n, "p": p, "alpha": alpha, "derived": p < alpha, "closest_reference": closest,
            "gap_ci95": bootstrap_ci(gaps),
            "agreement": {k: {"mean": float(np.mean(v)), "se": float(np.std(v, ddof=1) / math.sqrt(n)) if n > 1
                              else 0.0} for k, v in agreement.items()},
            "references": per_ref}


def provenance_open(suspect: Candidate, parent: Candidate, references: Sequence[Candidate], data: str,
                    queries: int = 64, seq_len: int = 64, alpha: float = 0.01) -> dict[str, Any]:
    """Open mode: every model local with the suspect's tokenizer, fed the same passages of `data`."""
    from distill.config import DataConfig
    from distill.data.corpus import load_corpus
    from distill.models.loading import load_model, tokenizer_fingerprint

    s = load_model(suspect.spec)
    corpus = load_corpus(DataConfig(path=data, seq_len=seq_len, heldout_fraction=0.2, seed=0), s.tokenizer)
    passages = [ex["input_ids"].tolist() for ex in corpus.heldout[:queries]]
    if len(passages) < queries:
        raise DistillError(f"the data has only {len(passages)} held-out passages of {seq_len} tokens, {queries} asked",
                           where=f"--data {data}", fix="give more text, or fewer --queries / a smaller --seq-len")
    mine = top1_predictions(s.model, passages)
    want = tokenizer_fingerprint(s.tokenizer)
    agreement = {}
    for c in (parent, *references):
        other = load_model(c.spec)
        if tokenizer_fingerprint(other.tokenizer) != want:
            raise DistillError(f"{c.label} has another tokenizer than the suspect, so next tokens cannot be compared "
                               "position by position", where=c.spec, fix="use --mode blackbox (answers compared word "
                               "by word) for models with other tokenizers")
        agreement[c.label] = open_agreements(mine, top1_predictions(other.model, passages))
    report = judge(agreement, parent.label, alpha)
    report.update(mode="open", unit=f"a held-out passage of {seq_len} tokens of {data}",
                  measure="share of positions with the same most likely next token")
    return report


def provenance_blackbox(suspect: Candidate, parent: Candidate, references: Sequence[Candidate],
                        prompts: Sequence[str], max_tokens: int = 48, words: int = 24, alpha: float = 0.01,
                        api_key: str | None = None) -> dict[str, Any]:
    """Black-box mode: greedy answers to the same prompts, compared word by word with the suspect's."""
    mine = answers(suspect, prompts, max_tokens, api_key)
    if not any(a.split() for a in mine):
        raise DistillError("the suspect answered no prompt with any words, so there is nothing to compare",
                           where=suspect.label, fix="check the suspect endpoint or model, or raise --max-tokens")
    agreement = {c.label: [word_agreement(a, b, words) for a, b in zip(mine, answers(c, prompts, max_tokens, api_key),
                                                                       strict=True)]
                 for c in (parent, *references)}
    report = judge(agreement, parent.label, alpha)
    report.update(mode="blackbox", unit="a prompt answered greedily",
                  measure=f"share of the suspect's first {words} words equal to the other answer's at that position")
    return report

"""The derivation test (`distill derivation`), no watermark needed: is a suspect model derived from a candidate parent?

After Nikolić et al. 2025 ("Model Provenance Testing for Large Language Models"): a model distilled or fine-tuned from a
parent keeps agreeing with the parent's next-token choices more than with unrelated models of the same domain. So
every model gets the same queries and, per query, we measure how often the suspect agrees with it:

* **open** (the suspect's and every other model's weights here, one tokenizer): each query is a passage of text fed
  to every model (teacher forcing); agreement = the share of positions where the suspect's most likely next token is
  the other model's most likely next token. Given conversations instead (a `distill generate` folder, e.g. the
  parent's own API answers, or chat JSONL), only the answer positions are compared: the chat template is the
  tokenizer's, not the parent's signal.
* **black-box** (any model behind an OpenAI-compatible endpoint, or tokenizers that differ): each query is a prompt
  answered greedily (temperature 0) by every model; agreement = the share of the first `words` whitespace-separated
  words of the suspect's answer that equal the other model's at the same position (missing words count as
  disagreement). Words, not tokens, so models with different tokenizers compare on the same footing. Endpoints are
  queried through `distill generate`'s client (`distill.generate.client`: rate limits, retries with backoff, a
  resumable store per endpoint, cost accounting); a prompt still unanswered after its tries stops the test (no
  p-value from a partial run) and re-running resumes from the stored answers.

The test. Two statistics (`statistic=`), both per reference r and per query i:

* ``suspect`` (suspect-centred, after Nikolić et al.): H0_r "the suspect agrees with the parent no more than with r",
  d_i = agree_i(suspect, parent) − agree_i(suspect, r);
* ``parent`` (parent-centred, a control-suspect test): H0_r "the suspect agrees with the parent no more than r —
  a model known not to be derived from the parent — does", d_i = agree_i(suspect, parent) − agree_i(r, parent).
  Small students agree with each other through their size and data more than with any large parent, so the
  suspect-centred test misses a distilled small student when the references are small models of the same data;
  the parent-centred one asks instead whether the suspect is closer to the parent than comparable independent
  models are (benchmarks/provenance_statistics.py measures both).

The unit is the query (dependence inside a text does not inflate the evidence), and the exact one-sided sign test
gives p_r = P(Binomial(n, 1/2) ≥ #{d_i > 0}) over the n queries with d_i ≠ 0 (exact under H0 whenever, per query, a
positive and a negative difference are equally likely; conservative otherwise). The suspect is called derived only
if it beats *every* reference, so the reported p is max_r p_r (an intersection-union test: no multiplicity
correction needed). A 95% bootstrap interval (queries resampled, fixed seed) is given for the mean gap to the
closest reference.

What it does not say: agreement comes from shared *training data* as well as from distillation, so references must
include models trained on the same kind of data (same domain, similar size): a model that only learned the same
corpus then agrees with those references as much as with the parent, and is not flagged.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ConfigDict, Field

from distill.errors import DistillError
from distill.generate.settings import RequestLimits
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


class QueryOptions(RequestLimits):
    """How endpoints are queried in black-box mode (`distill generate`'s client and store, with its limits and
    prices, `RequestLimits`); `--timeout`: timeout_s, `--backoff`: backoff_s, `--queries-dir`: out_dir."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    out_dir: str = Field("runs/derivation-queries", description="One resumable answer folder per endpoint model "
                         "under it.")
    concurrency: int = Field(4, ge=1, description="Requests in flight at most, per endpoint.")
    api_key: str | None = Field(None, repr=False, exclude=True, description="The key sent to every endpoint; never "
                                "logged, never stored.")


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


def check_queries(n: int, alpha: float, where: str = "--queries") -> None:
    """Refuse a test that could never reach p < alpha with n queries (saying how many it needs)."""
    if n < min_queries(alpha):
        raise DistillError(f"{n} queries cannot reach p < {alpha:g} (the best possible p is 2^-{n})", where=where,
                           fix=f"use at least {min_queries(alpha)} queries (more for real power: see "
                               "docs/derivation_test.md for how many a distilled suspect needed)")


def word_agreement(suspect: str, other: str, words: int) -> float:
    """Share of the suspect's first `words` words that equal the other answer's word at the same position."""
    a, b = suspect.split()[:words], other.split()[:words]
    return sum(x == y for x, y in zip(a, b, strict=False)) / words


@torch.inference_mode()
def top_predictions(model: torch.nn.Module, sequences: Sequence[Sequence[int]], k: int = 1) -> list[torch.Tensor]:
    """The model's k most likely next tokens ([positions, k], best first) at every position of each sequence."""
    return [model(input_ids=torch.tensor([list(s)])).logits[0].topk(k, -1).indices for s in sequences]


def top1_predictions(model: torch.nn.Module, sequences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """The model's most likely next token at every position of each sequence (teacher forcing)."""
    return [t[:, 0] for t in top_predictions(model, sequences, 1)]


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


def query_folder(root: str | Path, c: Candidate) -> Path:
    """The answer store of one endpoint model under `root` (its name, plus a hash of URL and name)."""
    digest = hashlib.sha256(f"{c.endpoint}\n{c.model}".encode()).hexdigest()[:10]
    return Path(root) / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', c.model or 'model')[:40]}-{digest}"


def endpoint_answers(c: Candidate, prompts: Sequence[str], max_tokens: int,
                     opts: QueryOptions) -> tuple[list[str], dict[str, Any]]:
    """An endpoint's greedy answers through `distill generate`'s client, and what they cost. Any prompt left
    unanswered after its tries raises DistillError (the stored answers are kept: the next run resumes)."""
    from distill.data.formats import RESULTS
    from distill.fileio import read_appended_jsonl
    from distill.generate.client import row_params, run_generation
    from distill.generate.settings import GenerateSettings
    from distill.generate.store import row_key
    from distill.tokens.openai import chat_url

    url = chat_url(c.endpoint or "", where=f"{c.label}'s endpoint")
    msgs = [[{"role": "user", "content": p}] for p in prompts]
    folder = query_folder(opts.out_dir, c)
    limits = opts.model_dump(include=set(RequestLimits.model_fields))
    cfg = GenerateSettings(endpoint=c.endpoint or "", model=c.model or "", out=str(folder), prompts=msgs,
                           concurrency=opts.concurrency, max_tokens=max_tokens, temperature=0.0, top_p=1.0,
                           progress=False, **limits)
    try:
        acct = run_generation(cfg, api_key=opts.api_key)
    except DistillError as e:
        raise DistillError(f"querying {c.label} failed: {e.what}", where=e.where, fix=e.fix, code=e.code) from e
    stored = {r.get("key"): r for r in read_appended_jsonl(folder / RESULTS)}
    rows = [stored.get(row_key(m, row_params(cfg), cfg.model)) for m in msgs]
    missing = sum(r is None for r in rows)
    if missing:
        why = "; ".join(f"{k} (x{v})" for k, v in acct.failure_reasons.items()) or "no answer"
        raise DistillError(f"{c.label} left {missing} of {len(msgs)} prompts unanswered after {opts.max_tries} tries "
                           f"each ({why}); no p-value is computed from a partial set of answers", where=url,
                           fix=f"run the same command again: the {len(msgs) - missing} answers stored in {folder} are "
                               "kept and only the rest are asked again; if the endpoint rate-limits, lower --rpm or "
                               "--concurrency, or raise --max-tries")
    texts = [str((r["choices"][0] if r.get("choices") else {}).get("text") or "") for r in rows if r is not None]
    cost = {k: v for k, v in acct.to_dict().items() if k in ("prompts", "skipped", "succeeded", "requests",
                                                             "retries", "rate_limited", "tokens_in", "tokens_out",
                                                             "cost_usd", "wall_s")}
    return texts, {"folder": str(folder), **cost, "total": acct.store}


def answers(c: Candidate, prompts: Sequence[str], max_tokens: int,
            opts: QueryOptions | None = None) -> tuple[list[str], dict[str, Any] | None]:
    """Greedy answers of a local model or an endpoint; the endpoint's accounting (None for a local model)."""
    if c.local:
        return greedy_answers(c.spec or "default", prompts, max_tokens), None
    return endpoint_answers(c, prompts, max_tokens, opts or QueryOptions())


def identity(c: Candidate, info: Any = None) -> dict[str, Any]:
    """What the report names as the model tested: a local model's content hash (GGUF file or safetensors; from
    `info`, its ModelInfo, when it is already loaded), or the endpoint and model name (an API model has no hash to
    show: the stored answers are the record)."""
    if not c.local:
        return {"endpoint": c.endpoint, "model": c.model}
    if info is None:
        from distill.models.loading import describe_model

        info = describe_model(c.spec)
    return {"spec": c.spec, "name": info.name, "weights_sha256": info.weights_sha256}


def evidence(models: Sequence[Candidate], queries: Any, settings: dict[str, Any],
             infos: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's record of what was compared: each model's identity (`infos`: the ModelInfo of models already
    loaded, by label, so their weights are not hashed twice), and a SHA-256 of the exact queries and settings, so a
    re-run (or the other side's expert) can show it tested the same models on the same queries."""
    from distill import __version__

    blob = json.dumps({"queries": queries, "settings": settings}, sort_keys=True, ensure_ascii=False)
    return {"models": {c.label: identity(c, (infos or {}).get(c.label)) for c in models}, "settings": settings,
            "queries_sha256": hashlib.sha256(blob.encode()).hexdigest(), "distill_version": __version__}


STATISTICS = ("departure", "alternatives", "parent", "suspect")
MEASURED = ("departure", "alternatives")  # statistics measured on the models' own outputs (open mode only)
ALTERNATIVES = 20  # the alternatives statistic compares the parent's this many most likely tokens besides the text's
MIN_REFERENCES = 3  # fewer: inconclusive (docs/derivation_test.md: one reference's null tests gave 5% at 0.01)
MIN_DISTINCT_ANSWERS = 0.5  # black-box: a model with fewer distinct answers per prompt than this is degenerate
MAX_TOP_TOKEN_SHARE = 0.75  # open: a model whose one most frequent prediction fills more positions is degenerate
POWER, MAX_MDE = 0.8, 0.8  # the stated power: 80% to flag a suspect that wins 80% of decided queries vs each ref
COVERAGE_MARGIN = 0.0  # open: the suspect's top-1 accuracy on the queries may exceed the best reference's by this


@dataclass(frozen=True)
class Measured:
    """A statistic measured on the models' own outputs (open mode): per reference, the per-query differences d_i
    (positive: the suspect is nearer the parent there), and one value per model for the model-level test."""

    differences: dict[str, list[float]]  # reference -> d_i per query
    suspect: float  # the suspect's value
    references: dict[str, float]  # reference -> its value


def departure_differences(suspect: Sequence[torch.Tensor], reference: Sequence[torch.Tensor],
                          parent: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> list[float]:
    """The departure statistic's d_i per query: on the positions where the parent's top-1 is not the text's next
    token and where the suspect and the reference miss that token too, the share of them where the suspect picks
    the parent's token minus the share where the reference does (0 when no position qualifies: a tie).

    Each model's fit to the text is conditioned on position by position (both missed it), so what is left is which
    wrong token each picked: the parent's idiosyncratic one, which a distilled student inherits and a model of the
    data has no particular reason to pick (docs/derivation_test.md: why, and where that can still fail)."""
    out = []
    for s, r, par, y in zip(suspect, reference, parent, targets, strict=True):
        both = (par != y) & (s != y) & (r != y)
        if not bool(both.any()):
            out.append(0.0)
            continue
        out.append(float((s[both] == par[both]).float().mean() - (r[both] == par[both]).float().mean()))
    return out


def departure_agreement(model: Sequence[torch.Tensor], parent: Sequence[torch.Tensor],
                        targets: Sequence[torch.Tensor]) -> float:
    """Diagnostic: over every query, the share of the positions where the parent and the model both miss the next
    token at which the model picks the parent's token (0 when there is none)."""
    hit = sum(int(((m == p) & (p != y) & (m != y)).sum()) for m, p, y in zip(model, parent, targets, strict=True))
    n = sum(int(((p != y) & (m != y)).sum()) for m, p, y in zip(model, parent, targets, strict=True))
    return hit / n if n else 0.0


def fit_to_text(predictions: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> float:
    """A model's fit to the queries: top-1 accuracy on the text's next tokens over every compared position."""
    hits = sum(int((p == y).sum()) for p, y in zip(predictions, targets, strict=True))
    return hits / max(1, sum(len(y) for y in targets))


def coverage_reasons(fit: dict[str, float], suspect: str, references: Sequence[str],
                     margin: float = COVERAGE_MARGIN) -> list[str]:
    """Why the references do not cover the queries' domain, if they do not: the suspect fits the query text (top-1
    accuracy) better than the best reference, beyond `margin`. A model that knows a text better agrees more with
    any good model of it, the parent included, and even its wrong guesses are better ones: measured, that alone
    gives p down to 1e-20 for a model that never saw the parent (docs/derivation_test.md)."""
    best = max(references, key=lambda r: fit[r])
    if fit[suspect] <= fit[best] + margin:
        return []
    return [f"the references do not cover the queries' domain: the suspect predicts the query text better (top-1 "
            f"accuracy {fit[suspect]:.3f}) than the best reference ({best}: {fit[best]:.3f}; margin {margin:g}), "
            "so its agreement with the parent may come from knowing this text, not from the parent. Train "
            "references on the suspect's kind of data (and as long) until one fits the queries at least as well, "
            "or query text of a domain they know"]


def kind_reasons(fit: dict[str, float], suspect: str, references: Sequence[str], alpha: float) -> list[str]:
    """The alternatives statistic's extra condition: the references are models of the suspect's kind, judged by
    their fit to the queries (top-1 accuracy). The suspect's fit must lie inside the references' two-sided 1 − alpha
    prediction interval (Student's t with k − 1 degrees of freedom, as `model_level_test`); a suspect that fits the
    text much *worse* than every reference is as out of place as one that fits it better. Measured on the
    development models: with references trained on another corpus, or longer, the suspect ranks the parent's
    alternatives unlike them for that reason alone, in either direction (docs/derivation_test.md)."""
    level = model_level_test(fit[suspect], [fit[r] for r in references])
    if level["p"] is None:
        if abs(fit[suspect] - level["reference_mean"]) <= 1e-9:
            return []
        two_sided = 0.0
    else:
        two_sided = 2 * min(level["p"], 1 - level["p"])
    if two_sided >= alpha:
        return []
    return [f"the references are not of the suspect's kind: its fit to the query text (top-1 accuracy "
            f"{fit[suspect]:.3f}) is outside what theirs ({level['reference_mean']:.3f} ± "
            f"{level['reference_sd']:.3f}) predicts (two-sided p = {two_sided:.2g} < {alpha:g}). The alternatives "
            "statistic compares how models rank the parent's alternatives, which models of other data or other "
            "training lengths do differently whatever their lineage. Give references trained like the suspect (its "
            "kind of data, as long), or use --statistic departure"]


def degenerate_predictions(predictions: dict[str, Sequence[torch.Tensor]]) -> list[str]:
    """Open mode: the models whose single most frequent top-1 prediction fills more than MAX_TOP_TOKEN_SHARE of the
    compared positions (collapsed or untrained: which few tokens they learned decides whom they agree with)."""
    out = []
    for label, preds in predictions.items():
        flat = torch.cat([p.reshape(-1) for p in preds]) if preds else torch.zeros(0, dtype=torch.long)
        if len(flat) == 0:
            continue
        share = float(torch.bincount(flat).max()) / len(flat)
        if share > MAX_TOP_TOKEN_SHARE:
            out.append(f"{label} predicts one same token at {share:.0%} of the compared positions: a collapsed or "
                       "untrained model agrees with another through which few tokens it learned, not through descent. "
                       "Use references that really model the query text")
    return out


def min_detectable_win_rate(n: int, alpha: float, power: float = POWER) -> float:
    """The minimum detectable effect of the sign test over n queries: the smallest share q of decided queries on
    which the suspect must beat a reference for the test to reach p < alpha with probability `power` (1.0 when even
    q = 1 is not enough)."""
    need = next((k for k in range(n + 1) if math.exp(binom_log_sf(k, n, 0.5)) < alpha), None)
    if need is None:
        return 1.0
    lo, hi = 0.5, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if math.exp(binom_log_sf(need, n, mid)) >= power else (mid, hi)
    return hi


def degenerate_answers(texts: dict[str, Sequence[str]], words: int) -> list[str]:
    """Black-box: the models that give the same answer (its compared words) to many prompts. Such a model (collapsed
    to a few fixed replies) agrees with another through which replies it happened to learn, not through descent:
    measured, references of that kind gave 17% false positives at 0.01 in null tests (docs/derivation_test.md)."""
    out = []
    for label, said in texts.items():
        distinct = len({" ".join(a.split()[:words]) for a in said})
        if said and distinct / len(said) < MIN_DISTINCT_ANSWERS:
            out.append(f"{label} gave only {distinct} distinct answers (first {words} words) to {len(said)} prompts: "
                       "a model collapsed to a few fixed replies makes agreement a matter of which replies it learned, "
                       "not of descent (measured: 17% false positives at 0.01 with such references). Use models that "
                       "really answer the prompts, of the suspect's domain")
    return out


ALTERNATIVES_CAUTION = ("the alternatives statistic is sound only when at least one reference was trained on the "
                        "suspect's kind of data: with references of another corpus only, 2.7% (development corpora) "
                        "and 20% (fresh corpora) of null tests were falsely DERIVED at alpha 0.01, which neither the "
                        "coverage nor the kind check caught (docs/derivation_test.md). This verdict rests on your "
                        "statement (--vouch-references) that one was")
UNVOUCHED_ALTERNATIVES = ("the alternatives statistic cannot tell by itself whether the references were trained on "
                          "the suspect's kind of data, and it is not sound when none was (measured: 20% false "
                          "DERIVED at alpha 0.01 with references of another corpus only, docs/derivation_test.md). "
                          "Give --vouch-references if you can show that at least one reference was trained on the "
                          "suspect's kind of data, as long (the report records that you did), or use the default "
                          "departure statistic")
BLACKBOX_COVERAGE = ("black-box mode cannot check that the references cover the prompts' domain (answers carry no "
                     "fit to a text): a suspect that merely knows that domain better than the references agrees more "
                     "with any good parent. The verdict is only as sound as the references: models of the suspect's "
                     "kind trained on the prompts' domain; where you have local copies, run --mode open on text of "
                     "that domain, which checks it")


def statistic_differences(statistic: str, parent: str, agreement: dict[str, list[float]],
                          parent_agreement: dict[str, list[float]] | None,
                          measured: dict[str, Measured] | None) -> dict[str, list[float]] | None:
    """Per reference, the per-query differences d_i of one statistic (None when its inputs were not given):
    departure, alternatives: measured on the models (`measured`); parent: agree(suspect, parent) − agree(r,
    parent); suspect: agree(suspect, parent) − agree(suspect, r)."""
    refs = [r for r in agreement if r != parent]
    if statistic in MEASURED:
        m = (measured or {}).get(statistic)
        return None if m is None else {r: list(m.differences[r]) for r in refs}
    other = {"suspect": agreement, "parent": parent_agreement}[statistic]
    if other is None:
        return None
    return {r: [a - b for a, b in zip(agreement[parent], other[r], strict=True)] for r in refs}


def model_level_test(suspect: float, references: Sequence[float]) -> dict[str, Any]:
    """The model-level test: is the suspect's value of the statistic (one number per model, computed the same way
    for every model) outside what models of the references' kind produce? The references are a sample of models
    not derived from the parent; under H0 the suspect is one more draw from their population, and with the
    population normal, t = (x_s − mean_r) / (sd_r · √(1 + 1/k)) follows Student's t with k − 1 degrees of freedom
    (the prediction interval of a new draw), so p = P(T_{k−1} ≥ t) is exact for any number k ≥ 2 of references.

    The query-level sign test alone cannot see this source of chance: two seeds of one recipe differ, and with
    enough queries any difference between two models becomes 'significant' (measured: 2.1% false DERIVED at 0.01
    when one reference set mixed recipes; docs/derivation_test.md). Returns p (None when the references' spread is
    0: it cannot be estimated), t, the references' mean and standard deviation and the degrees of freedom."""
    from scipy.special import stdtr  # Student's t cdf (scipy.stats takes seconds to import)

    k = len(references)
    mean = float(np.mean(references))
    sd = float(np.std(references, ddof=1)) if k > 1 else 0.0
    if sd <= 1e-9:  # equal up to rounding
        return {"p": None, "t": None, "reference_mean": mean, "reference_sd": sd, "df": k - 1}
    t = (suspect - mean) / (sd * math.sqrt(1 + 1 / k))
    return {"p": float(stdtr(k - 1, -t)), "t": t, "reference_mean": mean, "reference_sd": sd, "df": k - 1}


def model_values(statistic: str, parent: str, agreement: dict[str, list[float]],
                 parent_agreement: dict[str, list[float]] | None,
                 measured: dict[str, Measured] | None) -> tuple[float, dict[str, float]] | None:
    """The one number per model the model-level test compares, as (the suspect's, {reference: its}): a measured
    statistic's own values (departure agreement; alternatives agreement), otherwise the mean agreement with the
    parent (the suspect's, each reference's). None when the inputs were not given."""
    refs = [r for r in agreement if r != parent]
    if statistic in MEASURED:
        m = (measured or {}).get(statistic)
        return None if m is None else (m.suspect, {r: m.references[r] for r in refs})
    if parent_agreement is None:
        return None
    return float(np.mean(agreement[parent])), {r: float(np.mean(parent_agreement[r])) for r in refs}


def verdict_of(p: float, alpha: float, inconclusive: Sequence[str]) -> str:
    """'inconclusive' when any reason says the test cannot conclude, else 'derived' when p < alpha, else
    'not_derived'."""
    return "inconclusive" if inconclusive else ("derived" if p < alpha else "not_derived")


def judge(agreement: dict[str, list[float]], parent: str, alpha: float = 0.01,
          parent_agreement: dict[str, list[float]] | None = None, statistic: str = "suspect",
          measured: dict[str, Measured] | None = None, inconclusive: Sequence[str] = ()) -> dict[str, Any]:
    """The derivation test on per-query agreements of the suspect with the parent and each reference
    (`agreement`), each reference's agreement with the parent (`parent_agreement`, for the parent-centred
    statistic), and the statistics measured on the models' own outputs (`measured`, by name: departure,
    alternatives; open mode).

    Two tests must both reject: the query-level one (per reference, the sign test over queries; p_query = the max
    over references) and the model-level one (`model_level_test` on one number per model, which accounts for how
    much models of one recipe differ); p = max(p_query, p_model). The verdict uses `statistic`; the others'
    query-level p are reported when computable. The verdict is 'inconclusive' (never 'derived') with fewer than
    MIN_REFERENCES references, references whose values do not vary, a query set whose minimum detectable effect
    exceeds MAX_MDE, or any reason given in `inconclusive` (references that do not cover the domain, degenerate
    ones)."""
    if statistic not in STATISTICS:
        raise DistillError(f"unknown derivation statistic {statistic!r}", where="--statistic",
                           fix="use 'departure' (default), 'alternatives', 'parent' (parent-centred) or 'suspect' "
                               "(suspect-centred)")
    n = len(agreement[parent])
    refs = [r for r in agreement if r != parent]
    if not refs:
        raise DistillError("the derivation test needs at least one reference model besides the parent",
                           where="--reference", fix="add unrelated models of the same domain and size with --reference")
    if statistic_differences(statistic, parent, agreement, parent_agreement, measured) is None:
        what = (f"the {statistic} measurements of every model" if statistic in MEASURED
                else "every reference's agreement with the parent")
        raise DistillError(f"the {statistic} statistic needs {what}", where=f"statistic={statistic}",
                           fix="pass " + ("measured" if statistic in MEASURED else "parent_agreement")
                           + " for each reference")
    check_queries(n, alpha)
    p_of, per_ref, diffs = {}, {}, {}
    for stat in STATISTICS:
        d_of = statistic_differences(stat, parent, agreement, parent_agreement, measured)
        if d_of is None:
            continue
        rows = {}
        for r, d in d_of.items():
            p, pos, nonzero = sign_test(d)
            rows[r] = {"p": p, "parent_wins": pos, "decided": nonzero, "mean_gap": float(np.mean(d))}
        p_of[stat] = max(v["p"] for v in rows.values())
        if stat == statistic:
            per_ref, diffs = rows, d_of
    closest = min(refs, key=lambda r: per_ref[r]["mean_gap"])
    values = model_values(statistic, parent, agreement, parent_agreement, measured)
    if values is None:  # the suspect-centred statistic's model level compares every reference's own agreement
        raise DistillError(f"the model-level test of the {statistic} statistic needs every reference's agreement "
                           "with the parent", where=f"statistic={statistic}", fix="pass parent_agreement")
    level = model_level_test(values[0], [values[1][r] for r in refs])
    level.update(suspect=values[0], references=values[1])
    p = max(p_of[statistic], level["p"] if level["p"] is not None else 1.0)
    mde = min_detectable_win_rate(n, alpha)
    reasons = list(inconclusive)
    if len(refs) < MIN_REFERENCES:
        reasons.append(f"only {len(refs)} reference model(s): with trained references, a parent that is merely the "
                       "nearest of several models of one recipe looks derived (measured: 5% false positives at 0.01 "
                       f"with one reference over 300 queries; 0 of 351 with 3). Give at least {MIN_REFERENCES}")
    if mde > MAX_MDE:
        reasons.append(f"{n} queries are too few for the stated power: the suspect would have to beat every "
                       f"reference on {mde:.0%} of decided queries to be flagged at {alpha:g} with {POWER:.0%} "
                       f"probability (the test is built for {MAX_MDE:.0%}). Use more --queries")
    if level["p"] is None and len(refs) > 1:
        reasons.append(f"the references' values of the statistic do not vary ({level['reference_mean']:.4f} each), "
                       "so how much models not derived from the parent differ cannot be estimated. Use references "
                       "trained independently (other seeds, data orders or recipes of the suspect's kind)")
    verdict = verdict_of(p, alpha, reasons)
    return {"queries": n, "p": p, "p_query": p_of[statistic], "p_model": level["p"], "model_level": level,
            "alpha": alpha, "verdict": verdict, "derived": verdict == "derived",
            "inconclusive": reasons, "statistic": statistic, "cautions": [],
            "min_detectable_win_rate": mde, "power": POWER,
            "p_by_statistic": p_of, "closest_reference": closest, "gap_ci95": bootstrap_ci(diffs[closest]),
            **({"reference_agreement_with_parent": {r: float(np.mean(v)) for r, v in parent_agreement.items()}}
               if parent_agreement is not None else {}),
            "agreement": {k: {"mean": float(np.mean(v)), "se": float(np.std(v, ddof=1) / math.sqrt(n)) if n > 1
                              else 0.0} for k, v in agreement.items()},
            "references": per_ref}


@dataclass(frozen=True)
class OpenQuery:
    """One open-mode query: token ids fed to every model, and the positions whose next-token choices are compared
    (every position with a next token for a text passage; the answer tokens only for a conversation, whose
    template is not a signal)."""

    ids: list[int]
    compared: list[bool] | None = None  # per position: is its next-token prediction compared (None: all but the last)

    def mask(self) -> torch.Tensor:
        """The compared positions as a boolean tensor over the ids."""
        if self.compared is None:
            return torch.arange(len(self.ids)) < len(self.ids) - 1
        return torch.tensor(self.compared, dtype=torch.bool)

    def select(self, predictions: torch.Tensor) -> torch.Tensor:
        return predictions[self.mask()[: len(predictions)]]

    def targets(self) -> torch.Tensor:
        """The text's actual next token at each compared position."""
        return torch.tensor(self.ids[1:] + [-1])[self.mask()]


def open_queries(tokenizer, data: str, queries: int, seq_len: int) -> list[OpenQuery]:
    """The open mode's queries from `data` (as data.path in a training config). Text: the first `queries` held-out
    passages of `seq_len` tokens (a fixed 20% split), compared at every position that has a next token.
    Conversations (a `distill generate` folder, e.g. the parent's own API answers, or chat JSONL): the first
    `queries` of them (held-out ones first), cut at `seq_len` tokens and compared on the answer tokens only."""
    from distill.config import DataConfig
    from distill.data.corpus import load_corpus

    corpus = load_corpus(DataConfig(path=data, seq_len=seq_len, heldout_fraction=0.2, seed=0), tokenizer)
    chat = corpus.conversations
    pool = corpus.heldout + corpus.train if chat else corpus.heldout
    out = [OpenQuery(ex["input_ids"].tolist(), ex["loss_mask"].tolist() if chat else None) for ex in pool
           if not chat or bool(ex["loss_mask"].any())][:queries]
    if len(out) < queries:
        what = "conversations with an answer" if chat else f"held-out passages of {seq_len} tokens"
        raise DistillError(f"the data has only {len(out)} {what}, {queries} asked", where=f"--data {data}",
                           fix="give more data, or fewer --queries" + (
                               ", or a larger --seq-len (a conversation is cut at --seq-len tokens, and one whose "
                               "answer starts after that has nothing to compare)" if chat else " / a smaller --seq-len"))
    return out


def open_passages(tokenizer, data: str, queries: int, seq_len: int) -> list[list[int]]:
    """The token ids of the open mode's queries (see `open_queries`)."""
    return [q.ids for q in open_queries(tokenizer, data, queries, seq_len)]


def compared_predictions(model: torch.nn.Module, queries: Sequence[OpenQuery]) -> list[torch.Tensor]:
    """The model's most likely next token at each compared position of each query."""
    return [q.select(t) for q, t in zip(queries, top1_predictions(model, [q.ids for q in queries]), strict=True)]


@torch.inference_mode()
def open_outputs(model: torch.nn.Module, queries: Sequence[OpenQuery], at: Sequence[torch.Tensor] | None = None,
                 k: int = ALTERNATIVES) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """One model's outputs at the compared positions of each query: (top-1 next token [P], log-probabilities
    [P, k] of the tokens `at` [P, k], those tokens [P, k]). Without `at` (the parent), the tokens are the model's
    own k most likely next tokens other than the text's: its alternatives to the text."""
    top1, lps, ids = [], [], []
    for i, q in enumerate(queries):
        lp = torch.log_softmax(q.select(model(input_ids=torch.tensor([q.ids])).logits[0]).float(), -1)  # [P, V]
        top1.append(lp.argmax(-1))
        if at is None:
            top = lp.topk(k + 1, -1).indices  # [P, k + 1]: the text's token moved last wherever it is among them
            first = torch.argsort((top == q.targets()[:, None]).int(), dim=-1, stable=True)[:, :k]
            ids.append(top.gather(-1, first))
        else:
            ids.append(at[i])
        lps.append(lp.gather(-1, ids[-1]))
    return top1, lps, ids


def mid_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks along the last dimension, 0 = smallest, ties sharing their mean rank: x [..., k] -> [..., k]."""
    less = (x.unsqueeze(-1) > x.unsqueeze(-2)).sum(-1)
    ties = (x.unsqueeze(-1) == x.unsqueeze(-2)).sum(-1)
    return less + (ties - 1) / 2.0


def alternatives_agreement(model: Sequence[torch.Tensor], parent: Sequence[torch.Tensor]) -> list[float]:
    """The alternatives statistic per query: the mean over its compared positions of Spearman's rank correlation
    between the parent's and the model's log-probabilities of the parent's ALTERNATIVES most likely tokens other
    than the text's (mid-ranks for ties; 0 at a position where either model ranks them all equal). 1: the model
    orders the parent's alternatives as the parent does.

    model, parent: per query, log-probabilities [P, k] of the parent's alternatives (`open_outputs`). None of them
    is the text's token, so how well a model predicts the text is left out; and ranks leave out how sharp each
    model is (a model trained less is flatter, and a comparison of probabilities, a KL, would count that as
    nearness: measured, docs/derivation_test.md). What is left is which of the parent's alternatives each model
    prefers: a distilled student learned that order from the parent's distribution, a model of the data only as
    far as the data says it."""
    out = []
    for m, p in zip(model, parent, strict=True):
        if not len(p):
            out.append(0.0)
            continue
        rm, rp = mid_ranks(m.float()), mid_ranks(p.float())
        rm, rp = rm - rm.mean(-1, keepdim=True), rp - rp.mean(-1, keepdim=True)
        norm = rm.norm(dim=-1) * rp.norm(dim=-1)
        rho = torch.where(norm > 0, (rm * rp).sum(-1) / norm.clamp_min(1e-12), torch.zeros_like(norm))
        out.append(float(rho.mean()))
    return out


def open_statistics(preds: dict[str, list[torch.Tensor]], targets: Sequence[torch.Tensor], suspect: str,
                    parent: str, references: Sequence[str],
                    alternatives: dict[str, list[torch.Tensor]] | None = None, alpha: float = 0.01) -> dict[str, Any]:
    """Everything the open-mode test needs from each model's compared top-1 predictions (`preds`, by label), the
    text's next tokens and, for the alternatives statistic, each model's log-probabilities of the parent's
    alternatives (`alternatives`, by label; `open_outputs`): the suspect's agreement with every model, each
    reference's with the parent, the measured statistics (`Measured`, by name), each model's fit to the text,
    departure agreement and alternatives agreement, and the reasons (coverage, degenerate references or parent)
    that make the verdict inconclusive, with those that hold for one statistic only (`reasons_by_statistic`: the
    alternatives statistic's `kind_reasons`)."""
    agreement = {c: open_agreements(preds[suspect], preds[c]) for c in (parent, *references)}
    with_parent = {r: open_agreements(preds[r], preds[parent]) for r in references}
    fit = {label: fit_to_text(p, targets) for label, p in preds.items()}
    copied = {c: departure_agreement(preds[c], preds[parent], targets) for c in (suspect, *references)}
    measured = {"departure": Measured(
        {r: departure_differences(preds[suspect], preds[r], preds[parent], targets) for r in references},
        copied[suspect], {r: copied[r] for r in references})}
    ordered: dict[str, float] = {}
    if alternatives is not None:
        per_query = {c: alternatives_agreement(alternatives[c], alternatives[parent]) for c in (suspect, *references)}
        ordered = {c: float(np.mean(v)) for c, v in per_query.items()}
        measured["alternatives"] = Measured(
            {r: [a - b for a, b in zip(per_query[suspect], per_query[r], strict=True)] for r in references},
            ordered[suspect], {r: ordered[r] for r in references})
    reasons = coverage_reasons(fit, suspect, references) + degenerate_predictions(
        {c: preds[c] for c in (parent, *references)})
    return {"agreement": agreement, "with_parent": with_parent, "measured": measured, "fit": fit,
            "departure_agreement": copied, "alternatives_agreement": ordered, "reasons": reasons,
            "reasons_by_statistic": {"alternatives": kind_reasons(fit, suspect, references, alpha)},
            "cautions": degenerate_predictions({suspect: preds[suspect]})}


def derivation_open(suspect: Candidate, parent: Candidate, references: Sequence[Candidate], data: str,
                    queries: int = 64, seq_len: int = 64, alpha: float = 0.01,
                    statistic: str = "departure", vouched: bool = False) -> dict[str, Any]:
    """Open mode: every model local with the suspect's tokenizer, fed the same passages of `data`. `vouched`: the
    user states that at least one reference was trained on the suspect's kind of data; without it the
    alternatives statistic is inconclusive whatever its p (UNVOUCHED_ALTERNATIVES)."""
    from distill.models.loading import load_model, load_tokenizer, tokenizer_fingerprint

    check_queries(queries, alpha)
    tok = load_tokenizer(suspect.spec)
    asked = open_queries(tok, data, queries, seq_len)
    want = tokenizer_fingerprint(tok)
    preds, alts, infos, at = {}, {}, {}, None
    for c in (parent, suspect, *references):  # the parent first: its alternatives are where the others are read
        loaded = load_model(c.spec)
        infos[c.label] = loaded.info
        if tokenizer_fingerprint(loaded.tokenizer) != want:
            raise DistillError(f"{c.label} has another tokenizer than the suspect, so next tokens cannot be compared "
                               "position by position", where=c.spec, fix="use --mode blackbox (answers compared word "
                               "by word) for models with other tokenizers")
        preds[c.label], alts[c.label], ids = open_outputs(loaded.model, asked, at)
        at = ids if at is None else at
        del loaded
    st = open_statistics(preds, [q.targets() for q in asked], suspect.label, parent.label,
                         [c.label for c in references], alts, alpha)
    alternatives = statistic == "alternatives"
    unvouched = [UNVOUCHED_ALTERNATIVES] if alternatives and not vouched else []
    report = judge(st["agreement"], parent.label, alpha, st["with_parent"], statistic, st["measured"],
                   st["reasons"] + st["reasons_by_statistic"].get(statistic, []) + unvouched)
    report["cautions"] += st["cautions"] + ([ALTERNATIVES_CAUTION] if alternatives and vouched else [])
    chat = asked[0].compared is not None
    report.update(mode="open", fit_top1={k: round(v, 4) for k, v in st["fit"].items()},
                  departure_agreement={k: round(v, 4) for k, v in st["departure_agreement"].items()},
                  alternatives_agreement={k: round(v, 4) for k, v in st["alternatives_agreement"].items()},
                  unit=(f"a conversation of {data} (answer tokens only, at most {seq_len} tokens)" if chat
                        else f"a held-out passage of {seq_len} tokens of {data}"),
                  measure="share of " + ("answer " if chat else "") + "positions with the same most likely next token",
                  evidence=evidence([suspect, parent, *references], [[q.ids, q.compared] for q in asked],
                                    {"mode": "open", "data": data, "queries": queries, "seq_len": seq_len,
                                     "alpha": alpha, "statistic": statistic,
                                     **({"references_vouched_for": vouched} if alternatives else {})}, infos))
    return report


def derivation_blackbox(suspect: Candidate, parent: Candidate, references: Sequence[Candidate],
                        prompts: Sequence[str], max_tokens: int = 48, words: int = 24, alpha: float = 0.01,
                        opts: QueryOptions | None = None, statistic: str = "parent") -> dict[str, Any]:
    """Black-box mode: greedy answers to the same prompts, compared word by word with the suspect's. There is no
    text to measure the models' fit against, so neither the departure statistic nor the coverage check is
    available: the report says so (a standing caution), and degenerate references make it inconclusive."""
    if statistic == "departure":
        raise DistillError("the departure statistic needs the text's next tokens, which black-box answers do not "
                           "have", where="--statistic departure", fix="use --mode open (local weights), or "
                           "--statistic parent in black-box mode")
    check_queries(len(prompts), alpha, "--prompts / --queries")
    mine, spent = answers(suspect, prompts, max_tokens, opts)
    costs = {suspect.label: spent}
    if not any(a.split() for a in mine):
        raise DistillError("the suspect answered no prompt with any words, so there is nothing to compare",
                           where=suspect.label, fix="check the suspect endpoint or model, or raise --max-tokens")
    agreement, texts = {}, {}
    for c in (parent, *references):
        theirs, costs[c.label] = answers(c, prompts, max_tokens, opts)
        if not any(a.split() for a in theirs):
            raise DistillError(f"{c.label} answered no prompt with any words, so it cannot be compared",
                               where=c.label, fix="check that model or endpoint, or raise --max-tokens")
        texts[c.label] = theirs
        agreement[c.label] = [word_agreement(a, b, words) for a, b in zip(mine, theirs, strict=True)]
    with_parent = {c.label: [word_agreement(a, b, words) for a, b in zip(texts[c.label], texts[parent.label],
                                                                          strict=True)] for c in references}
    if not any(any(v) for v in agreement.values()):
        raise DistillError(f"the suspect's answers share no word at the same position with any other model's in the "
                           f"first {words} words of {len(prompts)} prompts: the models cannot be compared (another "
                           "language or domain?)", where="--prompts",
                           fix="use prompts of the suspect's domain and language, or more --words / --max-tokens")
    said = {suspect.label: mine, **texts}
    report = judge(agreement, parent.label, alpha, with_parent, statistic,
                   inconclusive=degenerate_answers({c.label: texts[c.label] for c in (parent, *references)}, words))
    report["cautions"] += degenerate_answers({suspect.label: mine}, words) + [BLACKBOX_COVERAGE]
    report.update(mode="blackbox", unit="a prompt answered greedily",
                  measure=f"share of the suspect's first {words} words equal to the other answer's at that position",
                  queried={k: v for k, v in costs.items() if v is not None},
                  evidence=evidence([suspect, parent, *references], list(prompts),
                                    {"mode": "blackbox", "max_tokens": max_tokens, "words": words, "alpha": alpha,
                                     "statistic": statistic}))
    report["evidence"]["answers_sha256"] = {label: hashlib.sha256("\n\x00".join(t).encode()).hexdigest()
                                            for label, t in said.items()}
    return report

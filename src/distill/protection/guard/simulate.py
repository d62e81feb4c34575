"""A seeded traffic simulator: benign accounts of four kinds and seven kinds of distillation campaign.

Each event is (key name, arrival time, request, response, label); `label` is "benign" or the campaign's kind, and
`kind` names the benign account's kind too. The prompts are made of a fixed synthetic language (stop words, a
Zipf-distributed general vocabulary, a universe of topic words), so their words behave like text: people reuse
common words and come back to their topics, campaigns sweep the topic universe.

Benign accounts:
  chat       people in bursty sessions about a few favourite topics, with follow-ups; some students ask for
             step-by-step answers a quarter of the time; rare log-probabilities
  developer  an integration under test: a handful of test prompts repeated in scripted bursts, log-probabilities
             and tiny answers; some run one evaluation of 50-150 unique prompts at max_tokens 1 with top_logprobs
  tutorial   a group of keys that copied one tutorial's prompt template, each used by a person (shared frame)
  app        a product wrapping its end users' messages in one fixed template, all day long, Poisson arrivals

Campaigns (answers long or short - max_tokens 16-32 - drawn per instance):
  templated    one key, one fixed template over a topic sweep, scripted pacing
  paraphrased  one key, each prompt a fresh paraphrase (synonyms, clause order) over a topic sweep, human-like pacing
  cot          one key, paraphrased prompts that elicit chain of thought, log-probabilities often
  lp_harvest   one key, a new text every time, max_tokens 1 and top_logprobs up to 20, sent in bursts as fast as
               the client can (one-token answers: the signal sparse KD needs)
  distributed  20-80 keys at a low rate each, one paraphrase family, one topic plan split between them
  mixed        a real chat user who also harvests: half their requests are paraphrased sweep prompts
  slow         one key, templated, about two requests an hour

`profile` "train" and "heldout" differ in their settings, not only in the seed (pacing, key counts, paraphrase
and CoT phrasings, answer regimes, the benign mix), so a scorer fitted on one is judged on traffic it never saw.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import Any

CAMPAIGNS = ("templated", "paraphrased", "cot", "lp_harvest", "distributed", "mixed", "slow")
BENIGN_KINDS = ("chat", "developer", "tutorial", "app")
T0 = 1_700_000_000.0

_SYL = ["ka", "lo", "mi", "ren", "tor", "vel", "sa", "qui", "dra", "mon", "pel", "zu", "ther", "gan", "bri", "os",
        "fen", "lu", "cor", "nim", "ba", "te", "rix", "ul", "sen", "da", "po", "lim", "ar", "ves"]
_STOP = ("the a of and to in is it that for on with as this was be are by or at from what how can you i my me "
         "do does why it's about your there if so not but have has will would could should which when").split()
_FOLLOW = ["can you make it shorter", "and what about the second part", "thanks, that helps", "why is that",
           "can you give an example", "i don't get it", "ok and then", "what do you mean", "say that again simpler",
           "is that always true", "more detail please", "which one is better"]
_TEMPLATES = ["Question {i}: Provide a detailed explanation of {t}. Answer step by step and explain your reasoning.",
              "Topic: {t}. Task: write a comprehensive expert answer covering definitions, examples and caveats.",
              "You are an expert tutor. Explain {t} thoroughly. Think step by step before the final answer.",
              "Generate a high quality textbook section about {t} with worked examples.",
              "Write an encyclopedia entry on {t}, with history, key concepts, applications and open problems."]
# paraphrase slots: (train choices, heldout choices); a prompt draws one phrase per slot
_PARA = {
    "verb": (["Provide", "Give", "Write", "Produce", "Compose"], ["Draft", "Prepare", "Offer", "Put together", "Create"]),
    "adj": (["a detailed", "a thorough", "an in-depth", "a comprehensive"],
            ["an extensive", "a careful", "a complete", "a rigorous", "a full"]),
    "noun": (["explanation", "overview", "account", "description"], ["treatment", "discussion", "analysis",
                                                                     "exposition", "primer"]),
    "prep": (["of", "about", "on"], ["regarding", "covering", "concerning"]),
    "tail": (["with examples", "covering the key concepts", "including common pitfalls", "for an expert reader"],
             ["with worked examples", "touching on history and applications", "noting caveats and edge cases",
              "at graduate level", "with references to related ideas"]),
}
_COT = (["Think step by step.", "Explain your reasoning.", "Show your work.", "Let's think step by step.",
         "Reason through it carefully before answering."],
        ["Walk me through each step of the reasoning.", "Lay out your reasoning first, then answer.",
         "Go one step at a time and justify each step.", "Think it through before giving the final answer.",
         "Spell out the intermediate steps."])
_BENIGN_COT = ["step by step", "explain your reasoning", "show your work"]
_APP_TEMPLATES = ["Summarize this customer message in one sentence for the support queue: {x}",
                  "Translate the following user review into French, keep the tone: {x}",
                  "Classify the sentiment of this comment as positive, negative or neutral: {x}"]
_TUTORIAL = ["You are a friendly cooking assistant. Keep answers short and practical. User question: {x}",
             "Act as a travel planner for budget trips. Answer in bullet points. Traveller asks: {x}"]


@dataclass
class Event:
    key: str
    ts: float
    request: dict[str, Any]
    response: dict[str, Any]
    label: str  # "benign" or a campaign kind
    kind: str = ""  # the benign account's kind, or the campaign kind

    def row(self) -> dict[str, Any]:
        """The trace row `distill guard simulate` writes and `distill guard replay` sends."""
        return {"key": self.key, "ts": round(self.ts, 3), "label": self.label, "kind": self.kind or self.label,
                "request": self.request, "completion_tokens": self.response["usage"]["completion_tokens"]}


@dataclass
class Settings:
    """What differs between the train and the heldout profiles."""

    para: int  # which paraphrase/CoT choices (0: train, 1: heldout)
    templated_gap: tuple[float, float]  # seconds between requests, and relative jitter
    paraphrased_gap: float  # mean of exponential gaps (human-like pacing)
    distributed_keys: tuple[int, int]
    distributed_per_key: tuple[int, int]
    harvest_top: tuple[int, ...]
    harvest_bursts: tuple[int, int]  # requests per burst
    mixed_share: float
    short_share: float  # campaigns with short answers
    benign_mix: dict[str, float] = field(default_factory=dict)
    tutorial_keys: int = 10
    apps: int = 2


PROFILES = {
    "train": Settings(0, (300.0, 0.05), 240.0, (20, 30), (30, 45), (20,), (150, 400), 0.6, 0.4,
                      {"chat": 0.8, "developer": 0.2}, 10, 2),
    "heldout": Settings(1, (150.0, 0.4), 400.0, (55, 80), (25, 40), (5, 10, 20), (80, 600), 0.45, 0.5,
                        {"chat": 0.7, "developer": 0.3}, 16, 3),
}


class Language:
    """A fixed synthetic language: stop words, a Zipf general vocabulary, a topic universe."""

    def __init__(self, seed: int = 12345, general: int = 3000, topics: int = 6000):
        rng = random.Random(seed)
        words: set[str] = set()
        while len(words) < general + topics:
            words.add("".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4))))
        ordered = sorted(words)
        rng.shuffle(ordered)
        self.general, self.topics = ordered[:general], ordered[general:]
        self.cum = []
        acc = 0.0
        for r in range(general):
            acc += 1.0 / (r + 3)
            self.cum.append(acc)

    def word(self, rng: random.Random) -> str:
        return self.general[min(len(self.general) - 1, bisect.bisect(self.cum, rng.random() * self.cum[-1]))]

    def sentence(self, rng: random.Random, n: int, topics: list[str] = (), topic_p: float = 0.12) -> str:
        out = []
        for _ in range(n):
            u = rng.random()
            if topics and u < topic_p:
                out.append(rng.choice(topics))
            elif u < 0.5:
                out.append(rng.choice(_STOP))
            else:
                out.append(self.word(rng))
        if topics and not any(w in topics for w in out):
            out.insert(rng.randrange(len(out) + 1), rng.choice(topics))
        return " ".join(out)


_LANG: Language | None = None


def language() -> Language:
    global _LANG
    if _LANG is None:
        _LANG = Language()
    return _LANG


def _event(key: str, ts: float, prompt: str, out_tokens: float, label: str, kind: str, *, top_logprobs: int = 0,
           max_tokens: int | None = None) -> Event:
    req: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    if top_logprobs:
        req["logprobs"] = True
        req["top_logprobs"] = top_logprobs
    if max_tokens is not None:
        req["max_tokens"] = max_tokens
        out_tokens = min(out_tokens, max_tokens)
    tin = len(prompt.split())
    resp = {"choices": [{"message": {"role": "assistant", "content": ""}}],
            "usage": {"prompt_tokens": int(tin * 1.3) + 1, "completion_tokens": max(1, int(out_tokens))}}
    return Event(key, ts, req, resp, label, kind)


def _sessions(rng: random.Random, t0: float, days: float, per_day: tuple[float, float], size: float,
              gap: float = 60.0):
    """Arrival times of a person: sessions at random times, requests a reading time apart."""
    t = t0 + rng.uniform(0, 3600 * 8)
    rate = rng.uniform(*per_day)
    mean_size = rng.uniform(2, size)
    while t < t0 + days * 86400:
        n = max(1, int(rng.expovariate(1 / mean_size)))
        for j in range(n):
            yield t, j
            t += 5 + rng.expovariate(1 / gap)
        t += rng.expovariate(rate / 86400)


def _chat_prompt(rng: random.Random, lang: Language, topic: str, follow: bool, fav: list[str]) -> str:
    if follow and rng.random() < 0.35:
        return rng.choice(_FOLLOW) + (" " + topic if rng.random() < 0.3 else "")
    return lang.sentence(rng, rng.randint(4, 18), [topic] + ([rng.choice(fav)] if rng.random() < 0.2 else []))


def _chat(rng: random.Random, key: str, lang: Language, t0: float, days: float, label: str = "benign",
          kind: str = "chat", per_day: tuple[float, float] = (1, 5)) -> list[Event]:
    fav = rng.sample(lang.topics, rng.randint(2, 6))
    cot_rate = 0.25 if rng.random() < 0.2 else 0.02
    lp_rate = 0.01
    events, topic = [], fav[0]
    for t, j in _sessions(rng, t0, days, per_day, 12):
        if j == 0:
            topic = rng.choice(fav) if rng.random() < 0.8 else rng.choice(lang.topics)
        prompt = _chat_prompt(rng, lang, topic, j > 0, fav)
        if rng.random() < cot_rate:
            prompt += " " + rng.choice(_BENIGN_COT)
        lp = rng.choice((1, 5)) if rng.random() < lp_rate else 0
        events.append(_event(key, t, prompt, rng.lognormvariate(4.6, 0.9), label, kind, top_logprobs=lp,
                             max_tokens=rng.choice((None, None, 256, 512))))
    return events


def _developer(rng: random.Random, key: str, lang: Language, t0: float, days: float) -> list[Event]:
    tests = [lang.sentence(rng, rng.randint(3, 12)) for _ in range(rng.randint(3, 15))]
    top, max_tok = rng.choice((1, 5, 10, 20)), rng.choice((1, 5, 20, 50))
    events: list[Event] = []
    t = t0 + rng.uniform(0, 3600 * 8)
    while t < t0 + days * 86400:
        for _ in range(rng.randint(3, 30)):  # one run of the test script
            events.append(_event(key, t, rng.choice(tests), max_tok, "benign", "developer",
                                 top_logprobs=top if rng.random() < 0.6 else 0, max_tokens=max_tok))
            t += rng.uniform(0.2, 2.0)
        t += rng.expovariate(rng.uniform(2, 8) / 86400)
    if rng.random() < 0.3:  # one evaluation over a small labelled set: unique prompts, one token, top log-probs
        t = t0 + rng.uniform(0, days * 86400 * 0.8)
        for _ in range(rng.randint(50, 150)):
            events.append(_event(key, t, lang.sentence(rng, rng.randint(8, 30)), 1, "benign", "developer",
                                 top_logprobs=rng.choice((5, 10, 20)), max_tokens=1))
            t += rng.uniform(0.1, 1.0)
    return events


def _tutorial(rng: random.Random, keys: list[str], lang: Language, t0: float, days: float) -> list[Event]:
    tmpl = rng.choice(_TUTORIAL)
    events = []
    for key in keys:
        fav = rng.sample(lang.topics, rng.randint(2, 5))
        topic = fav[0]
        for t, j in _sessions(rng, t0, days, (1, 4), 8):
            if j == 0:
                topic = rng.choice(fav)
            text = _chat_prompt(rng, lang, topic, j > 0, fav)
            events.append(_event(key, t, tmpl.format(x=text), rng.lognormvariate(4.3, 0.7), "benign", "tutorial"))
    return events


def _app(rng: random.Random, key: str, lang: Language, t0: float, days: float) -> list[Event]:
    tmpl = rng.choice(_APP_TEMPLATES)
    peak = rng.uniform(200, 800) / 86400  # requests per second at the daily peak
    events, t = [], t0
    while t < t0 + days * 86400:
        hour = (t - t0) / 3600 % 24
        rate = peak * (0.15 + 0.85 * (0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)))
        t += rng.expovariate(rate)
        text = lang.sentence(rng, rng.randint(6, 30), [rng.choice(lang.topics)])
        events.append(_event(key, t, tmpl.format(x=text), rng.lognormvariate(3.5, 0.5), "benign", "app",
                             max_tokens=128))
    return events


def paraphrase(rng: random.Random, topic: str, para: int, cot: bool = False) -> str:
    """One sweep prompt about `topic` in a fresh wording: a phrase per slot, clauses in a random order."""
    pick = {k: rng.choice(v[para]) for k, v in _PARA.items()}
    head = f"{pick['verb']} {pick['adj']} {pick['noun']} {pick['prep']} {topic}"
    parts = [head + ",", pick["tail"] + "."] if rng.random() < 0.7 else [f"{topic.capitalize()}:", head.lower(),
                                                                         pick["tail"] + "."]
    if cot:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(_COT[para]))
    return " ".join(parts)


def _answer(rng: random.Random, short: bool) -> tuple[float, int | None]:
    if short:
        m = rng.choice((16, 24, 32))
        return m, m
    return rng.lognormvariate(6.0, 0.3), rng.choice((None, 1024))


def _campaign(rng: random.Random, kind: str, keys: list[str], lang: Language, t0: float, days: float,
              s: Settings) -> list[Event]:
    sweep = lang.topics[:]
    rng.shuffle(sweep)
    short = rng.random() < s.short_share
    end = t0 + days * 86400
    events: list[Event] = []

    def add(key: str, t: float, prompt: str, **kw) -> None:
        out, mt = _answer(rng, short)
        kw.setdefault("max_tokens", mt)
        events.append(_event(key, t, prompt, kw.pop("out", out), kind, kind, **kw))

    t = t0 + rng.uniform(0, 3600)
    if kind in ("templated", "slow"):
        tmpl = rng.choice(_TEMPLATES)
        gap, jitter = s.templated_gap if kind == "templated" else (1800.0, 0.3)
        for i in range(100000):
            if t > end:
                break
            add(keys[0], t, tmpl.format(i=i + 1, t=sweep[i]))
            t += gap * max(0.05, 1 + rng.gauss(0, jitter))
    elif kind in ("paraphrased", "cot"):
        for i in range(100000):
            if t > end:
                break
            lp = rng.choice((5, 20)) if kind == "cot" and rng.random() < 0.5 else 0
            add(keys[0], t, paraphrase(rng, sweep[i], s.para, cot=kind == "cot"), top_logprobs=lp)
            t += 5 + rng.expovariate(1 / s.paraphrased_gap)
    elif kind == "lp_harvest":
        top = rng.choice(s.harvest_top)
        while t < end:
            for _ in range(rng.randint(*s.harvest_bursts)):  # a burst, as fast as the client can
                add(keys[0], t, lang.sentence(rng, rng.randint(10, 40), [rng.choice(sweep)], 0.05),
                    top_logprobs=top, max_tokens=1, out=1)
                t += rng.uniform(0.02, 0.3)
            t += rng.expovariate(1 / 7200)
    elif kind == "distributed":
        per = [rng.randint(*s.distributed_per_key) for _ in keys]
        plan = iter(sweep)
        for key, n in zip(keys, per, strict=True):
            tk = t0 + rng.uniform(0, 3600 * 6)
            for _ in range(n):
                add(key, tk, paraphrase(rng, next(plan), s.para))
                tk += 60 + rng.expovariate(n / (days * 86400))
        events = [e for e in events if e.ts <= end]
    elif kind == "mixed":
        person = _chat(rng, keys[0], lang, t0, days, label="mixed", kind="mixed", per_day=(4, 8))
        n = max(60, int(len(person) * s.mixed_share / (1 - s.mixed_share)))
        times = sorted(rng.uniform(t0, end) for _ in range(n))
        for i, tt in enumerate(times):
            add(keys[0], tt, paraphrase(rng, sweep[i], s.para, cot=rng.random() < 0.3))
        events += person
    return events


def simulate(seed: int = 0, n_benign: int = 60, campaigns: tuple[str, ...] = CAMPAIGNS, days: float = 2.0,
             repeats: int = 1, profile: str = "train") -> list[Event]:
    """All events of `n_benign` benign accounts (plus a tutorial group and apps, as the profile says) and `repeats`
    instances of each campaign kind, sorted by time."""
    s = PROFILES[profile]
    rng = random.Random(seed)
    lang = language()
    events: list[Event] = []
    kinds, weights = zip(*s.benign_mix.items(), strict=True)
    for u in range(n_benign):
        key = f"user-{seed}-{u}"
        if rng.choices(kinds, weights)[0] == "developer":
            events += _developer(rng, key, lang, T0, days)
        else:
            events += _chat(rng, key, lang, T0, days)
    if n_benign:
        events += _tutorial(rng, [f"tutorial-{seed}-{j}" for j in range(s.tutorial_keys)], lang, T0, days)
        for a in range(s.apps):
            events += _app(rng, f"app-{seed}-{a}", lang, T0, days)
    for kind in campaigns:
        for r in range(repeats):
            nkeys = rng.randint(*s.distributed_keys) if kind == "distributed" else 1
            keys = [f"{kind}-{seed}-{r}-{j}" for j in range(nkeys)]
            events += _campaign(rng, kind, keys, lang, T0, days, s)
    events.sort(key=lambda e: (e.ts, e.key))
    return events

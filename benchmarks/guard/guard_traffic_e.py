"""Held-out traffic yardstick E/F for the distillation-traffic guard.

A third, independently written generator of API traffic traces (one row per
request) for two model owners the guard has never been tuned on.  It shares
no code, templates or parameters with the earlier generators; it is meant to
be run only as a final check.

Owners (``source``)
-------------------
``E``  a multilingual general assistant sold to consumers and small businesses
       across Europe and Asia.  Prompts mix English with ~20 other languages
       (utterances and whole conversations from the installed
       ``chatterbot_corpus`` data, plus English templates written here and
       code-switched prompts).  Consumers are busiest in the evening and at
       weekends; many mobile clients ask for short answers (``max_tokens``
       128-600).  Time zones from UTC+0 (Lisbon/London) to UTC+9 (Seoul/Tokyo).
``F``  a research/science API used by labs and universities.  Long technical
       prompts built from Python standard-library docstrings, the licence texts
       in ``/usr/share/common-licenses``, generated numbers, data tables and
       formulas.  Batch evaluation jobs, notebooks re-running cells, grant-
       deadline bursts, logprob-heavy scoring, keys shared by a whole lab.
       Time zones from UTC-8 to UTC+9; weekdays busier, long evenings.

The trace starts at ``ts = 1_820_000_000`` (a Friday, 19:33 UTC), so a 2-3 day
trace covers a weekend.

Benign kinds (``label == "benign"``; ``campaign`` is the key itself)
-------------------------------------------------------------------
``chat_user``            ordinary person in sessions of 1-8 turns with follow-
                         ups ("shorter please", "and in German?"), growing
                         history.  Hard: a chatty user with wide interests
                         covers many topics; mobile users all send the same
                         short ``max_tokens``.
``smb_wrapper``          a small business app (shop help desk, restaurant
                         reservations, real-estate listings; F: a methods-
                         section/citation helper of a core facility) that wraps
                         each customer's message in one fixed system prompt
                         and template.  Hard: one template, many distinct
                         fillers, steady volume -- the shape of templated
                         coverage.
``localization_pipeline`` translation/localization: many distinct strings
                         (UI strings, product texts, abstracts) with one
                         instruction, several target languages, bursts when a
                         release ships, ``temperature`` 0.  Hard: huge lexical
                         coverage through one instruction, machine pacing.
``ranking_job``          scoring / reranking / classification with logprobs
                         (chat ``logprobs``+``top_logprobs`` or completions
                         ``logprobs`` int), ``max_tokens`` 1-5, nightly
                         batches.  Hard: logprob-heavy, high volume.
``eval_runner``          benchmark runner: a fixed item set run in fast bursts
                         against the model, repeated per checkpoint/nightly,
                         ``temperature`` 0, sometimes ``n`` > 1 for pass@k.
                         Hard: broad items, machine rate, exact repeats.
``agent_product``        a product with tools (shop assistant, travel and
                         calendar agent; F: data-analysis agent) sending
                         tool_calls/tool results round trips.  Hard: looks like
                         agentic trace harvesting.
``labelling_team``       a data-labelling team: 4-12 keys, one labelling
                         template with ``response_format`` JSON, office hours
                         of one time zone, many distinct items.  Hard: many
                         keys, one template, coordinated -- like a hydra.
``power_user``           a heavy individual (developer, writer, student before
                         exams): long sessions, long answers, many topics,
                         3-6x a normal user.  Hard: volume and breadth.
``shared_lab_key``       one key used by a whole team/lab: several personas
                         with different styles, languages and time zones
                         interleaved, overlapping sessions.  Hard: many
                         "users" on one key, round the clock, broad.
``notebook_session`` (F) researcher iterating in a notebook: the same cell
                         re-run with tiny edits, long code/docstring prompts,
                         tracebacks, ``temperature`` 0.  Hard: exact repeats,
                         long technical prompts, bursty.
``grant_deadline`` (F)   quiet, then an intense late-night burst of long
                         document editing before a deadline (specific aims,
                         data-management plans, licence questions).  Hard:
                         sudden 10x volume with long answers.

Campaign kinds (``label == kind``; ``campaign`` is the instance id)
-------------------------------------------------------------------
``templated_coverage``   one fixed template slot-filled with a systematic
                         walk over a topic x aspect plan, steady pacing.
``paraphrased_coverage`` the same walk, but each prompt is re-worded from a
                         pool of openers/asks/closers (E: in several
                         languages), human-like pauses and filler.
``reasoning_elicitation`` generated math/logic/science problems with "show all
                         your reasoning step by step", long answers, some
                         ``n`` 2-4 at temperature ~0.8.
``rubric_grading``       question + candidate answer(s) to be graded against a
                         rubric (judge/preference data), JSON output often.
``sensitive_rewrites``   rewrites/explanations of texts near policy boundaries
                         (medication doses, security, extremism in the news,
                         debt collection threats), many tones -- harvesting
                         refusal and safety behaviour.
``agentic_traces``       synthetic tasks run through large rotating tool sets
                         in long multi-step episodes, back to back.
``logprob_harvest``      diverse prompts with ``top_logprobs`` 20 and long
                         ``max_tokens`` (chat) or long completions prompts with
                         ``logprobs`` 5 -- full distributions, not scores.
``thin_hydra``           50-80 keys created over a few hours, 5-25 requests
                         each, one coverage plan split across them.
``natural_high_volume``  a natural-looking ``chat_user`` (sessions, follow-ups,
                         diurnal rhythm, mobile/web) at ~8-12x normal volume,
                         first questions drawn from the coverage plan.
``slow_mimic`` (new)     a slow harvest meant to run for weeks: copies the
                         owner's ordinary-user profile (session sizes, follow-
                         up share, client, time zone, diurnal and weekend
                         shape) at only ~1.5-3x a normal user's volume, but
                         every session opens a fresh plan item and never comes
                         back to a topic.  An extractor that compares itself
                         with the benign traffic will aim for exactly this.
``key_rotation`` (new)   a campaign that rotates to a freshly created key
                         every 20-60 requests, one key after another (never
                         in parallel), each key dressed as a benign product
                         of the owner (translation pipeline / business
                         wrapper / scorer) with its own system prompt wording,
                         while the plan behind them continues.  Each key alone
                         is short and looks like a new small customer.

Single-key campaign kinds get 2 instances per trace (``key_rotation`` 2
instances of many keys), ``thin_hydra`` 1 instance; every instance starts at a
random time and draws its own volume, pacing, wording, answer lengths and
filler share (ordinary-looking requests mixed in).

Determinism: every account/instance has its own ``random.Random`` seeded from
a SHA-256 of (source, seed, name); no global RNG, no ``hash()``.  Benign
traffic does not depend on which campaigns are generated, so the benign rows of
``benign_only=True`` equal the benign rows of a full trace.

CLI::

    python -m benchmarks.guard.guard_traffic_e --source E --seed 5 --days 3 --out trace.jsonl
    python -m benchmarks.guard.guard_traffic_e --source F --seed 1 --benign-only
    python -m benchmarks.guard.guard_traffic_e --check
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path
from random import Random

T0 = 1_820_000_000.0
DAY = 86400.0
HOUR = 3600.0

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
    "slow_mimic",
    "key_rotation",
)

BENIGN_MIX = {
    "E": {
        "chat_user": 0.42, "smb_wrapper": 0.10, "localization_pipeline": 0.06,
        "ranking_job": 0.04, "eval_runner": 0.03, "agent_product": 0.08,
        "labelling_team": 0.08, "power_user": 0.13, "shared_lab_key": 0.06,
    },
    "F": {
        "chat_user": 0.14, "smb_wrapper": 0.04, "localization_pipeline": 0.03,
        "ranking_job": 0.10, "eval_runner": 0.10, "agent_product": 0.07,
        "labelling_team": 0.10, "power_user": 0.08, "shared_lab_key": 0.08,
        "notebook_session": 0.19, "grant_deadline": 0.07,
    },
}


# --------------------------------------------------------------------------
# deterministic randomness


def _digest(*parts) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def _rng(*parts) -> Random:
    return Random(int(_digest("rng", *parts)[:16], 16))


def _key(*parts) -> str:
    h = _digest("key", *parts)
    return "sk-" + h[:8] + "-" + h[8:24]


def _lognorm(rng: Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _tokens(rng: Random, median: float, sigma: float, cap: int, lo: int = 1) -> int:
    return max(lo, min(cap, int(_lognorm(rng, median, sigma))))


# --------------------------------------------------------------------------
# installed text


def _corpus_dirs() -> list[Path]:
    cands = []
    here = Path(__file__).resolve().parents[2]
    cands += sorted(here.glob(".venv/lib/python*/site-packages/chatterbot_corpus/data"))
    for p in sys.path:
        q = Path(p) / "chatterbot_corpus" / "data"
        if q.is_dir():
            cands.append(q)
    return cands


def _unquote(s: str) -> str:
    s = s.strip()
    if s in ("|", ">", "|-", ">-"):
        return ""
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        s = s[1:-1]
    return s.replace("\\n", " ").strip()


def _parse_yml(text: str) -> list[list[str]]:
    convs: list[list[str]] = []
    on = False
    for line in text.splitlines():
        if line.startswith("conversations:"):
            on = True
            continue
        if not on or not line.strip():
            continue
        if line.startswith("- - "):
            convs.append([_unquote(line[4:])])
        elif line.startswith("  - ") and convs:
            convs[-1].append(_unquote(line[4:]))
        elif line.startswith("    ") and convs:
            convs[-1][-1] = (convs[-1][-1] + " " + line.strip()).strip()
    return [c for c in convs if c and all(c)]


_FALLBACK = {
    "german": [["Wie geht es dir?", "Mir geht es gut, danke."], ["Was ist dein Lieblingsbuch?", "Ich lese gern Krimis."]],
    "french": [["Comment vas-tu ?", "Je vais bien, merci."], ["Quel temps fait-il à Paris ?", "Il pleut."]],
    "spanish": [["¿Cómo estás?", "Estoy bien, gracias."], ["¿Qué me recomiendas para cenar?", "Una tortilla."]],
    "japanese": [["おはよう、元気？", "元気です。"], ["おすすめの本は？", "村上春樹はどうですか。"]],
    "chinese": [["你好，最近怎么样？", "很好，谢谢。"], ["你喜欢什么电影？", "我喜欢科幻电影。"]],
    "english": [["How are you today?", "I am fine, thank you."], ["What is your favourite book?", "I like detective stories."]],
}


@functools.cache
def _conversations() -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for d in _corpus_dirs():
        for lang_dir in sorted(d.iterdir()):
            if not lang_dir.is_dir() or lang_dir.name in out:
                continue
            convs: list[list[str]] = []
            for f in sorted(lang_dir.glob("*.yml")):
                try:
                    convs += _parse_yml(f.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError):
                    continue
            if convs:
                out[lang_dir.name] = convs
        if out:
            break
    for lang, convs in _FALLBACK.items():
        out.setdefault(lang, convs)
    return out


def _utterances(lang: str) -> list[str]:
    return _utterances_c(lang if lang in _conversations() else "english")


@functools.cache
def _utterances_c(lang: str) -> list[str]:
    return [u for c in _conversations()[lang] for u in c if 3 <= len(u) <= 400]


@functools.cache
def _questions(lang: str) -> list[str]:
    us = _utterances(lang)
    qs = [u for u in us if u.rstrip().endswith(("?", "？", "؟", "।"))]
    return qs if len(qs) >= 10 else us


_DOC_MODULES = (
    "statistics fractions decimal math cmath random itertools functools collections heapq bisect json "
    "csv textwrap difflib string re datetime calendar zipfile tarfile gzip hashlib hmac secrets shutil "
    "pathlib subprocess threading queue socket http.client urllib.parse email.message sqlite3 pickle copy "
    "pprint inspect dataclasses enum contextlib argparse logging unittest doctest timeit array "
    "struct codecs unicodedata ipaddress uuid operator weakref numbers graphlib tokenize ast dis "
    "xml.etree.ElementTree html.parser wave colorsys zlib base64 locale gettext fnmatch glob tempfile "
    "filecmp configparser sched selectors mimetypes shlex platform"
).split()


@functools.cache
def _docstrings() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in _DOC_MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional stdlib modules
            continue
        items = [(name, getattr(mod, "__doc__", None))]
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            try:
                obj = getattr(mod, attr)
            except Exception:  # noqa: BLE001
                continue
            if callable(obj):
                items.append((f"{name}.{attr}", getattr(obj, "__doc__", None)))
        for qual, doc in items:
            if not isinstance(doc, str):
                continue
            doc = doc.strip()
            if len(doc) < 120 or doc in seen:
                continue
            seen.add(doc)
            out.append((qual, doc[:2500]))
    if not out:
        out = [("statistics.mean", "Return the sample arithmetic mean of data. " * 6)]
    return out


@functools.cache
def _licence_paragraphs() -> list[str]:
    out: list[str] = []
    d = Path("/usr/share/common-licenses")
    if d.is_dir():
        for f in sorted(d.iterdir()):
            if not f.is_file() or f.is_symlink():
                continue
            try:
                text = f.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for para in re.split(r"\n\s*\n", text):
                p = " ".join(para.split())
                if 200 <= len(p) <= 3000:
                    out.append(p)
    if not out:
        out = ["Permission is hereby granted, free of charge, to any person obtaining a copy of this "
               "software and associated documentation files, to deal in the Software without restriction. " * 2]
    return out


@functools.cache
def _english_sentences() -> list[str]:
    sents = [u for u in _utterances("english") if len(u) > 25]
    for _, doc in _docstrings()[:400]:
        sents += [s.strip() + "." for s in doc.replace("\n", " ").split(". ") if 30 < len(s) < 200]
    return sents


# --------------------------------------------------------------------------
# topic plans and word lists (written for this generator)

E_DOMAINS = {
    "cooking": ["sourdough bread", "ramen broth", "paella", "kimchi", "risotto", "green curry paste", "dumplings",
                "tiramisu", "pho", "falafel", "bibimbap", "goulash"],
    "travel": ["Kyoto", "Lisbon", "Bangkok", "Seoul", "Prague", "Istanbul", "Bali", "Barcelona", "Hanoi", "Vienna",
               "Kraków", "Taipei"],
    "personal finance": ["index funds", "refinancing a mortgage", "an emergency fund", "credit scores", "pension plans",
                         "budgeting", "inflation", "student loans", "crypto taxes", "home insurance"],
    "health": ["sleep hygiene", "lower back pain", "vitamin D", "running injuries", "migraines", "intermittent fasting",
               "hay fever", "blood pressure", "stretching routines", "hydration"],
    "law": ["tenant rights", "GDPR requests", "employment contracts", "small claims court", "consumer refunds",
            "copyright for photos", "inheritance", "visa applications", "registering a company", "parking fines"],
    "technology": ["home Wi-Fi", "password managers", "smartphone battery life", "cloud backups", "VPNs",
                   "smart speakers", "laptop upgrades", "phishing emails", "two-factor authentication", "printers"],
    "language learning": ["Japanese particles", "German cases", "the French subjunctive", "Korean honorifics",
                          "Spanish past tenses", "Mandarin tones", "Italian pronunciation", "the Thai script",
                          "Dutch word order", "Devanagari"],
    "history": ["the Meiji Restoration", "the Hanseatic League", "the Silk Road", "the French Revolution",
                "the Ottoman Empire", "the Cold War", "the Tang dynasty", "the Renaissance", "the Partition of India",
                "the fall of the Berlin Wall"],
    "science": ["black holes", "photosynthesis", "mRNA vaccines", "plate tectonics", "climate change",
                "quantum entanglement", "DNA replication", "the immune system", "antibiotic resistance", "volcanoes"],
    "small business": ["pricing", "Instagram marketing", "invoicing", "hiring a first employee", "VAT registration",
                       "customer retention", "supplier negotiation", "cash flow", "an online shop", "a business plan"],
    "parenting": ["toddler tantrums", "screen time", "bedtime routines", "picky eaters", "homework help",
                  "teen phone use", "sibling rivalry", "bilingual children", "potty training", "pocket money"],
    "fitness": ["a 5k plan", "strength training", "yoga for beginners", "cycling", "swimming technique",
                "muscle soreness", "home workouts", "protein intake", "marathon tapering", "posture"],
    "programming": ["Python lists", "SQL joins", "JavaScript promises", "Git branches", "REST APIs",
                    "Excel formulas", "regular expressions", "CSS grid", "recursion", "Docker"],
    "home and garden": ["tomato plants", "mould in the bathroom", "balcony herbs", "painting a room", "composting",
                        "a leaking tap", "energy saving", "houseplants", "insulation", "lawn care"],
    "writing": ["cover letters", "wedding speeches", "apology emails", "short stories", "haiku", "product reviews",
                "LinkedIn posts", "condolence cards", "complaint letters", "blog intros"],
}
E_ASPECTS = ["the basics for a beginner", "common mistakes", "a step-by-step guide", "pros and cons",
             "an expert-level deep dive", "frequently asked questions", "a comparison with the alternatives",
             "practical tips", "the history and background", "how to explain it to a child",
             "a checklist", "the most important numbers and facts"]

F_DOMAINS = {
    "statistics": ["mixed-effects models", "bootstrap confidence intervals", "false discovery rate", "power analysis",
                   "Bayesian hierarchical models", "survival analysis", "propensity scores", "Gaussian processes",
                   "multiple imputation", "permutation tests"],
    "molecular biology": ["CRISPR off-target effects", "qPCR normalisation", "RNA-seq differential expression",
                          "Western blot quantification", "protein folding", "single-cell clustering",
                          "codon optimisation", "ChIP-seq peak calling", "plasmid design", "organoids"],
    "physics": ["the Navier-Stokes equations", "density functional theory", "the Ising model", "Fermi's golden rule",
                "renormalisation", "Kalman filters", "laser cooling", "superconductivity", "spin glasses",
                "Monte Carlo integration"],
    "chemistry": ["enzyme kinetics", "NMR spectra", "transition state theory", "buffer preparation",
                  "chromatography", "crystal field theory", "Hammett plots", "reaction yields", "pKa estimation",
                  "polymer chain statistics"],
    "machine learning": ["attention", "batch normalisation", "learning-rate schedules", "contrastive learning",
                         "variational autoencoders", "knowledge distillation", "gradient clipping",
                         "calibration of classifiers", "mixture of experts", "diffusion models"],
    "numerical methods": ["Runge-Kutta methods", "sparse linear solvers", "finite element meshes", "FFT",
                          "Newton's method", "conjugate gradients", "stiff ODEs", "quadrature", "interpolation",
                          "floating point error"],
    "ecology": ["species distribution models", "mark-recapture", "Lotka-Volterra dynamics", "metabarcoding",
                "occupancy models", "biodiversity indices", "phenology", "dispersal kernels", "food webs",
                "camera-trap surveys"],
    "neuroscience": ["spike sorting", "fMRI preprocessing", "calcium imaging", "the Hodgkin-Huxley model",
                     "EEG artefact removal", "place cells", "optogenetics", "connectomics",
                     "decoding analyses", "synaptic plasticity"],
    "research software": ["Python packaging", "reproducible environments", "HPC job arrays", "unit testing",
                          "data versioning", "licensing research code", "FAIR data", "profiling Python",
                          "parallel I/O", "continuous integration"],
    "climate science": ["radiative forcing", "ensemble downscaling", "ocean heat content", "carbon budgets",
                        "reanalysis data", "aerosol-cloud interactions", "sea-level rise", "ENSO",
                        "land-use emissions", "bias correction"],
}
F_ASPECTS = ["the derivation", "assumptions and when they fail", "a worked numerical example",
             "how to implement it in Python", "common pitfalls in papers", "a comparison of methods",
             "the key references and history", "how to explain it to a first-year student",
             "how to report it in a methods section", "edge cases", "the underlying intuition",
             "open research questions"]

LANG_NAMES = {
    "english": "English", "german": "German", "french": "French", "spanish": "Spanish", "italian": "Italian",
    "dutch": "Dutch", "portuguese": "Portuguese", "swedish": "Swedish", "russian": "Russian",
    "ukrainian": "Ukrainian", "turkish": "Turkish", "japanese": "Japanese", "korean": "Korean",
    "chinese": "Chinese (Simplified)", "traditionalchinese": "Chinese (Traditional)", "hindi": "Hindi",
    "indonesian": "Indonesian", "thai": "Thai", "bengali": "Bengali", "tamil": "Tamil", "persian": "Persian",
}
# (share of E users, time zones)
E_LANGS = {
    "english": (0.30, [0.0, 1.0, 8.0, 5.5]), "german": (0.08, [1.0]), "french": (0.06, [1.0]),
    "spanish": (0.05, [1.0]), "italian": (0.04, [1.0]), "dutch": (0.03, [1.0]), "portuguese": (0.03, [0.0]),
    "swedish": (0.02, [1.0]), "russian": (0.03, [3.0]), "ukrainian": (0.02, [2.0]), "turkish": (0.03, [3.0]),
    "japanese": (0.06, [9.0]), "korean": (0.05, [9.0]), "chinese": (0.05, [8.0]),
    "traditionalchinese": (0.02, [8.0]), "hindi": (0.04, [5.5]), "indonesian": (0.04, [7.0]),
    "thai": (0.02, [7.0]), "bengali": (0.01, [6.0]), "tamil": (0.02, [5.5]),
}
F_TZ = [(-8.0, 0.12), (-5.0, 0.20), (0.0, 0.12), (1.0, 0.25), (2.0, 0.05), (5.5, 0.06), (8.0, 0.12), (9.0, 0.08)]

FOLLOWUPS_EN = ["Can you make that shorter?", "Thanks! And what about {x}?", "Can you give me an example?",
                "Why is that?", "Ok, and if I only have {n} minutes?", "Could you put that in a table?",
                "Can you explain the second point again?", "Translate that into {lang} please",
                "What would you recommend for a beginner?", "Is that still true in {year}?",
                "Perfect, now write it as an email", "Hmm, that doesn't work for me. Other ideas?"]
FOLLOWUPS_F = ["Can you show the derivation for step 2?", "Now vectorise it with numpy.",
               "What if the data are not normally distributed?", "Give me the LaTeX for that.",
               "That raises `{err}` on line {n}. Fix?", "Can you cite where this comes from?",
               "Make it run on 10^{n} rows.", "Rewrite the paragraph for reviewers, 150 words max.",
               "Why not use {x} instead?", "Check the units again please."]
ERRORS = ["ValueError", "KeyError: 'sample_id'", "IndexError", "TypeError: unhashable type: 'list'",
          "MemoryError", "ZeroDivisionError", "AttributeError: 'NoneType' object has no attribute 'shape'"]

E_TEMPLATES_EN = ["How do I get started with {item}?", "What's the difference between {item} and {item2}?",
                  "Explain {item} simply, I'm not an expert", "Give me {n} tips about {item}",
                  "I need help with {item}. {ctx}", "Is it true that {item} is overrated?",
                  "Write a short {fmt} about {item}", "What should I know about {item} before {when}?",
                  "My friend says {item} is easy. Is it?", "Plan my week around {item}"]
E_CTX = ["I have a small budget.", "It's for my mum.", "I only have a phone.", "I live in a small flat.",
         "Deadline is tomorrow!", "We are a team of three.", "I'm 16.", "English is not my first language."]
E_FMTS = ["poem", "email", "summary", "post for Instagram", "speech", "list", "story for kids"]
E_WHEN = ["next month", "my holiday", "the exam", "opening my shop", "winter", "we move"]

PARA_E = {
    "english": (["Hi!", "Quick question:", "Hello there.", "I was wondering,", "Please help:", ""],
                ["can you explain {item}, especially {aspect}?", "tell me about {item} -- {aspect}.",
                 "I want to understand {item}: {aspect}.", "what do you know about {item}? Focus on {aspect}."],
                ["Thanks!", "Be detailed.", "", "Use examples.", "Please answer thoroughly."]),
    "german": (["Hallo!", "Kurze Frage:", ""], ["kannst du mir {item} erklären, vor allem {aspect}?",
               "ich möchte {item} verstehen ({aspect})."], ["Danke!", "Bitte ausführlich.", ""]),
    "french": (["Bonjour,", "Petite question :", ""], ["peux-tu m'expliquer {item}, surtout {aspect} ?",
               "parle-moi de {item} ({aspect})."], ["Merci !", "Sois précis.", ""]),
    "spanish": (["Hola,", "Una pregunta:", ""], ["¿me puedes explicar {item}, sobre todo {aspect}?",
                "háblame de {item} ({aspect})."], ["¡Gracias!", "Con detalle, por favor.", ""]),
    "japanese": (["こんにちは。", "質問です。", ""], ["{item}について詳しく教えてください（{aspect}）。",
                 "{item}を説明してください。特に{aspect}。"], ["よろしくお願いします。", ""]),
    "chinese": (["你好，", "请问，", ""], ["请详细解释一下{item}（{aspect}）。", "能介绍一下{item}吗？重点是{aspect}。"],
                ["谢谢！", "越详细越好。", ""]),
    "korean": (["안녕하세요.", ""], ["{item}에 대해 자세히 설명해 주세요 ({aspect}).", "{item}이 뭔지 알려주세요. {aspect} 중심으로."],
               ["감사합니다.", ""]),
}
PARA_F = (["", "Hi,", "For a review I'm writing:", "Quick one for my thesis:", "Our group is discussing this:"],
          ["explain {item} in {domain}, focusing on {aspect}.", "give a rigorous account of {item} -- {aspect}.",
           "what is the state of the art on {item}? Include {aspect}.", "I need {aspect} for {item} ({domain})."],
          ["", "Be precise.", "Use equations where helpful.", "Graduate level please.", "Thanks in advance."])


def _plan(source: str, rng: Random) -> list[tuple[str, str, str]]:
    doms = E_DOMAINS if source == "E" else F_DOMAINS
    aspects = E_ASPECTS if source == "E" else F_ASPECTS
    plan = [(d, it, a) for d, items in doms.items() for it in items for a in aspects]
    order = rng.choice(["shuffle", "domain_walk", "aspect_walk"])
    if order == "shuffle":
        rng.shuffle(plan)
    elif order == "aspect_walk":
        plan.sort(key=lambda x: (x[2], x[0], x[1]))
    return plan


# --------------------------------------------------------------------------
# time


HOUR_PROFILES = {
    "consumer": [.25, .12, .06, .04, .04, .06, .15, .32, .45, .50, .52, .58, .66, .58, .52, .52, .58, .66, .78,
                 .92, 1.0, .95, .75, .45],
    "office": [.01, .01, .01, .01, .01, .02, .05, .25, .75, 1.0, 1.0, .9, .55, .85, 1.0, .95, .85, .55, .2, .08,
               .05, .03, .02, .01],
    "lab": [.30, .18, .10, .05, .03, .03, .06, .15, .40, .70, .85, .90, .75, .85, .95, 1.0, .95, .85, .70, .65,
            .70, .72, .60, .45],
    "flat": [1.0] * 24,
}
WEEKEND = {("E", "consumer"): 1.45, ("F", "consumer"): 0.85, ("E", "office"): 0.08, ("F", "office"): 0.05,
           ("E", "lab"): 0.7, ("F", "lab"): 0.45}


def _local(ts: float, tz: float) -> tuple[float, int]:
    loc = ts + tz * HOUR
    day = int(loc // DAY)
    return (loc % DAY) / HOUR, (day + 3) % 7  # hour, weekday (Mon=0)


def _activity(source: str, ts: float, tz: float, profile: str) -> float:
    hour, wd = _local(ts, tz)
    w = HOUR_PROFILES[profile][int(hour) % 24]
    if wd >= 5:
        w *= WEEKEND.get((source, profile), 1.0)
    return min(1.0, w / 1.45) if profile != "flat" else 1.0


def _arrivals(rng: Random, source: str, t0: float, t1: float, per_day: float, tz: float, profile: str) -> list[float]:
    """Inhomogeneous Poisson process (thinning); ``per_day`` is the mean daily rate."""
    if per_day <= 0 or t1 <= t0:
        return []
    mean_w = 0.42 if profile != "flat" else 1.0
    peak = per_day / DAY / mean_w
    out, t = [], t0
    while True:
        t += rng.expovariate(peak)
        if t >= t1:
            return out
        if rng.random() < _activity(source, t, tz, profile):
            out.append(t)


def _next_active(source: str, t: float, tz: float, profile: str, thr: float = 0.5) -> float:
    for _ in range(96):
        if _activity(source, t, tz, profile) >= thr:
            return t
        t += 1800.0
    return t


def _lifetime(rng: Random, t0: float, t1: float) -> tuple[float, float]:
    start = t0 if rng.random() < 0.72 else t0 + rng.uniform(0.0, 0.85) * (t1 - t0)
    end = t1
    if rng.random() < 0.12:
        end = start + rng.uniform(0.15, 0.8) * (t1 - start)
    return start, end


# --------------------------------------------------------------------------
# text helpers


def _prose(rng: Random, lang: str, words: int) -> str:
    pool = _english_sentences() if lang == "english" else _utterances(lang)
    out, n = [], 0
    cjk = lang in ("japanese", "chinese", "traditionalchinese", "korean", "thai")
    while n < words:
        s = rng.choice(pool)
        out.append(s)
        n += max(1, len(s) // 3) if cjk else len(s.split())
    return ("" if cjk else " ").join(out)


def _clip_words(text: str, n: int) -> str:
    w = text.split()
    return text if len(w) <= n else " ".join(w[:n]) + " ..."


def _numbers(rng: Random, n: int, mu: float, sd: float, digits: int = 2) -> str:
    return ", ".join(f"{rng.gauss(mu, sd):.{digits}f}" for _ in range(n))


def _formula(rng: Random) -> str:
    a, b, c = rng.randint(2, 9), rng.randint(1, 12), rng.randint(2, 5)
    return rng.choice([
        f"∫_0^{a} x^{c} e^(-{b}x) dx",
        f"dy/dt = {b / 10:.1f} y (1 - y/{a * 100}), y(0) = {c}",
        f"the eigenvalues of [[{a}, {b}], [{b}, {c}]]",
        f"Σ_{{k=1}}^∞ k^{c} / {a}^k",
        f"the MLE of λ for Poisson counts {_numbers(rng, 8, a + 3, 2, 0)}",
        f"∇·(D∇u) = {b}u on the unit disc with u = {c} on the boundary",
        f"P(X > {a}) for X ~ Gamma(shape={c}, rate={b / 4:.2f})",
        f"the Fourier transform of exp(-{a} |t|) cos({b} t)",
    ])


def _item_fill(source: str, rng: Random, lang: str) -> str:
    doms = E_DOMAINS if source == "E" else F_DOMAINS
    d = rng.choice(sorted(doms))
    items = doms[d]
    if source == "E":
        t = rng.choice(E_TEMPLATES_EN)
        return t.format(item=rng.choice(items), item2=rng.choice(items), n=rng.randint(3, 10), ctx=rng.choice(E_CTX),
                        fmt=rng.choice(E_FMTS), when=rng.choice(E_WHEN))
    return _f_question(rng)


def _f_question(rng: Random) -> str:
    u = rng.random()
    if u < 0.30:
        qual, doc = rng.choice(_docstrings())
        return rng.choice([
            f"What exactly does `{qual}` do? The docs say:\n\n{doc}\n\nGive me an example for my analysis script.",
            f"I'm porting code that uses `{qual}`.\n\"\"\"{doc}\"\"\"\nWhat are the edge cases I should test?",
            f"Explain this docstring to a biologist:\n{doc}",
        ])
    if u < 0.45:
        para = rng.choice(_licence_paragraphs())
        return rng.choice([
            f"Our lab wants to release code that links to a library under this licence. What does this clause mean "
            f"for us?\n\n{para}",
            f"Summarise the obligations in this licence text for a data-sharing agreement:\n\n{para}",
        ])
    if u < 0.65:
        return rng.choice([f"Compute {_formula(rng)} and show the steps.", f"Derive {_formula(rng)}.",
                           f"Is my result right for {_formula(rng)}? I get {rng.uniform(0, 50):.4f}."])
    if u < 0.80:
        n = rng.randint(8, 30)
        return (f"I measured these values (n={n}): {_numbers(rng, n, rng.uniform(1, 100), rng.uniform(0.5, 10))}. "
                f"Control group: {_numbers(rng, n, rng.uniform(1, 100), rng.uniform(0.5, 10))}. "
                f"{rng.choice(['Which test should I use?', 'Compute a 95% CI for the difference.', 'Is there an outlier?', 'Effect size?'])}")
    d = rng.choice(sorted(F_DOMAINS))
    return (f"{rng.choice(['Can you explain', 'Help me understand', 'What is a good reference for', 'Summarise'])} "
            f"{rng.choice(F_DOMAINS[d])} ({d}) - {rng.choice(F_ASPECTS)}?")


def _first_question(source: str, rng: Random, lang: str) -> str:
    if source == "F":
        return _f_question(rng)
    if lang == "english":
        return _item_fill(source, rng, lang)
    u = rng.random()
    if u < 0.65:
        return rng.choice(_questions(lang))
    if u < 0.85:
        return _item_fill(source, rng, lang) + f" (please answer in {LANG_NAMES.get(lang, lang)})"
    return rng.choice(_utterances(lang)) + " " + _item_fill(source, rng, lang)


def _followup(source: str, rng: Random, lang: str) -> str:
    if source == "E" and lang != "english" and rng.random() < 0.7:
        return rng.choice(_utterances(lang))
    pool = FOLLOWUPS_EN if source == "E" else FOLLOWUPS_F
    doms = E_DOMAINS if source == "E" else F_DOMAINS
    x = rng.choice(doms[rng.choice(sorted(doms))])
    return rng.choice(pool).format(x=x, n=rng.randint(2, 9), lang=rng.choice(["German", "French", "Japanese",
                                                                                  "Spanish", "Korean"]),
                                   year=rng.choice([2026, 2027]), err=rng.choice(ERRORS))


def _chat(messages: list, max_tokens: int, **kw) -> dict:
    body = {"messages": messages, "max_tokens": int(max_tokens)}
    for k, v in kw.items():
        if v is not None:
            body[k] = v
    return body


# --------------------------------------------------------------------------
# trace context


class Trace:
    def __init__(self, source: str, seed: int, days: float):
        self.source, self.seed = source, seed
        self.t0, self.t1 = T0, T0 + days * DAY
        self.rows: list[dict] = []

    def emit(self, key: str, ts: float, label: str, kind: str, campaign: str, request: dict, ctoks: int) -> None:
        if not (self.t0 <= ts < self.t1):
            return
        cap = request.get("max_tokens", 1) * request.get("n", 1)
        self.rows.append({"key": key, "ts": round(ts, 3), "label": label, "kind": kind, "campaign": campaign,
                          "request": request, "completion_tokens": int(max(0, min(cap, ctoks)))})


def _client(source: str, rng: Random) -> tuple[str, int]:
    if source == "E":
        c = rng.choices(["mobile", "web", "desktop"], [0.55, 0.35, 0.10])[0]
        mt = {"mobile": [128, 256, 300, 400, 512, 600], "web": [1024, 2048, 4096], "desktop": [1500, 2048]}[c]
    else:
        c = rng.choices(["notebook", "web", "script"], [0.5, 0.3, 0.2])[0]
        mt = {"notebook": [1024, 2048, 4096], "web": [2048, 4096], "script": [512, 1024, 8192]}[c]
    return c, rng.choice(mt)


def _persona(tr: Trace, rng: Random) -> dict:
    if tr.source == "E":
        langs = sorted(E_LANGS)
        lang = rng.choices(langs, [E_LANGS[x][0] for x in langs])[0]
        tz = rng.choice(E_LANGS[lang][1])
        profile = "consumer"
    else:
        lang = "english"
        tz = rng.choices([z for z, _ in F_TZ], [w for _, w in F_TZ])[0]
        profile = "lab"
    client, mt = _client(tr.source, rng)
    return {"lang": lang, "tz": tz, "profile": profile, "client": client, "max_tokens": mt,
            "temperature": rng.choice([None, None, 0.7, 1.0, 0.2]),
            "system": rng.random() < (0.3 if tr.source == "E" else 0.5)}


SYSTEMS_E = ["You are a helpful assistant.", "You are Mia, a friendly assistant. Answer briefly.",
             "Always answer in the user's language."]
SYSTEMS_F = ["You are a careful scientific assistant. Cite sources when possible.",
             "You are an expert research software engineer.", "Answer with precise, technical detail."]


def _session(tr: Trace, rng: Random, key: str, label: str, kind: str, camp: str, ts: float, p: dict,
             n_turns: int, first: str | None = None, long_answers: float = 1.0) -> float:
    """One conversational session with follow-ups; returns the time after it."""
    src = tr.source
    msgs: list[dict] = []
    if p["system"]:
        msgs.append({"role": "system", "content": rng.choice(SYSTEMS_E if src == "E" else SYSTEMS_F)})
    conv = None
    if src == "E" and first is None and p["lang"] != "english" and rng.random() < 0.3:
        conv = rng.choice(_conversations().get(p["lang"], _conversations()["english"]))
    med = (90 if p["client"] == "mobile" else 350) if src == "E" else 500
    med *= long_answers
    for i in range(n_turns):
        if conv is not None and 2 * i < len(conv):
            user = conv[2 * i]
        elif i == 0:
            user = first if first is not None else _first_question(src, rng, p["lang"])
        else:
            user = _followup(src, rng, p["lang"])
        msgs.append({"role": "user", "content": user})
        ctoks = _tokens(rng, med if i == 0 else med * 0.6, 0.7, p["max_tokens"], 3)
        req = _chat(list(msgs), p["max_tokens"], temperature=p["temperature"])
        if src == "F" and rng.random() < 0.05:
            req["top_p"] = 0.95
        tr.emit(key, ts, label, kind, camp, req, ctoks)
        if conv is not None and 2 * i + 1 < len(conv):
            ans = conv[2 * i + 1]
        else:
            ans = _clip_words(_prose(rng, p["lang"], min(160, int(ctoks * 0.7) + 3)), 160)
        msgs.append({"role": "assistant", "content": ans})
        ts += 4 + ctoks / rng.uniform(30, 80) + _lognorm(rng, 35 if src == "E" else 70, 0.8)
    return ts


# --------------------------------------------------------------------------
# benign generators


def _b_chat_user(tr: Trace, rng: Random, key: str, kind: str = "chat_user", scale: float = 1.0,
                 label: str = "benign", camp: str | None = None, t_range=None, p: dict | None = None,
                 first_fn=None) -> None:
    p = p or _persona(tr, rng)
    start, end = t_range or _lifetime(rng, tr.t0, tr.t1)
    per_day = _lognorm(rng, 2.5 if tr.source == "E" else 3.0, 0.6) * scale
    mean_turns = rng.uniform(1.8, 3.8)
    long_ans = 1.0 if kind != "power_user" else 2.0
    t_free = start
    for ts in _arrivals(rng, tr.source, start, end, per_day, p["tz"], p["profile"]):
        ts = max(ts, t_free)
        n = min(14, 1 + int(rng.expovariate(1.0 / (mean_turns - 1 + 1e-9))))
        first = first_fn() if first_fn else None
        t_free = _session(tr, rng, key, label, kind, camp or key, ts, p, n, first=first, long_answers=long_ans)


def _b_power_user(tr: Trace, rng: Random, key: str) -> None:
    _b_chat_user(tr, rng, key, kind="power_user", scale=rng.uniform(3.0, 6.0))


SMB_E = [
    ("You are the customer service assistant of {biz}. Be polite, answer in the customer's language, never promise "
     "refunds above 50 EUR.", "Customer message: \"{msg}\"\nOrder number: {order}\nWrite a reply."),
    ("You write replies for {biz}'s reservation inbox. Keep it under 80 words.",
     "Guest wrote: {msg}\nRequested date: {date}, party of {n}. Draft the answer."),
    ("You help {biz} write property listings.", "Write a listing for: {msg}. {n} rooms, {m2} m², {city}."),
]
BIZ = ["Sakura Sweets", "Bäckerei Lind", "Casa Lola", "Hanoi Bikes", "Nordic Knit", "Studio Mori", "Le Petit Zinc",
       "Istanbul Grill", "Seoul Skin Lab", "Kraków Tours"]
SMB_F = [
    ("You are the assistant of the {biz} core facility. Produce methods text in journal style.",
     "Instrument: {inst}\nSettings: {msg}\nWrite the methods paragraph."),
    ("You format references for {biz}.", "Convert to APA 7: {msg}"),
]
FAC = ["Genomics", "Mass Spectrometry", "Cryo-EM", "Flow Cytometry", "Bioimaging"]
INST = ["Orbitrap Exploris 480", "NovaSeq 6000", "Titan Krios", "BD FACSymphony", "Zeiss LSM 980"]


def _b_smb_wrapper(tr: Trace, rng: Random, key: str) -> None:
    start, end = _lifetime(rng, tr.t0, tr.t1)
    tz = rng.choice([1.0, 0.0, 8.0, 9.0, 7.0, 3.0]) if tr.source == "E" else rng.choice([z for z, _ in F_TZ])
    if tr.source == "E":
        sysp, tmpl = rng.choice(SMB_E)
        sysp = sysp.format(biz=rng.choice(BIZ))
    else:
        sysp, tmpl = rng.choice(SMB_F)
        sysp = sysp.format(biz=rng.choice(FAC))
    mt, temp = rng.choice([256, 400, 512, 800]), rng.choice([0.3, 0.5, 0.7])
    per_day = _lognorm(rng, 40 if tr.source == "E" else 30, 0.7)
    prof = "consumer" if tr.source == "E" else "office"
    langs = [lg for lg in E_LANGS if lg != "english"]
    for ts in _arrivals(rng, tr.source, start, end, per_day, tz, prof):
        if tr.source == "E":
            lang = rng.choice(["english"] * 2 + langs[:6]) if rng.random() < 0.6 else rng.choice(langs)
            msg = (rng.choice(_utterances(lang)) if lang != "english" or rng.random() < 0.5
                   else _item_fill("E", rng, lang))
            user = tmpl.format(msg=msg, order=f"#{rng.randint(10000, 99999)}", date=f"2027-{rng.randint(1, 12):02d}-"
                               f"{rng.randint(1, 28):02d}", n=rng.randint(1, 9), m2=rng.randint(25, 180),
                               city=rng.choice(E_DOMAINS["travel"]))
        else:
            if "Instrument" in tmpl:
                msg = f"{rng.randint(1, 60)} min gradient, {rng.choice(['DDA', 'DIA', 'PE150', '300 kV'])}, " \
                      f"{rng.randint(2, 48)} samples, {_numbers(rng, 3, 50, 20, 1)}"
            else:
                msg = f"{rng.choice(['Smith J', 'Tanaka K', 'Müller A', 'Rossi L'])} et al. ({rng.randint(1995, 2026)}) " \
                      f"{rng.choice(F_DOMAINS[rng.choice(sorted(F_DOMAINS))])}. J. {rng.choice(['Chem', 'Biol', 'Phys'])} " \
                      f"{rng.randint(1, 200)}:{rng.randint(1, 900)}"
            user = tmpl.format(inst=rng.choice(INST), msg=msg)
        req = _chat([{"role": "system", "content": sysp}, {"role": "user", "content": user}], mt, temperature=temp)
        tr.emit(key, ts, "benign", "smb_wrapper", key, req, _tokens(rng, mt * 0.35, 0.5, mt, 5))


UI_STRINGS = ["Add to cart", "Your order has shipped", "Forgot password?", "Reset filters", "Delete account",
              "Payment failed, try again", "Free delivery from {n} EUR", "Only {n} left in stock", "Sign in",
              "Track your parcel", "Rate your experience", "Share with friends", "Dark mode", "Notifications"]


def _b_localization(tr: Trace, rng: Random, key: str) -> None:
    start, end = _lifetime(rng, tr.t0, tr.t1)
    tz = rng.choice([1.0, 8.0, 9.0, 0.0]) if tr.source == "E" else rng.choice([1.0, -5.0])
    targets = rng.sample([v for k, v in LANG_NAMES.items() if k != "english"], rng.randint(2, 8))
    instr = rng.choice(["Translate the following text into {lang}. Keep placeholders like {{n}} unchanged. Output only "
                        "the translation.", "You are a professional localizer. Target language: {lang}. Preserve "
                        "markup.", "Translate to {lang}:"])
    use_sys = rng.random() < 0.5
    jobs = _arrivals(rng, tr.source, start, end, _lognorm(rng, 2.0, 0.5), tz, "office")
    for j0 in jobs:
        n = int(_lognorm(rng, 120, 0.8))
        ts = j0
        for _ in range(min(n, 900)):
            u = rng.random()
            if tr.source == "F":
                text = rng.choice(_english_sentences()) if u < 0.6 else _clip_words(rng.choice(_licence_paragraphs()), 120)
            elif u < 0.35:
                text = rng.choice(UI_STRINGS).replace("{n}", str(rng.randint(2, 99)))
            elif u < 0.7:
                text = rng.choice(_english_sentences())
            else:
                text = rng.choice(_utterances(rng.choice(sorted(E_LANGS))))
            lang = rng.choice(targets)
            ins = instr.format(lang=lang)
            msgs = ([{"role": "system", "content": ins}, {"role": "user", "content": text}] if use_sys
                    else [{"role": "user", "content": f"{ins}\n\n{text}"}])
            mt = max(64, min(2048, len(text) // 2 + 64))
            tr.emit(key, ts, "benign", "localization_pipeline", key, _chat(msgs, mt, temperature=0),
                    _tokens(rng, len(text) / 3.2 + 2, 0.25, mt, 1))
            ts += _lognorm(rng, 0.9, 0.8)


def _b_ranking(tr: Trace, rng: Random, key: str) -> None:
    start, end = _lifetime(rng, tr.t0, tr.t1)
    tz = rng.choice([1.0, 8.0, -5.0, 0.0])
    style = rng.choice(["chat_yesno", "completion_choice", "chat_label"])
    top = rng.choice([1, 2, 5, 5, 10])
    batch_hour = rng.uniform(0, 24)
    labels = rng.sample(["positive", "negative", "neutral", "spam", "urgent", "refund", "question", "complaint",
                         "relevant", "irrelevant"], 4)
    day = 0
    while True:
        b0 = tr.t0 + day * DAY + ((batch_hour - tz) % 24) * HOUR + rng.uniform(-1800, 1800)
        day += 1
        if b0 > end:
            break
        if b0 < start or rng.random() < 0.15:
            continue
        ts = b0
        query = None
        for i in range(int(_lognorm(rng, 250, 0.7))):
            if tr.source == "E":
                doc = rng.choice(_utterances(rng.choice(sorted(E_LANGS)))) if rng.random() < 0.5 else \
                    _item_fill("E", rng, "english")
            else:
                doc = _clip_words(rng.choice(_docstrings())[1] if rng.random() < 0.6 else rng.choice(_english_sentences()), 150)
            if i % 20 == 0:
                query = _first_question(tr.source, rng, "english")
            if style == "chat_yesno":
                req = _chat([{"role": "user", "content": f"Query: {query}\nDocument: {doc}\nIs the document relevant "
                              f"to the query? Answer Yes or No."}], 1, temperature=0, logprobs=True, top_logprobs=top)
                ct = 1
            elif style == "chat_label":
                req = _chat([{"role": "system", "content": f"Classify into one of: {', '.join(labels)}. One word."},
                             {"role": "user", "content": doc}], 3, temperature=0, logprobs=True, top_logprobs=top)
                ct = rng.randint(1, 3)
            else:
                req = {"prompt": f"Passage: {doc}\nQuestion: {query}\nAnswer (A/B/C/D):", "max_tokens": 1,
                       "temperature": 0, "logprobs": min(top, 5)}
                ct = 1
            tr.emit(key, ts, "benign", "ranking_job", key, req, ct)
            ts += _lognorm(rng, 0.35, 0.6)


def _bench_items(tr: Trace, rng: Random, n: int) -> list[tuple[str, int]]:
    items = []
    for _ in range(n):
        if tr.source == "E":
            lang = rng.choice(sorted(E_LANGS))
            q = rng.choice(_questions(lang)) if rng.random() < 0.5 else _item_fill("E", rng, lang)
            items.append((q, rng.choice([16, 64, 256])))
        else:
            u = rng.random()
            if u < 0.4:
                a, b = rng.randint(10, 999), rng.randint(10, 999)
                items.append((f"Q: What is {a} * {b} - {rng.randint(1, 99)}? Answer with a number only.\nA:", 16))
            elif u < 0.7:
                qual, doc = rng.choice(_docstrings())
                items.append((f"Write a Python function using {qual} that satisfies:\n{_clip_words(doc, 80)}\n"
                              f"Return only code.", 512))
            else:
                items.append((f"Multiple choice. {_f_question(rng)}\nA) yes B) no C) insufficient data D) both\n"
                              f"Answer with one letter.", 4))
    return items


def _b_eval_runner(tr: Trace, rng: Random, key: str) -> None:
    start, end = _lifetime(rng, tr.t0, tr.t1)
    items = _bench_items(tr, rng, int(_lognorm(rng, 150, 0.6)))
    fmt = rng.choice(["chat", "chat", "completion"])
    k = rng.choice([1, 1, 1, 5, 10]) if tr.source == "F" else 1
    tz = rng.choice([1.0, -5.0, 8.0, 9.0])
    runs = _arrivals(rng, tr.source, start, end, _lognorm(rng, 1.5, 0.5), tz, "lab")
    sysp = rng.choice(["Answer the question.", "You are being evaluated. Be concise.", None])
    for r0 in runs:
        ts = r0
        conc = rng.choice([0.05, 0.2, 0.6])
        for q, mt in items:
            if fmt == "completion":
                req = {"prompt": q, "max_tokens": mt, "temperature": 0 if k == 1 else 0.8, "stop": ["\n\n"]}
            else:
                msgs = ([{"role": "system", "content": sysp}] if sysp else []) + [{"role": "user", "content": q}]
                req = _chat(msgs, mt, temperature=0 if k == 1 else 0.8)
            if k > 1:
                req["n"] = k
            tr.emit(key, ts, "benign", "eval_runner", key, req, _tokens(rng, mt * 0.4 * k, 0.6, mt * k))
            ts += _lognorm(rng, conc, 0.7)


TOOLS_E = {
    "shop": [("search_products", {"query": "string", "max_price": "number"}), ("get_order_status", {"order_id": "string"}),
             ("create_return", {"order_id": "string", "reason": "string"})],
    "travel": [("search_flights", {"origin": "string", "destination": "string", "date": "string"}),
               ("get_weather", {"city": "string"}), ("book_hotel", {"city": "string", "nights": "integer"})],
    "calendar": [("list_events", {"day": "string"}), ("create_event", {"title": "string", "start": "string"}),
                 ("send_email", {"to": "string", "body": "string"})],
}
TOOLS_F = {
    "analysis": [("run_python", {"code": "string"}), ("read_file", {"path": "string"}),
                 ("search_papers", {"query": "string", "year_from": "integer"})],
    "lims": [("query_samples", {"project": "string"}), ("get_protocol", {"name": "string"}),
             ("fetch_dataset", {"accession": "string"})],
}


def _tool_defs(spec: list) -> list[dict]:
    return [{"type": "function", "function": {"name": n, "description": n.replace("_", " ").capitalize() + ".",
             "parameters": {"type": "object", "properties": {a: {"type": t} for a, t in args.items()},
                            "required": list(args)[:1]}}} for n, args in spec]


def _episode(tr: Trace, rng: Random, key: str, label: str, kind: str, camp: str, ts: float, spec: list,
             sysp: str, task: str, steps: int, mt: int, gap: float, temp=None) -> float:
    tools = _tool_defs(spec)
    msgs = [{"role": "system", "content": sysp}, {"role": "user", "content": task}]
    for s in range(steps + 1):
        req = _chat(list(msgs), mt, tools=tools, temperature=temp)
        if s < steps:
            name, args = rng.choice(spec)
            ctoks = _tokens(rng, 40, 0.4, mt, 8)
            tr.emit(key, ts, label, kind, camp, req, ctoks)
            cid = "call_" + _digest(key, ts, s)[:20]
            argv = {a: (rng.randint(1, 9) if t in ("integer", "number") else _clip_words(task, 6)) for a, t in args.items()}
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(argv)}}]})
            result = json.dumps({"status": "ok", "items": [_clip_words(_prose(rng, "english", 12), 12)
                                                          for _ in range(rng.randint(1, 3))]})
            msgs.append({"role": "tool", "tool_call_id": cid, "content": result})
            ts += _lognorm(rng, gap, 0.6)
        else:
            tr.emit(key, ts, label, kind, camp, req, _tokens(rng, 180, 0.6, mt, 10))
            ts += _lognorm(rng, gap, 0.6)
    return ts


def _b_agent_product(tr: Trace, rng: Random, key: str) -> None:
    start, end = _lifetime(rng, tr.t0, tr.t1)
    tools = TOOLS_E if tr.source == "E" else TOOLS_F
    name = rng.choice(sorted(tools))
    spec = tools[name]
    sysp = f"You are the {name} assistant of our app. Use the tools. Today is 2027-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}."
    tz = rng.choice([1.0, 8.0, 9.0, 0.0]) if tr.source == "E" else rng.choice([1.0, -5.0, 8.0])
    mt = rng.choice([512, 1024])
    for ts in _arrivals(rng, tr.source, start, end, _lognorm(rng, 25, 0.7), tz,
                        "consumer" if tr.source == "E" else "lab"):
        lang = rng.choice(sorted(E_LANGS)) if tr.source == "E" else "english"
        task = _first_question(tr.source, rng, lang) if rng.random() < 0.5 else \
            f"{rng.choice(_utterances(lang))} ({name})"
        _episode(tr, rng, key, "benign", "agent_product", key, ts, spec, sysp, task, rng.choice([1, 1, 2, 3]), mt, 2.0)


LABEL_TEMPLATES_E = ["Label the customer message with intent (one of: {labels}) and sentiment. Return JSON "
                     "{{\"intent\": ..., \"sentiment\": ...}}.\n\nMessage: {item}",
                     "Is this text toxic, spam or fine? Language may vary. Reply as JSON.\n\n{item}"]
LABEL_TEMPLATES_F = ["Annotate the abstract with study type ({labels}) and organism. JSON only.\n\nAbstract: {item}",
                     "Extract all numeric measurements with units from this text as JSON.\n\n{item}"]


def _b_labelling_team(tr: Trace, keys: list[str], team_seed: str) -> None:
    trng = _rng(team_seed)
    tz = trng.choice([1.0, 5.5, 8.0, 7.0]) if tr.source == "E" else trng.choice([-5.0, 1.0, 8.0])
    tmpl = trng.choice(LABEL_TEMPLATES_E if tr.source == "E" else LABEL_TEMPLATES_F)
    labels = ", ".join(trng.sample(["order", "refund", "delivery", "account", "praise", "bug", "other", "trial",
                                    "cohort", "in-vitro", "review", "meta-analysis"], 5))
    mt = trng.choice([64, 128, 200])
    team_start = tr.t0 if trng.random() < 0.8 else tr.t0 + trng.uniform(0, 0.5) * (tr.t1 - tr.t0)
    for k in keys:
        rng = _rng(team_seed, k)
        start = max(team_start, tr.t0 if rng.random() < 0.8 else tr.t0 + rng.uniform(0, 0.7) * (tr.t1 - tr.t0))
        end = tr.t1 if rng.random() < 0.9 else start + rng.uniform(0.2, 0.7) * (tr.t1 - start)
        per_day = _lognorm(rng, 120, 0.5)
        for ts in _arrivals(rng, tr.source, start, end, per_day, tz, "office"):
            if tr.source == "E":
                item = rng.choice(_utterances(rng.choice(sorted(E_LANGS))))
            else:
                qual, doc = rng.choice(_docstrings())
                item = (f"We study {rng.choice(F_DOMAINS[rng.choice(sorted(F_DOMAINS))])} using `{qual}`. "
                        f"{_clip_words(doc, 50)} Measured values: {_numbers(rng, rng.randint(3, 8), 40, 15)} "
                        f"({rng.choice(['mM', 'ms', 'µm', 'kDa', '%'])}), n = {rng.randint(6, 400)}.")
            req = _chat([{"role": "user", "content": tmpl.format(labels=labels, item=item)}], mt, temperature=0,
                        response_format={"type": "json_object"})
            tr.emit(k, ts, "benign", "labelling_team", k, req, _tokens(rng, 28, 0.4, mt, 5))


def _b_shared_lab(tr: Trace, rng: Random, key: str) -> None:
    start, end = _lifetime(rng, tr.t0, tr.t1)
    for i in range(rng.randint(3, 9)):
        prng = _rng(key, "persona", i)
        p = _persona(tr, prng)
        if tr.source == "E" and prng.random() < 0.5:
            p["profile"] = "office"
        _b_chat_user(tr, prng, key, kind="shared_lab_key", scale=prng.uniform(0.7, 2.0), t_range=(start, end), p=p)
    if tr.source == "F" and rng.random() < 0.5:
        _b_notebook(tr, _rng(key, "nb"), key, kind="shared_lab_key", t_range=(start, end))


def _b_notebook(tr: Trace, rng: Random, key: str, kind: str = "notebook_session", t_range=None) -> None:
    start, end = t_range or _lifetime(rng, tr.t0, tr.t1)
    tz = rng.choices([z for z, _ in F_TZ], [w for _, w in F_TZ])[0]
    mt = rng.choice([1024, 2048, 4096])
    for s0 in _arrivals(rng, tr.source, start, end, _lognorm(rng, 2.5, 0.5), tz, "lab"):
        ts = s0
        qual, doc = rng.choice(_docstrings())
        code = (f"import {qual.split('.')[0]}\n\ndef analyse(df):\n    # {_clip_words(doc, 25)}\n"
                f"    return {qual}(df['{rng.choice(['value', 'od600', 'counts', 'signal'])}'])\n")
        base = rng.choice(["Why does this fail?", "Optimise this cell.", "Add docstrings and type hints.",
                           "Explain the output."])
        prompt = f"```python\n{code}```\n{base}"
        for _ in range(int(_lognorm(rng, 6, 0.6))):
            u = rng.random()
            if u < 0.35:
                pass  # identical re-run of the cell
            elif u < 0.75:
                prompt = f"```python\n{code}```\n{base} Traceback: {rng.choice(ERRORS)} at line {rng.randint(2, 40)}"
            else:
                code += f"    # tweak {rng.randint(1, 99)}\n"
                prompt = f"```python\n{code}```\n{base}"
            req = _chat([{"role": "user", "content": prompt}], mt, temperature=0)
            tr.emit(key, ts, "benign", kind, key, req, _tokens(rng, 420, 0.6, mt, 20))
            ts += _lognorm(rng, 90, 1.0)


def _b_grant(tr: Trace, rng: Random, key: str) -> None:
    start, end = _lifetime(rng, tr.t0, tr.t1)
    tz = rng.choices([z for z, _ in F_TZ], [w for _, w in F_TZ])[0]
    p = {"lang": "english", "tz": tz, "profile": "lab", "client": "web", "max_tokens": rng.choice([2048, 4096]),
         "temperature": 0.7, "system": True}
    deadline = start + rng.uniform(0.3, 1.0) * (end - start)
    _b_chat_user(tr, rng, key, kind="grant_deadline", scale=0.6, t_range=(start, end), p=p)
    b0 = max(start, deadline - rng.uniform(6, 20) * HOUR)

    def doc_q() -> str:
        para = rng.choice(_licence_paragraphs()) if rng.random() < 0.3 else _prose(rng, "english", 250)
        return (f"{rng.choice(['Tighten this', 'Rewrite for reviewers', 'Shorten to 200 words', 'Check the logic of'])}"
                f" ({rng.choice(['Specific Aims', 'Data Management Plan', 'Broader Impacts', 'Budget justification'])}):"
                f"\n\n{para}")
    _b_chat_user(tr, rng, key, kind="grant_deadline", scale=rng.uniform(25, 60), t_range=(b0, min(end, deadline)),
                 p=dict(p, profile="flat"), first_fn=doc_q)


# --------------------------------------------------------------------------
# campaigns


def _filler(tr: Trace, rng: Random) -> dict:
    lang = rng.choice(sorted(E_LANGS)) if tr.source == "E" else "english"
    return _chat([{"role": "user", "content": _first_question(tr.source, rng, lang)}], rng.choice([256, 512, 1024]))


class Camp:
    def __init__(self, tr: Trace, kind: str, idx: int):
        self.tr, self.kind = tr, kind
        self.id = f"{tr.source}-{kind}-{idx}"
        self.rng = _rng(tr.source, tr.seed, "campaign", kind, idx)
        self.key = _key(tr.source, tr.seed, self.id, 0)
        dur = tr.t1 - tr.t0
        self.start = tr.t0 + self.rng.uniform(0.0, 0.6) * dur
        self.end = min(tr.t1, self.start + self.rng.uniform(0.3, 1.0) * dur)
        self.filler = self.rng.uniform(0.0, 0.3)
        self.plan = _plan(tr.source, self.rng)
        self.pi = 0
        self.lang = "english"

    def item(self) -> tuple[str, str, str]:
        it = self.plan[self.pi % len(self.plan)]
        self.pi += 1
        return it

    def emit(self, ts: float, req: dict, ctoks: int, key: str | None = None) -> None:
        k = key or self.key
        if self.rng.random() < self.filler:
            f = _filler(self.tr, self.rng)
            self.tr.emit(k, ts - self.rng.uniform(1, 30), self.kind, self.kind, self.id, f,
                         _tokens(self.rng, 200, 0.6, f["max_tokens"]))
        self.tr.emit(k, ts, self.kind, self.kind, self.id, req, ctoks)

    def steady(self, per_hour: float, jitter: float = 0.8, night: float = 1.0):
        """Machine pacing with optional night slow-down; yields timestamps."""
        ts = self.start
        tz = self.rng.choice([0.0, 1.0, 8.0, -5.0])
        while ts < self.end:
            yield ts
            gap = _lognorm(self.rng, HOUR / per_hour, jitter)
            hour, _ = _local(ts, tz)
            if hour < 7:
                gap /= max(0.05, night)
            ts += gap


def _c_templated(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    tmpl = r.choice(["Write a comprehensive explanation of {item} ({domain}), covering {aspect}. Use headings.",
                     "Topic: {item}\nArea: {domain}\nFocus: {aspect}\nWrite an expert answer of at least 600 words.",
                     "You are an expert in {domain}. Explain {item}: {aspect}."])
    sysp = r.choice([None, "You are a world-class expert. Answer completely."])
    mt, temp = r.choice([1024, 2048, 4096]), r.choice([0, 0.7, 1.0])
    lang = r.choice(["german", "japanese", "french", "chinese"]) if src == "E" and r.random() < 0.4 else None
    for ts in c.steady(r.uniform(8, 70), jitter=r.uniform(0.2, 0.9), night=r.uniform(0.6, 1.0)):
        d, it, a = c.item()
        u = tmpl.format(item=it, domain=d, aspect=a)
        if lang:
            u += f" Answer in {LANG_NAMES[lang]}."
        msgs = ([{"role": "system", "content": sysp}] if sysp else []) + [{"role": "user", "content": u}]
        c.emit(ts, _chat(msgs, mt, temperature=temp), _tokens(r, mt * 0.55, 0.35, mt, 50))


def _c_paraphrased(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    mt = r.choice([1024, 2048])
    langs = (sorted(PARA_E) if r.random() < 0.6 else ["english"]) if src == "E" else ["english"]
    p = {"tz": r.choice([1.0, 8.0, 0.0]), "profile": "consumer" if src == "E" else "lab"}
    for ts in _arrivals(r, src, c.start, c.end, r.uniform(150, 500), p["tz"], p["profile"]):
        d, it, a = c.item()
        if src == "E":
            op, ask, cl = PARA_E[r.choice(langs)]
        else:
            op, ask, cl = PARA_F
        u = " ".join(x for x in (r.choice(op), r.choice(ask).format(item=it, aspect=a, domain=d), r.choice(cl)) if x)
        req = _chat([{"role": "user", "content": u}], r.choice([mt, mt, 4096]), temperature=r.choice([None, 0.7, 1.0]))
        c.emit(ts, req, _tokens(r, 700, 0.5, req["max_tokens"], 30))


def _problem(r: Random, src: str) -> str:
    u = r.random()
    if u < 0.35:
        a, b, c = r.randint(2, 40), r.randint(2, 40), r.randint(50, 900)
        return r.choice([f"A train leaves at {a}:00 at {b * 3} km/h; another leaves {b % 5 + 1} h later at {a * 4} km/h. "
                         f"When does the second catch up if the track is {c} km?",
                         f"How many integers between 1 and {c * 10} are divisible by {a} or {b} but not both?",
                         f"A shop discounts {a}% then adds {b}% tax on {c} EUR. Final price?"])
    if u < 0.6:
        return f"Evaluate {_formula(r)}."
    if u < 0.8:
        n = r.randint(3, 6)
        names = r.sample(["Ana", "Ben", "Chen", "Dara", "Emil", "Fumi", "Gita", "Hugo"], n)
        return (f"{', '.join(names)} sit in a row. {names[0]} is not next to {names[1]}; {names[-1]} is at an end. "
                f"How many arrangements are possible?")
    if src == "F":
        return f"Prove or disprove: {r.choice(['every', 'some'])} {_formula(r)} is bounded by {r.randint(2, 99)}."
    return f"Is it cheaper to {r.choice(['rent', 'lease', 'buy'])} a car for {r.randint(1, 6)} years at " \
           f"{r.randint(150, 600)} EUR/month or pay {r.randint(8, 40)}k upfront? Reason it out."


def _c_reasoning(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    instr = r.choice(["Solve step by step. Show all of your reasoning before giving the final answer.",
                      "Think carefully and write out your full chain of reasoning, then the answer in a box.",
                      "Explain every intermediate step; do not skip anything."])
    mt = r.choice([2048, 4096, 8192])
    nn = r.choice([1, 1, 2, 4])
    for ts in c.steady(r.uniform(5, 40), jitter=r.uniform(0.3, 1.0)):
        pr = _problem(r, src)
        if src == "E" and r.random() < 0.3:
            pr += f" ({LANG_NAMES[r.choice(sorted(PARA_E))]})"
        req = _chat([{"role": "user", "content": f"{pr}\n\n{instr}"}], mt, temperature=0.8 if nn > 1 else
                    r.choice([0, 0.6]), n=nn if nn > 1 else None)
        c.emit(ts, req, _tokens(r, 1400 * nn, 0.5, mt * nn, 200))


def _c_rubric(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    crit = r.sample(["helpfulness", "correctness", "harmlessness", "conciseness", "style", "honesty", "reasoning"], 4)
    pairwise = r.random() < 0.5
    js = r.random() < 0.6
    mt = r.choice([512, 1024])
    for ts in c.steady(r.uniform(8, 80), jitter=r.uniform(0.3, 0.9)):
        lang = r.choice(sorted(E_LANGS)) if src == "E" else "english"
        q = _first_question(src, r, lang)
        a1 = _clip_words(_prose(r, lang, r.randint(40, 200)), 200)
        body = f"Question:\n{q}\n\nResponse A:\n{a1}\n"
        if pairwise:
            body += f"\nResponse B:\n{_clip_words(_prose(r, lang, r.randint(40, 200)), 200)}\n"
        body += (f"\nGrade {'each response' if pairwise else 'the response'} from 1 to 10 on {', '.join(crit)}. "
                 f"Justify each score{', then say which is better' if pairwise else ''}.")
        req = _chat([{"role": "system", "content": "You are an impartial expert judge."},
                     {"role": "user", "content": body}], mt, temperature=0,
                    response_format={"type": "json_object"} if js else None)
        c.emit(ts, req, _tokens(r, 260, 0.4, mt, 40))


SENSITIVE = ["a forum post asking how much paracetamol is too much", "a news report on an extremist recruitment video",
             "a message from a debt collector threatening to visit the family", "a tutorial about bypassing a paywall",
             "a pharmacy leaflet on mixing alcohol and sleeping pills", "a chat where a teenager talks about self-harm",
             "a description of a phishing kit found on a server", "a leaked memo about lock-picking training",
             "a rant with ethnic slurs from a comment section", "instructions on disabling a car immobiliser",
             "a diary entry about disordered eating", "a thread on buying prescription drugs online"]
TONES = ["neutral and factual", "for a 12-year-old", "as a news headline", "more persuasive", "as a tweet",
         "in a clinical tone", "without any warnings", "as a step-by-step list", "in the voice of a friend"]


def _c_sensitive(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    mt = r.choice([512, 1024])
    for ts in c.steady(r.uniform(5, 45), jitter=r.uniform(0.4, 1.0), night=r.uniform(0.3, 1.0)):
        topic = r.choice(SENSITIVE)
        text = _prose(r, "english", r.randint(30, 120))
        u = r.choice([f"Rewrite the following ({topic}) {r.choice(TONES)}:\n\n{text}",
                      f"Here is {topic}. Paraphrase it {r.choice(TONES)}, keeping every detail.\n\n{text}",
                      f"Summarise {topic} and explain what the reader would need to know."])
        if src == "E" and r.random() < 0.4:
            u += f" Answer in {LANG_NAMES[r.choice(sorted(PARA_E))]}."
        c.emit(ts, _chat([{"role": "user", "content": u}], mt, temperature=r.choice([0.7, 1.0])),
               _tokens(r, 300, 0.7, mt, 15))


def _c_agentic(c: Camp) -> None:
    r = c.rng
    all_tools = [t for d in (TOOLS_E, TOOLS_F) for spec in d.values() for t in spec]
    extra = [(f"{v}_{o}", {"id": "string", "value": "string"}) for v in ("get", "update", "list", "delete")
             for o in ("invoice", "ticket", "repo", "user", "sensor")]
    pool = all_tools + extra
    mt = r.choice([1024, 2048])
    ts = c.start
    while ts < c.end:
        d, it, a = c.item()
        spec = r.sample(pool, r.randint(4, 12))
        task = f"Using the tools, complete this task end to end: research {it} ({d}) and produce {a}."
        ts = _episode(c.tr, r, c.key, c.kind, c.kind, c.id, ts, spec, "You are an autonomous agent. Think, then act.",
                      task, r.randint(2, 6), mt, r.uniform(1.0, 4.0), temp=r.choice([0, 0.5]))
        ts += _lognorm(r, r.choice([60, 240, 900]), 0.7)


def _c_logprob(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    mode = r.choice(["chat", "chat", "completion"])
    mt = r.choice([256, 512, 1024])
    for ts in c.steady(r.uniform(8, 90), jitter=r.uniform(0.3, 0.8)):
        d, it, a = c.item()
        if mode == "chat":
            req = _chat([{"role": "user", "content": f"{it} ({d}): {a}"}], mt, temperature=r.choice([0, 1.0]),
                        logprobs=True, top_logprobs=20)
            c.emit(ts, req, _tokens(r, mt * 0.7, 0.3, mt, 20))
        else:
            pre = (_clip_words(r.choice(_docstrings())[1], 200) if src == "F"
                   else _prose(r, r.choice(sorted(E_LANGS)), 80))
            req = {"prompt": pre + "\n" + it, "max_tokens": mt, "temperature": 1.0, "logprobs": 5}
            c.emit(ts, req, _tokens(r, mt * 0.8, 0.2, mt, 20))


def _c_hydra(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    n_keys = r.randint(50, 80)
    t_create = c.start
    window = r.uniform(2, 6) * HOUR
    tmpls = ["Explain {item} - {aspect}.", "{item}: {aspect}, please.", "Tell me about {item} ({domain}), {aspect}.",
             "I'd like {aspect} on {item}."]
    mt = r.choice([1024, 2048])
    for k in range(n_keys):
        key = _key(src, c.tr.seed, c.id, k)
        kr = _rng(c.id, k)
        t = t_create + kr.uniform(0, window)
        tmpl = kr.choice(tmpls)
        lang = kr.choice(sorted(PARA_E)) if src == "E" and kr.random() < 0.3 else None
        for _ in range(kr.randint(5, 25)):
            d, it, a = c.item()
            u = tmpl.format(item=it, aspect=a, domain=d) + (f" ({LANG_NAMES[lang]})" if lang else "")
            if kr.random() < c.filler:
                f = _filler(c.tr, kr)
                c.tr.emit(key, t, c.kind, c.kind, c.id, f, _tokens(kr, 200, 0.6, f["max_tokens"]))
                t += _lognorm(kr, 40, 0.8)
            c.tr.emit(key, t, c.kind, c.kind, c.id, _chat([{"role": "user", "content": u}], mt,
                                                          temperature=kr.choice([None, 0.7])),
                      _tokens(kr, 650, 0.5, mt, 30))
            t += _lognorm(kr, kr.choice([20, 60, 240]), 0.8)


def _c_natural_hv(c: Camp) -> None:
    r = c.rng
    p = _persona(c.tr, r)

    def first() -> str:
        d, it, a = c.item()
        return f"{it}: {a}?" if r.random() < 0.5 else _first_question(c.tr.source, r, p["lang"])
    _b_chat_user(c.tr, r, c.key, kind=c.kind, scale=r.uniform(9, 13), label=c.kind, camp=c.id,
                 t_range=(c.start, c.tr.t1), p=p, first_fn=first)


def _c_slow_mimic(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    p = _persona(c.tr, r)
    p["max_tokens"] = max(p["max_tokens"], 1024)
    langs = sorted(PARA_E) if src == "E" else ["english"]
    # a multi-week harvest: already running when the trace starts
    start, end = c.tr.t0, c.tr.t1

    def first() -> str:
        d, it, a = c.item()
        if src == "E":
            op, ask, cl = PARA_E[p["lang"] if p["lang"] in PARA_E else r.choice(langs)]
        else:
            op, ask, cl = PARA_F
        return " ".join(x for x in (r.choice(op), r.choice(ask).format(item=it, aspect=a, domain=d), r.choice(cl)) if x)
    _b_chat_user(c.tr, r, c.key, kind=c.kind, scale=r.uniform(2.0, 4.0), label=c.kind, camp=c.id,
                 t_range=(start, end), p=p, first_fn=first)


def _c_key_rotation(c: Camp) -> None:
    r, src = c.rng, c.tr.source
    ts, k = c.start, 0
    while ts < c.end:
        key = _key(src, c.tr.seed, c.id, k)
        kr = _rng(c.id, "rot", k)
        k += 1
        dress = kr.choice(["translate", "wrapper", "scorer"])
        lang = kr.choice([v for x, v in LANG_NAMES.items() if x != "english"])
        sysp = {"translate": f"You are a localization engine. Render the text in {lang}, fully and fluently.",
                "wrapper": f"You are the help-desk assistant of {kr.choice(BIZ)}. Answer the customer thoroughly.",
                "scorer": "Answer the question, then rate your confidence."}[dress]
        mt = kr.choice([512, 1024, 2048])
        for _ in range(kr.randint(20, 60)):
            d, it, a = c.item()
            if dress == "translate":
                u = f"{it} -- {a}. Write the full explanation."
                req = _chat([{"role": "system", "content": sysp}, {"role": "user", "content": u}], mt, temperature=0)
            elif dress == "wrapper":
                u = f"Customer message: \"Hi, can you tell me about {it}? I need {a}.\"\nWrite a reply."
                req = _chat([{"role": "system", "content": sysp}, {"role": "user", "content": u}], mt, temperature=0.5)
            else:
                req = _chat([{"role": "system", "content": sysp}, {"role": "user", "content": f"{it} ({d}): {a}"}],
                            mt, temperature=0, logprobs=True, top_logprobs=kr.choice([5, 10]))
            c.emit(ts, req, _tokens(kr, mt * 0.6, 0.35, mt, 30), key=key)
            ts += _lognorm(kr, kr.choice([2, 8, 30]), 0.7)
        ts += _lognorm(r, r.choice([300, 1800, 7200]), 0.8)


CAMPAIGN_FN = {
    "templated_coverage": _c_templated, "paraphrased_coverage": _c_paraphrased,
    "reasoning_elicitation": _c_reasoning, "rubric_grading": _c_rubric, "sensitive_rewrites": _c_sensitive,
    "agentic_traces": _c_agentic, "logprob_harvest": _c_logprob, "thin_hydra": _c_hydra,
    "natural_high_volume": _c_natural_hv, "slow_mimic": _c_slow_mimic, "key_rotation": _c_key_rotation,
}
BENIGN_FN = {
    "chat_user": _b_chat_user, "smb_wrapper": _b_smb_wrapper, "localization_pipeline": _b_localization,
    "ranking_job": _b_ranking, "eval_runner": _b_eval_runner, "agent_product": _b_agent_product,
    "power_user": _b_power_user, "shared_lab_key": _b_shared_lab, "notebook_session": _b_notebook,
    "grant_deadline": _b_grant,
}


def _allocate(source: str, n: int) -> list[str]:
    mix = BENIGN_MIX[source]
    tot = sum(mix.values())
    raw = {k: n * v / tot for k, v in mix.items()}
    cnt = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (cnt[k] - raw[k], k))[: n - sum(cnt.values())]:
        cnt[k] += 1
    return [k for k in mix for _ in range(cnt[k])]


# --------------------------------------------------------------------------
# public API


def generate(source: str, seed: int, days: float = 2.0, n_benign: int = 150,
             campaigns: tuple[str, ...] | None = None, benign_only: bool = False) -> list[dict]:
    """Return the trace rows of owner ``source`` ("E" or "F") in time order."""
    if source not in ("E", "F"):
        raise ValueError(f"source must be 'E' or 'F', not {source!r}")
    tr = Trace(source, seed, days)
    kinds = _allocate(source, n_benign)
    team: list[str] = []
    team_no = 0
    for i, kind in enumerate(kinds):
        key = _key(source, seed, "benign", i)
        if kind == "labelling_team":
            team.append(key)
            rest = kinds[i + 1:].count("labelling_team")
            size = _rng(source, seed, "teamsize", team_no).randint(4, 12)
            if len(team) >= size and rest >= 4 or rest == 0:
                _b_labelling_team(tr, team, f"{source}|{seed}|team|{team_no}")
                team, team_no = [], team_no + 1
            continue
        BENIGN_FN[kind](tr, _rng(source, seed, "benign", i, kind), key)
    if not benign_only:
        for kind in campaigns if campaigns is not None else CAMPAIGN_KINDS:
            if kind not in CAMPAIGN_FN:
                raise ValueError(f"unknown campaign kind {kind!r}")
            for idx in range(1 if kind == "thin_hydra" else 2):
                CAMPAIGN_FN[kind](Camp(tr, kind, idx))
    rows = tr.rows
    for j, row in enumerate(rows):
        row["_j"] = j
    rows.sort(key=lambda x: (x["ts"], x["key"], x["_j"]))
    for row in rows:
        del row["_j"]
    return rows


# --------------------------------------------------------------------------
# checks and CLI

_CHAT_ROLES = {"system", "user", "assistant", "tool"}
_OPTIONAL = {"temperature", "top_p", "logprobs", "top_logprobs", "n", "stop", "response_format", "tools"}


def _check_row(row: dict) -> None:
    assert set(row) == {"key", "ts", "label", "kind", "campaign", "request", "completion_tokens"}, row.keys()
    assert isinstance(row["key"], str) and ":" not in row["key"] and row["key"]
    assert isinstance(row["ts"], float)
    req = row["request"]
    assert isinstance(req.get("max_tokens"), int) and req["max_tokens"] >= 1
    assert isinstance(row["completion_tokens"], int)
    assert 0 <= row["completion_tokens"] <= req["max_tokens"] * req.get("n", 1)
    if row["label"] == "benign":
        assert row["campaign"] == row["key"]
    else:
        assert row["label"] == row["kind"] in CAMPAIGN_KINDS
    if "messages" in req:
        assert set(req) <= {"messages", "max_tokens"} | _OPTIONAL, set(req)
        assert req["messages"] and req["messages"][-1]["role"] in ("user", "tool")
        ids = set()
        for m in req["messages"]:
            assert m["role"] in _CHAT_ROLES
            for tc in m.get("tool_calls") or []:
                ids.add(tc["id"])
            if m["role"] == "tool":
                assert m["tool_call_id"] in ids
        if "logprobs" in req:
            assert isinstance(req["logprobs"], bool)
    else:
        assert isinstance(req.get("prompt"), str)
        assert set(req) <= {"prompt", "max_tokens"} | _OPTIONAL - {"tools", "response_format", "top_logprobs"}
        if "logprobs" in req:
            assert isinstance(req["logprobs"], int) and not isinstance(req["logprobs"], bool)


def _check() -> None:
    for src in ("E", "F"):
        t = time.perf_counter()
        a = generate(src, 3, days=3.0)
        dt = time.perf_counter() - t
        b = generate(src, 3, days=3.0)
        assert json.dumps(a) == json.dumps(b), "not deterministic"
        c = generate(src, 4, days=3.0)
        assert json.dumps(a) != json.dumps(c), "seed has no effect"
        ts = [r["ts"] for r in a]
        assert ts == sorted(ts) and ts[0] >= T0 and ts[-1] < T0 + 3 * DAY
        for r in a:
            _check_row(r)
        kinds = Counter(r["kind"] for r in a if r["label"] != "benign")
        assert set(kinds) == set(CAMPAIGN_KINDS), set(CAMPAIGN_KINDS) - set(kinds)
        inst = Counter()
        for r in a:
            if r["label"] != "benign":
                inst[(r["kind"], r["campaign"])] += 1
        per_kind = Counter(k for k, _ in inst)
        assert all(per_kind[k] == (1 if k == "thin_hydra" else 2) for k in CAMPAIGN_KINDS), per_kind
        hydra = {r["key"] for r in a if r["kind"] == "thin_hydra"}
        assert 50 <= len(hydra) <= 80, len(hydra)
        bo = generate(src, 3, days=3.0, benign_only=True)
        assert all(r["label"] == "benign" for r in bo)
        assert json.dumps(bo) == json.dumps([r for r in a if r["label"] == "benign"]), "benign depends on campaigns"
        firsts: dict[str, float] = {}
        for r in bo:
            firsts.setdefault(r["key"], r["ts"])
        late = sum(1 for v in firsts.values() if v > T0 + 0.5 * DAY)
        assert late >= 5, late
        print(f"check {src}: {len(a)} rows, {len(firsts)} benign keys ({late} first seen after 12 h), "
              f"{dt:.2f} s per 3-day trace: ok")
    print("all checks passed")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", choices=["E", "F"], default="E")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--n-benign", type=int, default=150)
    ap.add_argument("--benign-only", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    if args.check:
        _check()
        return 0
    t = time.perf_counter()
    rows = generate(args.source, args.seed, days=args.days, n_benign=args.n_benign, benign_only=args.benign_only)
    dt = time.perf_counter() - t
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    by_kind = Counter((r["label"] == "benign", r["kind"]) for r in rows)
    keys: dict[tuple, set] = {}
    for r in rows:
        keys.setdefault((r["label"] == "benign", r["kind"]), set()).add(r["key"])
    print(f"source {args.source} seed {args.seed} days {args.days}: {len(rows)} rows, "
          f"{len({r['key'] for r in rows})} keys, {dt:.2f} s")
    for (ben, kind), n in sorted(by_kind.items(), key=lambda x: (not x[0][0], x[0][1])):
        print(f"  {'benign  ' if ben else 'campaign'} {kind:24s} {n:7d} rows {len(keys[(ben, kind)]):5d} keys")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The bundled lm-eval tasks' data, built from the bundled corpora.

`python -m distill.evaluation.build_tasks` rewrites `bundled_tasks/*.jsonl`; the shipped files are its output
(a test rebuilds them and compares). Both tasks are 4-way multiple choice (chance 25%):

- `distill_shakespeare_next_line`: four lines of a play, then which of four lines comes next. Every document is
  taken from inside one sequence that the default data split holds out (`data.path: shakespeare`, `seq_len`
  256, `seed` 0, `heldout_fraction` 0.05: the demo's split), so a run on that split never trained on it; the three
  wrong lines come from other held-out sequences, with about as many words as the right one.
- `distill_chatterbot_qa`: a question from the chatterbot-corpus (English), then which of four answers the corpus
  gives to it; the wrong answers are answers to questions of other categories. Out of domain for a Shakespeare
  student. `distill generate --prompts chatterbot` asks these questions (the answers it trains on are the
  teacher's, not the corpus's).
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

BUNDLED_DIR = Path(__file__).with_name("bundled_tasks")
DOCS = 200  # per task: a ±3.5-point standard error at 50% accuracy
CHOICES = 4


def _verse(line: str) -> bool:
    """A line worth predicting: spoken text of 5 to 14 words (no stage direction, speaker tag or heading)."""
    words = line.split()
    return 5 <= len(words) <= 14 and not line.lstrip().startswith("[") and not line.isupper()


def _pick_distractors(rng: random.Random, pool: list[tuple[int, str]], answer: str, group: int,
                      near: int) -> list[str]:
    """Three lines from other groups, with a word count within `near` of the answer's when there are enough."""
    n = len(answer.split())
    seen = {answer}
    out: list[str] = []
    for tolerance in (near, 10**6):
        candidates = [t for g, t in pool if g != group and abs(len(t.split()) - n) <= tolerance and t not in seen]
        rng.shuffle(candidates)
        for t in candidates:
            if len(out) == CHOICES - 1:
                return out
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


def _doc(rng: random.Random, context: str, answer: str, distractors: list[str]) -> dict:
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return {"context": context, "choices": choices, "label": choices.index(answer)}


def heldout_texts(tokenizer) -> list[str]:
    """The text of every held-out sequence of the default split, each cut at document ends (eos)."""
    from distill.config import DataConfig
    from distill.data.corpus import load_corpus

    corpus = load_corpus(DataConfig(path="shakespeare"), tokenizer)
    eos = tokenizer.eos_token_id
    texts: list[str] = []
    for ex in corpus.heldout:
        ids = ex["input_ids"].tolist()
        start = 0
        for i, t in enumerate([*ids, eos]):
            if t == eos:
                if i > start:
                    texts.append(tokenizer.decode(ids[start:i], clean_up_tokenization_spaces=False))
                start = i + 1
    return texts


def shakespeare_next_line(texts: list[str], docs: int = DOCS, seed: int = 0, context_lines: int = 4) -> list[dict]:
    """One document per held-out piece of `texts` (`heldout_texts`), up to `docs`: `context_lines` whole lines,
    then the next verse line."""
    rng = random.Random(seed)
    pieces = []
    for text in texts:
        lines = text.split("\n")[1:-1]  # the first and last lines may be cut by the sequence boundary
        targets = [j for j in range(context_lines, len(lines)) if _verse(lines[j])
                   and sum(1 for x in lines[j - context_lines:j] if x.strip()) >= 2]
        if targets:
            pieces.append((lines, targets))
    pool = [(g, line.strip()) for g, (lines, _) in enumerate(pieces) for line in lines if _verse(line)]
    order = list(range(len(pieces)))
    rng.shuffle(order)
    out = []
    for g in sorted(order[:docs]):
        lines, targets = pieces[g]
        j = rng.choice(targets)
        answer = lines[j].strip()
        out.append(_doc(rng, "\n".join(lines[j - context_lines:j]), answer,
                        _pick_distractors(rng, pool, answer, g, 2)))
    return out


def chatterbot_pairs() -> list[tuple[str, str, list[str]]]:
    """(category, question, its answers) from the English chatterbot-corpus, in file order, questions unique."""
    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        from distill.errors import DistillError

        raise DistillError("the chatterbot-corpus package is not installed",
                           fix="run `pip install --no-deps chatterbot-corpus==1.3.3` or `make venv`")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "english"
    answers: dict[str, list[str]] = {}
    category: dict[str, str] = {}
    for f in sorted(folder.glob("*.yml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for conv in doc.get("conversations") or []:
            if not (isinstance(conv, list) and len(conv) >= 2 and all(isinstance(x, (str, int, float))
                                                                     for x in conv[:2])):
                continue
            q, a = " ".join(str(conv[0]).split()), " ".join(str(conv[1]).split())
            if q and a and len(a.split()) <= 30:
                category.setdefault(q, f.stem)
                answers.setdefault(q, [])
                if a not in answers[q]:
                    answers[q].append(a)
    return [(category[q], q, answers[q]) for q in answers]


def chatterbot_qa(docs: int = DOCS, seed: int = 0) -> list[dict]:
    """`docs` questions (spread over the categories by a seeded draw), each with its first corpus answer."""
    rng = random.Random(seed)
    pairs = chatterbot_pairs()
    cats = sorted({c for c, _, _ in pairs})
    pool = [(cats.index(c), a) for c, _, ans in pairs for a in ans]
    order = list(range(len(pairs)))
    rng.shuffle(order)
    out = []
    for i in sorted(order[:docs]):
        c, q, ans = pairs[i]
        distractors = _pick_distractors(rng, [(g, a) for g, a in pool if a not in ans], ans[0], cats.index(c), 4)
        out.append(_doc(rng, f"Question: {q}\nAnswer:", ans[0], distractors))
    return out


def build_all(tokenizer) -> dict[str, list[dict]]:
    """Every bundled task's documents, by data file name."""
    return {"shakespeare_next_line.jsonl": shakespeare_next_line(heldout_texts(tokenizer)),
            "chatterbot_qa.jsonl": chatterbot_qa()}


def to_jsonl(docs: list[dict]) -> str:
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)


def main() -> None:
    from distill.fileio import write_text_atomic
    from distill.models.loading import load_tokenizer

    for name, docs in build_all(load_tokenizer("default")).items():
        write_text_atomic(BUNDLED_DIR / name, to_jsonl(docs))
        print(f"{BUNDLED_DIR / name}: {len(docs)} documents")


if __name__ == "__main__":
    main()

"""Radioactivity tests (Sander et al., NeurIPS 2024): was a suspect model trained on our watermarked outputs?

Two modes, both ending in the exact binomial test of `distill.protection.watermark.stats`:

* closed (black box): send prompts to the suspect's OpenAI-compatible chat endpoint and score its answers with
  the key. Windows that occur in the prompt are dropped, each (window, token) unit is scored once.
* open (weights): feed text through the suspect (teacher forcing), take its argmax next-token prediction at
  every position and score the *predicted* token against the true preceding h tokens. Each unit is scored once;
  windows that occur in prompts are dropped, and so is any position whose window already occurred earlier in the
  same text (an in-context copy of a watermarked continuation would otherwise look green to an innocent model).
  For self-hash keys, whose colours hang on one anchor token of the window, a position is also dropped when the
  predicted token already followed, earlier in the text, a window sharing a token with this one.
  With `filter_kgrams`, only windows present in the watermarked data are kept (useful when the fed text is not
  the watermarked data itself).

Why the test is exact for an innocent model, even one that predicts the watermarked text well: its prediction at
position i is a function of the tokens before i only, and (after the drops above) none of those was chosen with
the green list of window i, so that list is independent of the prediction and the predicted token is green with
probability gamma. The true token at i does not enter: when an innocent model happens to predict it, the token
is more often green (the watermark pushed it), but it is then less often green when the model predicts something
else, and the two balance exactly. (Measured: the unwatermarked teacher itself, fed its own watermarked answers,
is predicted green at 24.0% with gamma = 25%, p = 0.93; docs/benchmarks.md.) A suspect trained on watermarked text has
learned the green lists of frequent windows, so its predictions are green more often than gamma.

A model that never saw watermarked text predicts green tokens at rate gamma, so S green among N units is
Binomial(N, gamma) and p = P(X >= S) = betainc(S, N - S + 1, gamma).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from distill.errors import DistillError
from distill.generate.prompts import read_prompt_file
from distill.keys.watermark import WatermarkKey
from distill.protection.watermark.detect import UnitCounter, check_ids, encode, windows_of
from distill.tokens.openai import chat_url

log = logging.getLogger(__name__)

DEFAULT_PROMPTS = [
    "Explain how photosynthesis works.", "What causes the seasons on Earth?", "Describe the water cycle.",
    "How does a refrigerator keep food cold?", "Why is the sky blue?", "What is a prime number? Give examples.",
    "Summarize the causes of the French Revolution.", "How do vaccines train the immune system?",
    "Explain the difference between weather and climate.", "What is machine learning?",
    "How do bees make honey?", "Describe how a bill becomes a law.", "What is inflation in economics?",
    "How do airplanes stay in the air?", "Give advice for learning a new language.",
    "What are the planets of the solar system?", "Explain what DNA does.", "How does the internet route data?",
    "Write a short story about a lighthouse keeper.", "What is the Pythagorean theorem?",
]

MEANING = ("p is the probability that a model never trained on text watermarked with this key would produce at "
           "least S green units out of N; a small p is evidence that the suspect learned from the watermarked "
           "outputs (e.g. by distillation). A large p is not evidence of innocence: the test has little power when "
           "only a small share of the suspect's training data was watermarked, with few scored units, or after "
           "heavy further training; and it assumes the key was kept secret.")


def _row_texts(row: Any) -> tuple[list[str], list[dict] | None]:
    """Texts and prompt messages of one JSONL row: choices[].text / choices[].message.content, or
    text / answer fields; the prompt from `messages`, `request.messages` or `prompt`."""
    texts: list[str] = []
    if isinstance(row, str):
        return [row], None
    if not isinstance(row, dict):
        return [], None
    for c in row.get("choices") or []:
        if isinstance(c, dict):
            t = c.get("text")
            if t is None and isinstance(c.get("message"), dict):
                t = c["message"].get("content")
            if isinstance(t, str):
                texts.append(t)
    resp = row.get("response")
    if not texts and isinstance(resp, dict):
        return _row_texts(resp)[0], _messages_of(row)
    for f in ("text", "answer", "completion", "output"):
        if not texts and isinstance(row.get(f), str):
            texts.append(row[f])
    return texts, _messages_of(row)


def _messages_of(row: dict) -> list[dict] | None:
    if isinstance(row.get("prompt"), str):
        return [{"role": "user", "content": row["prompt"]}]
    req = row.get("request") if isinstance(row.get("request"), dict) else row
    msgs = req.get("messages")
    if isinstance(msgs, list):
        return [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
                for m in msgs if isinstance(m, dict)]
    return None


def load_watermarked_rows(path: str | Path) -> list[tuple[list[dict] | None, str]]:
    """(prompt messages or None, answer text) for every answer in a directory of JSONL files (or one file)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not path.exists() or not files:
        raise DistillError("no JSONL files with watermarked data found", where=str(path),
                           fix="pass the directory written by `distill generate` (results.jsonl)")
    out: list[tuple[list[dict] | None, str]] = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise DistillError("a line of the watermarked data is not JSON", where=f"{f}:{n}",
                                   fix="each line must be one JSON object") from e
            texts, messages = _row_texts(row)
            out += [(messages, t) for t in texts if t.strip()]
    if not out:
        raise DistillError("the watermarked data holds no text", where=str(path),
                           fix="rows need choices[].text, choices[].message.content, or a text/answer field")
    return out


def load_watermarked_data(path: str | Path) -> tuple[list[str], list[str]]:
    """Texts and prompts (the prompt messages' contents joined by newlines) from `load_watermarked_rows`."""
    return texts_and_prompts(load_watermarked_rows(path))


def texts_and_prompts(rows: Sequence[tuple[list[dict] | None, str]]) -> tuple[list[str], list[str]]:
    prompts = ["\n".join(m["content"] for m in msgs) for msgs, _ in rows if msgs]
    return [t for _, t in rows], prompts


def read_prompts(path: str | Path | None) -> list[str]:
    """One prompt per line, or JSONL rows with a prompt/text field (`read_prompt_file`, lenient); the built-in
    list when no file is given."""
    if path is None:
        return list(DEFAULT_PROMPTS)
    return [msgs[0]["content"] for msgs in read_prompt_file(path, lenient=True)]


def query_suspect(endpoint: str, model: str, prompts: Sequence[str], *, api_key: str | None = None,
                  max_tokens: int = 200, timeout: float = 120.0, client=None) -> list[str]:
    """The suspect's answers (temperature 0). Any failure raises DistillError: no p-value from a broken run."""
    import httpx

    url = chat_url(endpoint, where="--suspect-endpoint")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    answers = []
    try:
        for i, prompt in enumerate(prompts):
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                    "temperature": 0}
            try:
                r = client.post(url, json=body, headers=headers)
            except httpx.HTTPError as e:
                raise DistillError(f"the suspect endpoint could not be reached ({type(e).__name__}: {e})",
                                   where=url, fix="check --suspect-endpoint and that the server is running") from e
            if r.status_code != 200:
                raise DistillError(f"the suspect endpoint answered HTTP {r.status_code} to prompt {i + 1}: "
                                   f"{r.text[:200]!r}", where=url, fix="check --model, the API key and the server logs")
            try:
                content = r.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise DistillError(f"the suspect endpoint's answer to prompt {i + 1} is not an OpenAI chat completion",
                                   where=url, fix="point --suspect-endpoint at an OpenAI-compatible server") from e
            if not isinstance(content, str):
                raise DistillError(f"the suspect returned no text for prompt {i + 1}", where=url)
            answers.append(content)
    finally:
        if own:
            client.close()
    return answers


def _report(counter: UnitCounter, mode: str, tested: str, extra: dict) -> dict[str, Any]:
    det = counter.result()
    return {"mode": mode, "tested": tested, "N": det.tokens_scored, "S": det.green, "gamma": det.gamma,
            "p_value": det.p_value, "log10_p_value": det.log10_p_value, "z": det.z,
            "positions_seen": det.tokens_total, "repeats_skipped": det.repeats,
            "prompt_windows_skipped": det.dropped_prompt_windows, "key_id": counter.key.key_id, **extra,
            "meaning": MEANING}


def trace_closed(key: WatermarkKey, tokenizer, endpoint: str, model: str, prompts: Sequence[str],
                 **query_kw) -> dict[str, Any]:
    """Closed mode: query the suspect endpoint and score its answers."""
    key.check_tokenizer(tokenizer)
    answers = query_suspect(endpoint, model, prompts, **query_kw)
    exclude: set[tuple[int, ...]] = set()
    for p in prompts:
        exclude |= windows_of(encode(tokenizer, p), key.context_width)
    counter = UnitCounter(key, exclude)
    for a in answers:
        ids = encode(tokenizer, a)
        check_ids(key, ids, "suspect answer")
        counter.add_sequence(ids)
    return _report(counter, "closed", f"{len(answers)} answers of model {model!r} at {chat_url(endpoint)}",
                   {"answers": len(answers)})


def _copies_a_neighbour(followers: dict[int, list[set[int]]], window: tuple[int, ...], pred: int) -> bool:
    """Self-hash: did `pred` already follow, in this text, a window sharing a token (a possible anchor) with
    `window`? Its colour there was chosen with the key, so an in-context copy would carry it."""
    here = set(window)
    return any(here & w for w in followers.get(pred, ()))


@torch.no_grad()
def open_units(key: WatermarkKey, model: torch.nn.Module, sequences: Sequence[Sequence[int]],
               exclude: set[tuple[int, ...]], keep_only: set[tuple[int, ...]] | None = None,
               max_len: int = 512, starts: Sequence[int] | None = None) -> UnitCounter:
    """Score the suspect's argmax predictions against the true preceding windows of `sequences`.

    `starts[i]` is the first position of sequence i that is scored (the answer after a rendered prompt); the
    tokens before it are context only."""
    h = key.context_width
    counter = UnitCounter(key, exclude)
    device = next(model.parameters()).device
    for i, ids in enumerate(sequences):
        first = max(h, starts[i] if starts is not None else 0)
        seen: set[tuple[int, ...]] = set()
        followers: dict[int, list[set[int]]] = {}  # token -> the windows it followed so far in this text
        for start in range(0, max(1, len(ids) - h), max_len - h):
            chunk = list(ids[start:start + max_len])
            if len(chunk) <= h or start + len(chunk) <= first:
                continue
            logits = model(torch.tensor([chunk], device=device)).logits[0]
            preds = logits[:, :key.vocab_size].argmax(-1).tolist()
            windows, tokens = [], []
            for t in range(max(h, first - start), len(chunk)):  # predict chunk[t] from chunk[:t]
                w = tuple(chunk[t - h:t])
                earlier = w in seen
                seen.add(w)
                if key.self_hash:
                    earlier = earlier or _copies_a_neighbour(followers, w, preds[t - 1])
                    followers.setdefault(chunk[t], []).append(set(w))
                if earlier or (keep_only is not None and w not in keep_only):
                    continue
                windows.append(w)
                tokens.append(preds[t - 1])
            if windows:
                counter.add(windows, tokens)
    return counter


def trace_open(key: WatermarkKey, suspect: str, texts: Sequence[str], prompts: Sequence[str] = (),
               watermarked: Sequence[str] | None = None, filter_kgrams: bool = False,
               conversations: Sequence[list[dict] | None] | None = None) -> dict[str, Any]:
    """Open mode: load the suspect's weights and score its next-token predictions on `texts`.

    With `conversations` (the prompt messages of each text, or None), each text is fed as the answer to its
    prompt rendered the way the suspect was trained on chat data (`distill.tokens.chat.render_chat`: its chat
    template), and only the answer is scored: a chat-tuned student fed a bare answer sees text unlike anything
    it was trained on, and its predictions there carry little of what it learned."""
    from distill.models.loading import load_model
    from distill.tokens.chat import render_chat

    loaded = load_model(suspect)
    tok = loaded.tokenizer
    key.check_tokenizer(tok, where=f"suspect {suspect}")
    h = key.context_width
    seqs, starts = [], []
    for i, t in enumerate(texts):
        msgs = conversations[i] if conversations is not None else None
        prefix = render_chat(tok, msgs) if msgs else []
        seqs.append(prefix + encode(tok, t))
        starts.append(len(prefix))
    for s in seqs:
        check_ids(key, s, "fed text")
    exclude: set[tuple[int, ...]] = set()
    for p in prompts:
        exclude |= windows_of(encode(tok, p), h)
    keep = None
    if filter_kgrams:
        keep = set()
        for t in (watermarked if watermarked is not None else texts):
            keep |= windows_of(encode(tok, t), h)
    rows = loaded.model.get_input_embeddings().num_embeddings
    if any(s and max(s) >= rows for s in seqs):
        raise DistillError(f"the fed text has token ids beyond the suspect's {rows} embedding rows",
                           where=f"suspect {suspect}", fix="use a suspect that shares the watermarked model's tokenizer")
    counter = open_units(key, loaded.model, seqs, exclude, keep, starts=starts)
    in_chat = sum(1 for s in starts if s)
    how = f", {in_chat} of them as answers to their chat prompts" if in_chat else ""
    return _report(counter, "open", f"argmax predictions of {suspect} on {len(seqs)} texts{how}",
                   {"texts": len(seqs), "in_chat": in_chat, "filter_kgrams": filter_kgrams})

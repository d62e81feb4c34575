"""Prompt sets for `distill generate`: JSONL, plain text, or the bundled chatterbot English conversations.

Every prompt becomes a list of chat messages (a plain `prompt` string is one user message), because chat
completions is what OpenAI-compatible APIs universally offer.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from distill.errors import DistillError
from distill.fileio import iter_jsonl

CHATTERBOT = "chatterbot"
_ROLES = {"system", "developer", "user", "assistant"}


def chatterbot_prompts() -> list[list[dict]]:
    """The first turn of every English conversation in the PyPI package chatterbot-corpus, deduplicated."""
    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        raise DistillError("the chatterbot-corpus package is not installed", where="--prompts chatterbot",
                           fix="run `pip install --no-deps chatterbot-corpus` or pass --prompts FILE")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "english"
    seen: set[str] = set()
    out: list[list[dict]] = []
    for f in sorted(folder.glob("*.yml")):
        try:
            doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        for conv in doc.get("conversations") or []:
            if isinstance(conv, list) and conv and isinstance(conv[0], (str, int, float)):
                text = str(conv[0]).strip()
                if text and text not in seen:
                    seen.add(text)
                    out.append([{"role": "user", "content": text}])
    if not out:
        raise DistillError("no conversations found in chatterbot-corpus", where=str(folder),
                           fix="reinstall the package or pass --prompts FILE")
    return out


def _messages(obj, where: str) -> list[dict]:
    if isinstance(obj, dict) and isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
        return [{"role": "user", "content": obj["prompt"]}]
    if isinstance(obj, dict) and isinstance(obj.get("messages"), list) and obj["messages"]:
        msgs = obj["messages"]
        if all(isinstance(m, dict) and m.get("role") in _ROLES and isinstance(m.get("content"), str) for m in msgs):
            return [{"role": m["role"], "content": m["content"]} for m in msgs]
    raise DistillError("a JSONL prompt line needs a non-empty string `prompt` or a `messages` list of "
                       "{role, content} with string content", where=where,
                       fix='write e.g. {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}')


def load_prompts(spec: str | None) -> list[list[dict]]:
    """Prompts as chat-message lists from a .jsonl file, a text file (one prompt per line), or `chatterbot`."""
    if spec in (None, "", CHATTERBOT):
        return chatterbot_prompts()
    return read_prompt_file(spec)


def read_prompt_file(path: str | Path, *, lenient: bool = False) -> list[list[dict]]:
    """Prompts as chat-message lists from a file: the reader behind `distill generate` and `distill trace`.

    Strict (generate): UTF-8; a .jsonl/.ndjson file holds one `prompt` or `messages` object per line, any
    other file one prompt per line (stripped). Lenient (trace): undecodable bytes are replaced; a line starting
    with `{` is read for its `prompt` or `text` field (kept as written when it is not JSON), others as written.
    """
    p = Path(path)
    text = _read_text(p, str(path), lenient)
    out: list[list[dict]] = []
    if lenient:
        out = [[{"role": "user", "content": t}] for t in map(_lenient_line, text.splitlines()) if t.strip()]
    elif p.suffix.lower() in (".jsonl", ".ndjson"):
        for no, obj in iter_jsonl(text.splitlines(), str(p)):
            out.append(_messages(obj, f"{p} line {no}"))
    else:
        out = [[{"role": "user", "content": line.strip()}] for line in text.splitlines() if line.strip()]
    if not out:
        if lenient:
            raise DistillError("the prompts file is empty", where=str(path), fix="write one prompt per line")
        raise DistillError("the prompt file holds no prompt", where=str(p), fix="add prompts, one per line")
    return out


def _read_text(p: Path, given: str, lenient: bool) -> str:
    if lenient:
        try:
            return p.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise DistillError(f"cannot read the prompts file ({e.strerror})", where=given, fix="check the path") from e
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DistillError(f"prompt file not found: {given}", where="--prompts",
                           fix="check the path, or omit --prompts to use the chatterbot conversations") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DistillError(f"cannot read the prompt file ({type(e).__name__})", where=str(p),
                           fix="pass a UTF-8 .jsonl or text file") from None


def _lenient_line(line: str) -> str:
    """A line as written, or the `prompt` / `text` of a JSON object line ("" when it has neither)."""
    if not line.lstrip().startswith("{"):
        return line
    try:
        row = json.loads(line)
    except ValueError:
        return line
    value = row.get("prompt") or row.get("text") or ""
    return value if isinstance(value, str) else ""

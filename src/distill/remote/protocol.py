"""The scoring request and its answer, in vLLM's shapes (pure functions: no I/O).

Request::

    POST /v1/completions
    {"model": NAME, "prompt": [[id, id, ...], ...], "max_tokens": 1, "temperature": 0, "prompt_logprobs": k}

Answer: one choice per prompt (`index` = the prompt's position in the list), each with
`prompt_logprobs`: a list as long as the prompt, `null` for the first token, then for token j a mapping
`{"<id>": {"logprob": float, "rank": int, "decoded_token": str}}` holding the top-k alternatives for token j given
tokens < j (vLLM adds the prompt's own token j when it is not among them). Distill scores position t (which predicts
token t + 1), so its top-k is entry t + 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def scoring_request(model: str, rows: Sequence[Sequence[int]], top_k: int) -> dict[str, Any]:
    return {"model": model, "prompt": [list(map(int, r)) for r in rows], "max_tokens": 1, "temperature": 0.0,
            "prompt_logprobs": int(top_k)}


@dataclass
class RowScores:
    """The teacher's top-k at every position of one row: position t predicts token t + 1."""

    ids: Tensor  # [L, k] long, -1 where padded (the last position has no entry)
    logprobs: Tensor  # [L, k] float32, -inf where padded
    unmapped: int = 0  # returned tokens that could not be turned into ids (string-keyed servers)
    target_logprobs: Tensor | None = None  # [L] the row's own next token's log-probability (NaN where not sent)


class ProtocolError(ValueError):
    """The server's answer does not have the documented shape."""


def parse_row(entries: Any, length: int, top_k: int, token_id: Callable[[str], int | None] | None = None,
              row: Sequence[int] | None = None) -> RowScores:
    """One choice's `prompt_logprobs` → top-k ids and log-probabilities per scored position.

    Keys are token ids as strings (vLLM) or, with `token_id`, token strings mapped to ids; the k most likely
    entries are kept, best first. With the row's ids, the log-probability of each actual next token is kept too
    (vLLM always sends it), for the teacher's own perplexity."""
    if not isinstance(entries, list) or len(entries) != length:
        got = len(entries) if isinstance(entries, list) else type(entries).__name__
        raise ProtocolError(f"prompt_logprobs has {got} entries for a prompt of {length} tokens")
    ids = torch.full((length, top_k), -1, dtype=torch.long)
    lps = torch.full((length, top_k), -math.inf, dtype=torch.float32)
    unmapped = 0
    target = torch.full((length,), math.nan, dtype=torch.float32) if row is not None else None
    for j in range(1, length):
        entry = entries[j]
        if not isinstance(entry, dict):
            raise ProtocolError(f"prompt_logprobs[{j}] is {type(entry).__name__}, not a mapping")
        pairs = []
        for key, value in entry.items():
            lp = value.get("logprob") if isinstance(value, dict) else value
            if not isinstance(lp, int | float):
                raise ProtocolError(f"prompt_logprobs[{j}][{key!r}] has no numeric logprob")
            tid = int(key) if key.lstrip("-").isdigit() else (token_id(key) if token_id else None)
            if tid is None or tid < 0:
                unmapped += 1
                continue
            pairs.append((float(lp), tid))
            if target is not None and tid == row[j]:
                target[j - 1] = float(lp)
        pairs.sort(reverse=True)
        for slot, (lp, tid) in enumerate(pairs[:top_k]):
            ids[j - 1, slot], lps[j - 1, slot] = tid, lp
    return RowScores(ids, lps, unmapped, target)


def parse_response(data: Any, rows: Sequence[Sequence[int]], top_k: int,
                   token_id: Callable[[str], int | None] | None = None) -> list[RowScores]:
    """All choices of a scoring answer, in prompt order."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != len(rows):
        n = len(choices) if isinstance(choices, list) else 0
        raise ProtocolError(f"the answer has {n} choices for {len(rows)} prompts")
    by_index = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    out = []
    for c, row in zip(by_index, rows, strict=True):
        if not isinstance(c, dict) or "prompt_logprobs" not in c or c["prompt_logprobs"] is None:
            raise ProtocolError("a choice has no prompt_logprobs (does the server support prompt_logprobs?)")
        out.append(parse_row(c["prompt_logprobs"], len(row), top_k, token_id, row))
    return out

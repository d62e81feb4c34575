"""Turning a generated folder into training examples for the trainer.

Each choice of each stored row becomes one example (a tool-calling trajectory of `distill generate --tools`: one
example of the whole conversation, see `_trajectory_example`):

* `input_ids`: prompt (chat template, add_generation_prompt=True) + answer ids + eos. The answer ids are the
  sampled tokens' ids when the API sent log-probabilities and every token mapped to the tokenizer (and their
  bytes spell exactly the answer text); otherwise the answer text re-tokenized.
* `loss_mask[t]`: True when `input_ids[t+1]` is an answer token or the final eos.
* `topk_ids` / `topk_logprobs` (only for examples with mapped log-probabilities): at position t the
  teacher's top-k for the token at t+1; positions without data (prompt, the eos step) hold empty lists, and
  alternatives that did not map are left out.

Records are taken in the order of their `key` (the hash of prompt and parameters), not the order they were
written in: a concurrent `distill generate` stores answers as they complete, and the same folder must give the
same examples - and so the same training run - whatever order the API answered in.

Token strings are mapped again with the tokenizer passed here (see `distill.tokens.tokenmap`), so the ids
always belong to the tokenizer the trainer uses.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distill.data.conversations import conversation_tokens
from distill.data.formats import RESULTS
from distill.errors import DistillError
from distill.fileio import read_appended_jsonl
from distill.tokens.chat import render_chat
from distill.tokens.tokenmap import TokenMapper

log = logging.getLogger(__name__)



class GeneratedSet(list):
    """A list of example dicts with `counts`: records, rows, with_sparse, retokenized, dropped, token_map."""

    counts: dict


def _mapped_answer(choice: dict, mapper: TokenMapper, vocab_bytes: list[bytes]) -> list[int] | None:
    entries = choice.get("logprobs")
    if not isinstance(entries, list) or not entries:
        return None
    ids = [mapper.map(e.get("token", ""), e.get("bytes")) for e in entries]
    if any(i is None for i in ids):
        return None
    spelled = b"".join(vocab_bytes[i] for i in ids).decode("utf-8", errors="replace")
    return ids if spelled == choice.get("text", "") else None


def _trajectory_example(rec: dict, tokenizer, reasoning: str) -> dict | None:
    """A stored tool-calling trajectory as one example (`distill.data.conversations`: its text, reasoning and tool
    calls are targets, tool results never); None when it cannot be rendered."""
    try:
        ids, mask = conversation_tokens({"messages": rec["trajectory"], "tools": rec.get("tools")}, tokenizer,
                                        f"trajectory {rec.get('key')}", reasoning)
    except DistillError as e:
        log.warning("dropped a stored trajectory: %s", e)
        return None
    return {"input_ids": ids, "loss_mask": mask}


def load_generated(out_dir: str | Path, tokenizer, reasoning: str = "keep") -> GeneratedSet:
    """Training examples from a `distill generate` output folder (see the module docstring); `reasoning`
    ('keep' or 'drop', `data.reasoning`) applies to tool-calling trajectories."""
    path = Path(out_dir) / RESULTS
    if not path.is_file():
        raise DistillError("no generated results found", where=str(path),
                           fix="run `distill generate --out <folder>` first, or point at that folder")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DistillError("the tokenizer has no eos token", where="load_generated",
                           fix="use the teacher's tokenizer, which defines one")
    mapper = TokenMapper(tokenizer)
    vocab_bytes = mapper.vocab_bytes
    out = GeneratedSet()
    counts = {"records": 0, "rows": 0, "with_sparse": 0, "retokenized": 0, "dropped": 0}
    for rec in sorted(read_appended_jsonl(path), key=lambda r: str(r.get("key", ""))):
        counts["records"] += 1
        if "trajectory" in rec:  # `distill generate --tools`: the whole conversation, assistant turns as targets
            ex = _trajectory_example(rec, tokenizer, reasoning)
            counts["dropped" if ex is None else "rows"] += 1
            if ex is not None:
                out.append(ex)
            continue
        msgs, choices = rec.get("messages"), rec.get("choices")
        if not isinstance(msgs, list) or not msgs or not isinstance(choices, list) or not choices:
            counts["dropped"] += 1
            continue
        try:
            prompt = render_chat(tokenizer, msgs)
        except Exception:  # noqa: BLE001 - a record the template cannot render is dropped, not fatal
            counts["dropped"] += 1
            continue
        for ch in choices:
            if not isinstance(ch, dict) or not isinstance(ch.get("text"), str):
                counts["dropped"] += 1
                continue
            answer = _mapped_answer(ch, mapper, vocab_bytes)
            sparse = answer is not None
            if answer is None:
                answer = list(tokenizer(ch["text"], add_special_tokens=False)["input_ids"])
                counts["retokenized"] += 1
            ids = prompt + answer + [eos]
            p = len(prompt)
            mask = [p - 1 <= t < p + len(answer) for t in range(len(ids))]
            ex: dict = {"input_ids": ids, "loss_mask": mask}
            if sparse:
                topk_ids: list[list[int]] = [[] for _ in ids]
                topk_lps: list[list[float]] = [[] for _ in ids]
                for j, e in enumerate(ch["logprobs"]):
                    got: dict[int, float] = {}
                    for alt in e.get("top_logprobs") or []:
                        tid = mapper.map(alt.get("token", ""), alt.get("bytes"))
                        if tid is not None and tid not in got and isinstance(alt.get("logprob"), (int, float)):
                            got[tid] = float(alt["logprob"])
                    topk_ids[p + j - 1] = list(got)
                    topk_lps[p + j - 1] = list(got.values())
                if any(topk_ids):
                    ex["topk_ids"], ex["topk_logprobs"] = topk_ids, topk_lps
                    counts["with_sparse"] += 1
            out.append(ex)
            counts["rows"] += 1
    counts["token_map"] = mapper.stats.to_dict()
    out.counts = counts
    log.info("loaded %d examples from %s (%d with sparse log-probs, %d re-tokenized, %d dropped)",
             counts["rows"], path, counts["with_sparse"], counts["retokenized"], counts["dropped"])
    return out


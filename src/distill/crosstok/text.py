"""Student ids -> text with character spans, and that text -> teacher ids with character spans.

Both sides describe every token by the characters [start, end) it covers in one shared string. A token
*starts cleanly* when everything before it is covered by earlier tokens and nothing of it by them (start ≥ the
largest earlier end): the context before it is exactly `text[:start]`. Byte-level pieces of one multi-byte
character share that character's span, so only the first of them starts cleanly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_REPLACEMENT = "\ufffd"


@dataclass
class RowText:
    """One student row as text: per-token character spans (None where unknown) and how they were found."""

    text: str
    ids: list[int]
    spans: list[tuple[int, int] | None]  # per student token
    roundtrip: bool  # True: spans from the tokenizer's offsets (re-encoding gave the same ids)


def clean_starts(spans: Sequence[tuple[int, int] | None]) -> list[bool]:
    """Whether each token starts cleanly (see the module docstring); unknown spans never do."""
    out, covered = [], 0
    for span in spans:
        if span is None:
            out.append(False)
            continue
        start, end = span
        out.append(start >= covered and end > start)
        covered = max(covered, end)
    return out


def student_row_text(tokenizer, ids: Sequence[int]) -> RowText:
    """Decode a student row and recover each token's character span.

    First choice: re-encode the decoded text with offsets; when that reproduces `ids` exactly, the
    tokenizer's own offsets are the spans. Otherwise (a row cut inside a character, non-canonical merges at
    a packing boundary, ...) the spans come from decoding growing prefixes: token i covers
    [len(decode(ids[:i])), len(decode(ids[:i+1]))) when both prefixes are prefixes of the text, else unknown.
    """
    ids = [int(i) for i in ids]
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) == ids:
        return RowText(text, ids, [tuple(o) for o in enc["offset_mapping"]], True)
    spans: list[tuple[int, int] | None] = []
    prev_end: int | None = 0
    for i in range(len(ids)):
        prefix = tokenizer.decode(ids[: i + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        ok = text.startswith(prefix) and not prefix.endswith(_REPLACEMENT)
        end = len(prefix) if ok else None
        spans.append((prev_end, end) if prev_end is not None and end is not None and end > prev_end else None)
        prev_end = end
    return RowText(text, ids, spans, False)


@dataclass
class TeacherTokens:
    """The teacher's tokenization of a row's text: ids (with its own leading specials) and their spans."""

    ids: list[int]
    spans: list[tuple[int, int] | None]


def special_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts in front of any text by default (e.g. Gemma's <bos>; none for SmolLM2)."""
    with_sp = list(tokenizer("a")["input_ids"])
    without = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    for i in range(len(with_sp) - len(without) + 1):
        if with_sp[i: i + len(without)] == without:
            return with_sp[:i]
    return []


def teacher_tokens(tokenizer, row: RowText, special_ids: dict[int, int | None], prefix: list[int]
                   ) -> TeacherTokens:
    """Tokenize a row's text with the teacher's tokenizer, keeping character spans.

    Student special tokens (e.g. <|endoftext|> between packed documents) are not text: the text is cut at
    their spans, each piece tokenized on its own, and the special replaced by the teacher's counterpart from
    `special_ids` (student id -> teacher id, or None to drop it). Plain text gives exactly
    `prefix + tokenizer(text, add_special_tokens=False).input_ids`.
    """
    ids: list[int] = list(prefix)
    spans: list[tuple[int, int] | None] = [None] * len(prefix)
    cursor = 0

    def add_text(lo: int, hi: int) -> None:
        if hi <= lo:
            return
        enc = tokenizer(row.text[lo:hi], add_special_tokens=False, return_offsets_mapping=True)
        ids.extend(int(i) for i in enc["input_ids"])
        spans.extend((lo + a, lo + b) for a, b in enc["offset_mapping"])

    for sid, span in zip(row.ids, row.spans, strict=True):
        if sid not in special_ids or span is None:
            continue
        add_text(cursor, span[0])
        if special_ids[sid] is not None:
            ids.append(int(special_ids[sid]))
            spans.append(span)
        cursor = max(cursor, span[1])
    add_text(cursor, len(row.text))
    return TeacherTokens(ids, spans)

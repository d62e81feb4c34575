"""Teacher vocabulary ids -> student vocabulary ids, where the two entries stand for the same bytes.

Each id of each tokenizer is decoded to its exact bytes (`distill.tokens.tokenmap.vocab_bytes`: byte-level
BPE through the GPT-2 byte table, SentencePiece through `▁` and `<0xNN>`). A teacher id maps to the student
id with the same bytes; several student ids with the same bytes -> the lowest. Special tokens map only
through their role (teacher eos -> student eos), never through their spelling. Teacher ids with no student
counterpart map to -1: their probability ends up in the residual bucket of the sparse loss.

The map depends only on the two vocabularies, so it is built once per pair (keyed by both fingerprints) and
kept for the life of the process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from distill.models.loading import tokenizer_fingerprint
from distill.tokens.tokenmap import vocab_bytes

_CACHE: dict[tuple[str, str], VocabMap] = {}
_BY_OBJECT: dict[tuple[int, int], tuple[object, object, VocabMap]] = {}  # skips re-fingerprinting


@dataclass
class VocabMap:
    """`t2s[i]` = student id with the bytes of teacher id i, or -1."""

    t2s: Tensor  # [V_teacher] long
    mapped: int  # teacher ids with a student counterpart
    teacher_size: int
    student_size: int

    @property
    def coverage(self) -> float:
        """Share of the teacher vocabulary that has a student counterpart."""
        return self.mapped / max(self.teacher_size, 1)

    def to_dict(self) -> dict:
        return {"teacher_vocab": self.teacher_size, "student_vocab": self.student_size, "mapped": self.mapped,
                "coverage": self.coverage}


def _specials(tokenizer) -> set[int]:
    return {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])}


def build_vocab_map(teacher_tok, student_tok) -> VocabMap:
    """Build the teacher -> student id map (uncached; see `vocab_map`)."""
    t_bytes, s_bytes = vocab_bytes(teacher_tok), vocab_bytes(student_tok)
    t_special, s_special = _specials(teacher_tok), _specials(student_tok)
    by_bytes: dict[bytes, int] = {}
    for i, b in enumerate(s_bytes):
        if i not in s_special and b and b not in by_bytes:
            by_bytes[b] = i
    t2s = torch.full((len(t_bytes),), -1, dtype=torch.long)
    for i, b in enumerate(t_bytes):
        if i not in t_special and b in by_bytes:
            t2s[i] = by_bytes[b]
    t_eos, s_eos = teacher_tok.eos_token_id, student_tok.eos_token_id
    if t_eos is not None and s_eos is not None and 0 <= t_eos < len(t_bytes):
        t2s[t_eos] = s_eos
    return VocabMap(t2s, int((t2s >= 0).sum()), len(t_bytes), len(s_bytes))


def vocab_map(teacher_tok, student_tok) -> VocabMap:
    """The teacher -> student id map of this tokenizer pair, built once per process."""
    fast = _BY_OBJECT.get((id(teacher_tok), id(student_tok)))
    if fast is not None and fast[0] is teacher_tok and fast[1] is student_tok:
        return fast[2]
    key = (tokenizer_fingerprint(teacher_tok), tokenizer_fingerprint(student_tok))
    if key not in _CACHE:
        _CACHE[key] = build_vocab_map(teacher_tok, student_tok)
    _BY_OBJECT[(id(teacher_tok), id(student_tok))] = (teacher_tok, student_tok, _CACHE[key])
    return _CACHE[key]

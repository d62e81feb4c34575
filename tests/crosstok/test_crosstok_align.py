"""Character-boundary alignment and the text/offset round trip, against direct computations."""

from __future__ import annotations

import pytest

from distill.crosstok.align import align_positions
from distill.crosstok.text import clean_starts, special_prefix, student_row_text, teacher_tokens

TEXTS = [
    "First Citizen: Before we proceed any further, hear me speak.",
    "The zebra crossed. café naïve — ok!\n\nWe are accounted poor citizens.",
    "  leading spaces and trailing  ",
]


def test_align_positions_hand_made_spans():
    # student tokens: "a" "bc" "d" "ef"; teacher: <bos> "abc" "def"
    student = [(0, 1), (1, 3), (3, 4), (4, 6)]
    teacher = [None, (0, 3), (3, 6)]
    # pos 0 predicts "bc" (starts at 1: no teacher token starts there); pos 1 predicts "d" (starts at 3 =
    # teacher token 2, so teacher position 1); pos 2 predicts "ef" (4: none); pos 3 predicts nothing
    assert align_positions(student, teacher) == [-1, 1, -1, -1]
    # without a teacher <bos>, a student token at char 0 would need teacher position -1: never aligned
    assert align_positions([(0, 1), (1, 2)], [(0, 1), (1, 2)]) == [0, -1]


def test_clean_starts_rejects_byte_fragments():
    # a 3-byte character split in three pieces sharing its span, then an ordinary token
    spans = [(0, 1), (1, 2), (1, 2), (1, 2), (2, 4), None, (5, 6)]
    assert clean_starts(spans) == [True, True, False, False, True, False, True]


def _prefix_len(tok, ids, text):
    """Characters of `text` read after `ids`, or None when the decoded prefix is not a prefix of the text."""
    prefix = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return len(prefix) if text.startswith(prefix) else None


def _reference_alignment(s_tok, t_tok, text):
    """Direct: student position t <-> the first teacher position u whose decoded prefix equals the student's."""
    s_ids = s_tok(text, add_special_tokens=False)["input_ids"]
    t_all = t_tok(text)["input_ids"]
    pre = len(special_prefix(t_tok))
    t_text = t_all[pre:]
    bounds: dict[int | None, int] = {}
    for j in range(1, len(t_text)):  # teacher has read t_text[:j] at position pre + j - 1
        bounds.setdefault(_prefix_len(t_tok, t_text[:j], text), pre + j - 1)
    if pre:
        bounds.setdefault(0, pre - 1)
    out = []
    for t in range(len(s_ids)):
        if t + 1 >= len(s_ids):
            out.append(-1)
            continue
        n = _prefix_len(s_tok, s_ids[: t + 1], text)
        out.append(bounds.get(n, -1) if n is not None else -1)
    return s_ids, out


@pytest.mark.parametrize("text", TEXTS)
def test_alignment_matches_prefix_decoding(student_tok, teacher_tok, text):
    s_ids, expected = _reference_alignment(student_tok, teacher_tok, text)
    row = student_row_text(student_tok, s_ids)
    assert row.roundtrip and row.text == text
    tt = teacher_tokens(teacher_tok, row, {}, special_prefix(teacher_tok))
    assert tt.ids == teacher_tok(text)["input_ids"]
    got = align_positions(row.spans, tt.spans)
    assert got == expected
    assert sum(u >= 0 for u in got) >= len(got) // 3  # the two tokenizations do share many boundaries


def test_roundtrip_fallback_uses_prefix_decoding(student_tok):
    # a row cut inside a multi-byte character: decoding yields U+FFFD and re-encoding gives other ids
    ids = student_tok("naïve café", add_special_tokens=False)["input_ids"]
    byte_ids = student_tok.convert_tokens_to_ids(["Ã"])  # first byte of "ï"/"é" in the byte-level alphabet
    row = student_row_text(student_tok, byte_ids + ids)
    assert not row.roundtrip
    assert row.spans[0] is None  # the dangling byte has no character span
    for i in range(1, len(row.ids)):
        if row.spans[i] is not None:
            a, b = row.spans[i]
            assert row.text[a:b] == student_tok.decode([row.ids[i]])


def test_special_tokens_are_mapped_not_spelled(student_tok, teacher_tok):
    a = student_tok("hear me speak.", add_special_tokens=False)["input_ids"]
    b = student_tok("We are poor.", add_special_tokens=False)["input_ids"]
    eos_s, eos_t = student_tok.eos_token_id, teacher_tok.eos_token_id
    row = student_row_text(student_tok, a + [eos_s] + b)
    tt = teacher_tokens(teacher_tok, row, {eos_s: eos_t}, special_prefix(teacher_tok))
    expected = (teacher_tok("hear me speak.")["input_ids"] + [eos_t]
                + teacher_tok("We are poor.", add_special_tokens=False)["input_ids"])
    assert tt.ids == expected
    al = align_positions(row.spans, tt.spans)
    # the student position predicting </s> is aligned with the teacher position predicting its </s>
    s_pos, t_pos = len(a) - 1, len(teacher_tok("hear me speak.")["input_ids"]) - 1
    assert al[s_pos] == t_pos and tt.ids[t_pos + 1] == eos_t


def test_gemma_and_smollm_alignment(gemma_tokenizer, tokenizer):
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak."
    s_ids, expected = _reference_alignment(tokenizer, gemma_tokenizer, text)
    row = student_row_text(tokenizer, s_ids)
    tt = teacher_tokens(gemma_tokenizer, row, {}, special_prefix(gemma_tokenizer))
    assert tt.ids == gemma_tokenizer(text)["input_ids"] and tt.ids[0] == gemma_tokenizer.bos_token_id
    got = align_positions(row.spans, tt.spans)
    assert got == expected
    assert sum(u >= 0 for u in got) / (len(got) - 1) > 0.8

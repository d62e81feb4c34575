"""Prompt loading, token-string to id mapping, and turning stored rows into training examples."""

from __future__ import annotations

import json

import pytest

from distill.data.generated import load_generated
from distill.errors import DistillError
from distill.generate.prompts import load_prompts
from distill.tokens.chat import render_chat
from distill.tokens.tokenmap import TokenMapper, vocab_bytes


def test_prompt_sources(tmp_path):
    j = tmp_path / "p.jsonl"
    j.write_text('{"prompt": "hi"}\n\n{"messages": [{"role": "system", "content": "s"}, '
                 '{"role": "user", "content": "u"}]}\n')
    assert load_prompts(str(j)) == [[{"role": "user", "content": "hi"}],
                                    [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]]
    t = tmp_path / "p.txt"
    t.write_text("one\n\n two \n")
    assert load_prompts(str(t)) == [[{"role": "user", "content": "one"}], [{"role": "user", "content": "two"}]]
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"prompt": 3}\n')
    with pytest.raises(DistillError, match="line 1"):
        load_prompts(str(bad))
    chat = load_prompts(None)
    firsts = [m[0]["content"] for m in chat]
    assert len(firsts) == len(set(firsts)) > 100 and "Hello" in firsts


def test_vocab_bytes_spell_every_encoding(tokenizer):
    vb = vocab_bytes(tokenizer)
    text = "Héllo wörld! 你好 ✓\n\ttabs  and spaces <|im_end|>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert b"".join(vb[i] for i in ids).decode() == text
    assert len(vb) == len(tokenizer) and len(set(vb)) == len(vb)


def test_mapper_counts_mapped_ambiguous_unmapped(tokenizer):
    m = TokenMapper(tokenizer)
    hello = tokenizer.convert_tokens_to_ids("Ġhello")
    assert m.map(" hello") == hello and m.map(" hello", list(b" hello")) == hello
    zh = tokenizer("你", add_special_tokens=False)["input_ids"]
    vb = vocab_bytes(tokenizer)
    assert [m.map(vb[i].decode("utf-8", "replace"), list(vb[i])) for i in zh] == zh  # partial UTF-8 via bytes
    assert m.map("Ġhello") == hello  # raw vocabulary spelling
    assert m.map("\u0000no-such-token\u0001") is None
    assert m.stats.to_dict() == {"mapped": 3 + len(zh), "ambiguous": 0, "unmapped": 1}


class _DupTokenizer:
    """A 4-token vocabulary where ids 1 and 3 have the same bytes; encoding 'ab' alone gives 3."""

    all_special_ids: list[int] = []

    def __len__(self):
        return 4

    def convert_ids_to_tokens(self, ids):
        return [["a", "ab", "b", "ab"][i] for i in ids]

    def decode(self, ids):
        return "".join(self.convert_ids_to_tokens(ids))

    def encode(self, text, add_special_tokens=False):
        return [3] if text == "ab" else [0]

    def get_vocab(self):
        return {"a": 0, "ab": 1, "b": 2}


def test_ambiguous_bytes_pick_the_tokenizers_own_encoding():
    m = TokenMapper(_DupTokenizer())
    assert m.map("ab") == 3 and m.map("a") == 0
    assert m.stats.to_dict() == {"mapped": 1, "ambiguous": 1, "unmapped": 0}


def _write(tmp_path, records):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_load_generated_layout(tmp_path, tokenizer):
    msgs = [{"role": "user", "content": "Say hi"}]
    answer = " Hi there"
    ans_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    vb = vocab_bytes(tokenizer)
    lp_entries = [{"token": vb[i].decode(), "bytes": list(vb[i]), "logprob": -0.5,
                   "top_logprobs": [{"token": vb[i].decode(), "bytes": list(vb[i]), "logprob": -0.5},
                                    {"token": "\u0000zz", "bytes": None, "logprob": -2.0},
                                    {"token": " the", "bytes": None, "logprob": -3.0}]} for i in ans_ids]
    records = [
        {"key": "1", "messages": msgs, "choices": [{"text": answer, "logprobs": lp_entries},
                                                   {"text": "Other answer"}]},
        {"key": "2", "messages": msgs, "choices": [{"text": answer, "logprobs": lp_entries[:-1]}]},  # mismatch
        {"key": "3", "messages": [], "choices": []},
    ]
    _write(tmp_path, records)
    ds = load_generated(tmp_path, tokenizer)
    prompt = render_chat(tokenizer, msgs)
    p = len(prompt)
    assert prompt == tokenizer(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False),
                               add_special_tokens=False)["input_ids"]
    ex = ds[0]
    assert ex["input_ids"] == prompt + ans_ids + [tokenizer.eos_token_id]
    assert ex["loss_mask"] == [False] * (p - 1) + [True] * (len(ans_ids) + 1) + [False]
    the = tokenizer.convert_tokens_to_ids("Ġthe")
    for j, i in enumerate(ans_ids):
        assert ex["topk_ids"][p - 1 + j] == [i, the] and ex["topk_logprobs"][p - 1 + j] == [-0.5, -3.0]
    assert ex["topk_ids"][: p - 1] == [[]] * (p - 1) and ex["topk_ids"][-2:] == [[], []]
    other = ds[1]
    assert other["input_ids"] == prompt + tokenizer("Other answer", add_special_tokens=False)["input_ids"] + [2]
    assert "topk_ids" not in other and "topk_ids" not in ds[2]  # text and tokens disagree: re-tokenized
    assert ds.counts["rows"] == 3 and ds.counts["with_sparse"] == 1 and ds.counts["dropped"] == 1
    assert ds.counts["retokenized"] == 2
    with pytest.raises(DistillError, match="no generated results"):
        load_generated(tmp_path / "nope", tokenizer)


def test_load_generated_ignores_completion_order(tmp_path, tokenizer):
    """A concurrent run stores answers as they complete: the same records in another order give the same examples."""
    msgs = lambda i: [{"role": "user", "content": f"Question {i}"}]  # noqa: E731
    records = [{"key": f"k{i:02d}", "messages": msgs(i), "choices": [{"text": f" answer {i}"}]} for i in range(12)]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _write(a, records)
    _write(b, [records[i] for i in (7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 6, 4)])
    assert load_generated(a, tokenizer) == load_generated(b, tokenizer)
    texts = [tokenizer.decode(ex["input_ids"]) for ex in load_generated(b, tokenizer)]
    assert all(f"Question {i}" in t and f" answer {i}" in t for i, t in enumerate(texts)), texts

"""Data loading: packing, chat masks, the deterministic split, formats and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from distill.config import DataConfig
from distill.data.corpus import collate, load_corpus
from distill.errors import DistillError


def test_text_is_packed_and_split_deterministically(tokenizer, text_file):
    cfg = DataConfig(path=str(text_file), seq_len=64, heldout_fraction=0.1, seed=3)
    a, b = load_corpus(cfg, tokenizer), load_corpus(cfg, tokenizer)
    assert a.fingerprint == b.fingerprint
    assert all(ex["input_ids"].shape == (64,) for ex in a.train + a.heldout)
    ids = tokenizer(text_file.read_text(), add_special_tokens=False)["input_ids"]
    n = (len(ids) + 1) // 64
    assert len(a.train) + len(a.heldout) == n
    train_set = {tuple(x["input_ids"].tolist()) for x in a.train}
    assert not any(tuple(x["input_ids"].tolist()) in train_set for x in a.heldout)
    c = load_corpus(DataConfig(path=str(text_file), seq_len=64, heldout_fraction=0.1, seed=4), tokenizer)
    assert c.fingerprint != a.fingerprint


def test_chat_rows_train_only_on_assistant_tokens(tokenizer, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "Hi there"},
                          {"role": "assistant", "content": "Hello! How can I help?"}]},
            {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = load_corpus(DataConfig(path=str(path), seq_len=128, heldout_fraction=0.4), tokenizer)
    for ex in corpus.train + corpus.heldout:
        ids, mask = ex["input_ids"].tolist(), ex["loss_mask"].tolist()
        targets = [ids[t + 1] for t in range(len(ids) - 1) if mask[t]]
        text = tokenizer.decode(targets)
        assert text.replace("<|im_end|>", "").strip() in ("Hello! How can I help?", "4")
        assert "user" not in text


def test_parquet_and_jsonl_text(tokenizer, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"Line number {i} of a small corpus, with some words." for i in range(40)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "d.parquet")
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    a = load_corpus(DataConfig(path=str(tmp_path / "d.parquet"), seq_len=32), tokenizer)
    b = load_corpus(DataConfig(path=str(tmp_path / "d.jsonl"), seq_len=32), tokenizer)
    assert [x["input_ids"].tolist() for x in a.train] == [x["input_ids"].tolist() for x in b.train]


@pytest.mark.parametrize("content,match", [
    ("", "empty"),
    ("{not json\n", "malformed JSON"),
    ('{"title": "x"}\n', "text"),
    ('[1, 2]\n', "not an object"),
    ('{"messages": [{"role": "user", "content": "only a question"}]}\n', "no assistant"),
])
def test_bad_jsonl_is_a_clear_error(tokenizer, tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DistillError, match=match):
        load_corpus(DataConfig(path=str(path), seq_len=32), tokenizer)


def test_missing_path_and_too_little_data(tokenizer, tmp_path):
    with pytest.raises(DistillError, match="not found"):
        load_corpus(DataConfig(path=str(tmp_path / "nope.txt")), tokenizer)
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("just a few words")
    with pytest.raises(DistillError, match="too little data"):
        load_corpus(DataConfig(path=str(tiny), seq_len=64), tokenizer)


def test_collate_targets_are_shifted_and_masked():
    ex1 = {"input_ids": torch.tensor([5, 6, 7, 8]), "loss_mask": torch.tensor([False, True, True, False])}
    ex2 = {"input_ids": torch.tensor([9, 10]), "loss_mask": torch.tensor([True, False])}
    b = collate([ex1, ex2], pad_id=0, example_ids=[3, 4])
    assert b["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert b["targets"].tolist() == [[-100, 7, 8, -100], [10, -100, -100, -100]]
    assert b["example_ids"].tolist() == [3, 4]

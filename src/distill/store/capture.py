"""`distill capture`: run the teacher once over a corpus and keep its top-k at every scored position.

The teacher runs in inference mode on batches of sequences; its final hidden states are multiplied by the
output head in chunks of `chunk_size` positions and `torch.topk` is taken per chunk, so full [B, T, V] logits
never exist. Train and held-out sequences are both captured (train first, then held-out, in corpus order) and
cut into shards of `shard_size` sequences.

Parallel capture: under `torchrun` (or any launcher setting RANK and WORLD_SIZE) rank r captures shards
r, r + W, r + 2W, ... . The manifest is written once every shard exists: by rank 0 after a barrier when a
torch.distributed process group is initialized, otherwise by whichever process finishes last and finds all
shards present (a plain re-run of the same command does the same). Finished shards are never recomputed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import distill
from distill.config import DataConfig
from distill.data.corpus import Corpus, collate, load_corpus
from distill.errors import DistillError
from distill.fileio import write_json_atomic
from distill.models.loading import DEFAULT_TEACHER, LoadedModel, load_model, tokenizer_fingerprint
from distill.signals import LiveTeacher
from distill.store import codec
from distill.store.manifest import MANIFEST, PLAN, read_json
from distill.store.writer import SPLITS, ShardWriter, finalize, finished_shard

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class CaptureSettings:
    """What to capture and how; every field has a CLI flag of the same name."""

    data: DataConfig
    out: str
    teacher: str = DEFAULT_TEACHER
    top_k: int = 32
    shard_size: int = 1024  # sequences per shard (the unit of resumption and of parallel work)
    batch_size: int = 8  # sequences per teacher forward pass
    chunk_size: int = 256  # positions per head matmul + top-k
    dtype: str = "float32"  # teacher weights dtype
    device: str = "auto"  # "auto": cuda:$LOCAL_RANK when available, else cpu
    trust_remote_code: bool = False


@dataclass
class CaptureResult:
    store: Path
    manifest: dict[str, Any] | None  # None when other ranks' shards are still missing
    computed: list[int] = field(default_factory=list)  # shards captured by this call
    skipped: list[int] = field(default_factory=list)  # shards already finished on disk
    positions: int = 0  # positions captured by this call
    seconds: float = 0.0  # time spent capturing them (teacher + encoding + writing)


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _device(spec: str) -> torch.device:
    if spec != "auto":
        try:
            device = torch.device(spec)
        except RuntimeError as e:
            raise DistillError(f"unknown device {spec!r}", where="--device", fix="use cpu, cuda or cuda:N") from e
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DistillError("--device asks for CUDA but no CUDA device is available", where="--device",
                               fix="use --device cpu (or auto)")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _validate(settings: CaptureSettings, vocab: int) -> None:
    problems = []
    if not 1 <= settings.top_k <= vocab:
        problems.append(f"--top-k must be between 1 and the vocabulary size {vocab} (got {settings.top_k})")
    for name in ("shard_size", "batch_size", "chunk_size"):
        if getattr(settings, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(settings, name)})")
    if settings.dtype not in DTYPES:
        problems.append(f"--dtype must be one of {', '.join(DTYPES)} (got {settings.dtype})")
    if problems:
        raise DistillError("invalid capture settings: " + "; ".join(problems), where="distill capture",
                           fix="fix the flag values (see `distill capture --help`)")


def make_plan(settings: CaptureSettings, loaded: LoadedModel, corpus: Corpus, vocab: int) -> dict[str, Any]:
    """Identity and settings of a capture; equal plans produce interchangeable shards."""
    n_seq = len(corpus.train) + len(corpus.heldout)
    dtype = codec.record_dtype(settings.top_k, vocab)
    plan = {
        "identity": {"teacher_sha256": loaded.info.weights_sha256,
                     "tokenizer_fingerprint": tokenizer_fingerprint(loaded.tokenizer),
                     "corpus_fingerprint": corpus.fingerprint},
        "settings": {"k": settings.top_k, "vocab_size": vocab, "encoding": codec.ENCODING,
                     "record_dtype": dtype.descr, "bytes_per_position": dtype.itemsize,
                     "max_span_nats": codec.MAX_SPAN, "shard_size": settings.shard_size,
                     "n_shards": max(1, math.ceil(n_seq / settings.shard_size)), "teacher_dtype": settings.dtype},
        "teacher": {"spec": loaded.info.spec, "name": loaded.info.name, "kind": loaded.info.kind,
                    "weights_sha256": loaded.info.weights_sha256},
        "data": settings.data.model_dump(),
        "corpus": {"description": corpus.description, "train_sequences": len(corpus.train),
                   "heldout_sequences": len(corpus.heldout),
                   "train_positions": sum(int(e["loss_mask"].sum()) for e in corpus.train),
                   "heldout_positions": sum(int(e["loss_mask"].sum()) for e in corpus.heldout)},
        "distill_version": distill.__version__,
    }
    return json.loads(json.dumps(plan))  # tuples become lists, as they will be when read back


def _check_plan(store: Path, plan: dict[str, Any]) -> None:
    """Write plan.json, or refuse to resume into a folder holding a different capture."""
    path = store / PLAN
    if not path.is_file():
        write_json_atomic(path, plan)
        return
    old = read_json(path, "capture plan")
    diffs = []
    for section in ("identity", "settings"):
        for key, value in plan[section].items():
            have = old.get(section, {}).get(key)
            if have != value:
                diffs.append(f"{key}: folder {str(have)[:16]}, this run {str(value)[:16]}")
    if diffs:
        raise DistillError("the output folder holds (part of) a different capture: " + "; ".join(diffs),
                           where=str(store),
                           fix="capture into a new --out folder, or delete this one to start over")


def _shard_items(corpus: Corpus, s: int, shard_size: int) -> list[tuple[int, int]]:
    """(split code, example index) of the sequences in shard s (train first, then held-out)."""
    items = [(0, i) for i in range(len(corpus.train))] + [(1, i) for i in range(len(corpus.heldout))]
    return items[s * shard_size:(s + 1) * shard_size]


@torch.inference_mode()
def capture_shard(store: Path, s: int, settings: CaptureSettings, teacher: LiveTeacher, corpus: Corpus,
                  vocab: int, pad_id: int, device: torch.device) -> dict[str, Any]:
    """Capture one shard and commit it; returns its commit marker."""
    t0 = time.perf_counter()
    items = _shard_items(corpus, s, settings.shard_size)
    examples = [(corpus.train if split == 0 else corpus.heldout)[i] for split, i in items]
    counts = np.array([int(e["loss_mask"].sum()) for e in examples], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    index = np.stack([np.array([it[0] for it in items]), np.array([it[1] for it in items]), offsets, counts],
                     axis=1).astype(np.int64) if items else np.zeros((0, 4), dtype=np.int64)
    writer = ShardWriter(store, s, codec.record_dtype(settings.top_k, vocab), int(counts.sum()), index)
    head = teacher.model.get_output_embeddings().weight[:vocab]
    mass_sum, mass_min, max_err, max_mass_err = 0.0, math.inf, 0.0, 0.0
    tail_sum = torch.zeros(vocab, dtype=torch.float64, device=device)  # train positions' mass outside top-k
    try:
        for start in range(0, len(examples), settings.batch_size):
            batch = collate(examples[start:start + settings.batch_size], pad_id)
            hidden = teacher.hidden_states(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(1).to(device)
            is_train = torch.tensor([split == 0 for split, _ in items[start:start + settings.batch_size]],
                                    device=device)[positions // batch["loss_mask"].shape[1]]
            flat = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
            for c in range(0, flat.shape[0], settings.chunk_size):
                logits = (flat[c:c + settings.chunk_size] @ head.T).float()
                if teacher.softcap:
                    logits = torch.tanh(logits / teacher.softcap) * teacher.softcap
                top, ids = logits.topk(settings.top_k, dim=-1, sorted=True)
                lse = torch.logsumexp(logits, dim=-1, keepdim=True)
                train_rows = is_train[c:c + settings.chunk_size]
                if train_rows.any():  # the tail prior: probabilities outside the top-k, summed over positions
                    tail = logits[train_rows].sub_(lse[train_rows]).exp_().scatter_(1, ids[train_rows], 0.0)
                    tail_sum += tail.sum(0, dtype=torch.float64)
                values, ids = (top - lse).cpu(), ids.cpu()
                records = codec.encode(ids, values, vocab)
                mass = values.double().exp().sum(-1)
                mass_sum += float(mass.sum())
                mass_min = min(mass_min, float(mass.min()))
                _, decoded = codec.decode(records)
                in_grid = values >= values[:, :1] - codec.MAX_SPAN
                max_err = max(max_err, float(((decoded - values).abs() * in_grid).max()))
                max_mass_err = max(max_mass_err, float((decoded.double().exp().sum(-1) - mass).abs().max()))
                writer.append(records)
    except BaseException:
        writer.abort()
        raise
    n = int(counts.sum())
    seconds = time.perf_counter() - t0
    return writer.commit({"mass_mean": mass_sum / n if n else 1.0, "mass_min": mass_min if n else 1.0,
                          "max_logprob_error": max_err, "max_mass_error": max_mass_err,
                          "seconds": round(seconds, 3)}, tail_sum=tail_sum.cpu().numpy())


def run_capture(settings: CaptureSettings, loaded: LoadedModel | None = None) -> CaptureResult:
    """Capture this process's shards (all of them without a launcher) and write the manifest when complete."""
    rank, world = _rank_world()
    store = Path(settings.out).expanduser()
    if store.exists() and not store.is_dir():
        raise DistillError(f"--out {store} is a file, not a folder", where="--out",
                           fix="give a new folder path for the store")
    device = _device(settings.device)
    if loaded is None:
        loaded = load_model(settings.teacher, dtype=DTYPES.get(settings.dtype, torch.float32),
                            trust_remote_code=settings.trust_remote_code)
    vocab = len(loaded.tokenizer)
    _validate(settings, vocab)
    corpus = load_corpus(settings.data, loaded.tokenizer)
    plan = make_plan(settings, loaded, corpus, vocab)
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DistillError(f"cannot create the store folder: {e.strerror}", where=str(store),
                           fix="choose a writable --out path") from e
    _check_plan(store, plan)
    result = CaptureResult(store=store, manifest=None)
    if (store / MANIFEST).is_file():
        result.manifest = read_json(store / MANIFEST, "manifest")
        result.skipped = list(range(plan["settings"]["n_shards"]))
        return result
    teacher = LiveTeacher(loaded.model.to(device), vocab)
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    n_shards = plan["settings"]["n_shards"]
    for s in range(rank, n_shards, world):
        if finished_shard(store, s) is not None:
            result.skipped.append(s)
            continue
        meta = capture_shard(store, s, settings, teacher, corpus, vocab, pad_id, device)
        result.computed.append(s)
        result.positions += meta["positions"]
        result.seconds += meta["seconds"]
        log.info("shard %d/%d: %d sequences, %d positions, mass kept %.3f (min %.3f), %.0f positions/s",
                 s + 1, n_shards, meta["sequences"], meta["positions"], meta["mass_mean"], meta["mass_min"],
                 meta["positions"] / max(meta["seconds"], 1e-9))
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        torch.distributed.barrier()
    if (rank == 0 or not distributed) and all(finished_shard(store, s) for s in range(n_shards)):
        sizes = {SPLITS[0]: len(corpus.train), SPLITS[1]: len(corpus.heldout)}
        result.manifest = finalize(store, plan, sizes, {"capture": {"batch_size": settings.batch_size,
                                                                    "chunk_size": settings.chunk_size,
                                                                    "world_size": world}})
    return result

"""`distill capture`: run the teacher once over a corpus and keep its top-k at every scored position.

The top-k comes from a scorer (`distill.store.scorers`): the teacher model in this process (inference mode,
chunked head matmul, so full [B, T, V] logits never exist), or a teacher behind a scoring server (`endpoint`:
vLLM or `distill serve`, one `prompt_logprobs` request per batch). Train and held-out sequences are both captured
(train first, then held-out, in corpus order) and cut into shards of `shard_size` sequences.

Identity (plan.json, then manifest.json): a local teacher is named by the sha256 of its weights; a served one by
its served model name (`served_model`) — there are no weights here to hash — and, for both, the tokenizer's
fingerprint and the corpus's.

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
from pydantic import BaseModel, ConfigDict, Field

import distill
from distill.config import DataConfig
from distill.data.corpus import Corpus, load_corpus
from distill.errors import DistillError
from distill.fileio import write_json_atomic
from distill.loss.fused import chunk_rows
from distill.models.fast import scoring_teacher
from distill.models.loading import (
    DEFAULT_TEACHER,
    LoadedModel,
    load_model,
    load_tokenizer,
    tokenizer_fingerprint,
)
from distill.signals import LiveTeacher
from distill.store import codec
from distill.store.manifest import MANIFEST, PLAN, read_json
from distill.store.scorers import LiveScorer, ServedScorer
from distill.store.writer import SPLITS, ShardWriter, finalize, finished_shard
from distill.teachers.served import ServedTeacherConfig
from distill.training import allocator

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class CaptureSettings(BaseModel):
    """What `distill.capture` (and `distill capture`) captures and how; a field with a flag has its name."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(description="The data whose sequences the teacher scores (as `data` in a training "
                             "config: the store serves a run with the same data settings).")
    out: str = Field(description="The store folder (re-running resumes: finished shards are kept).")
    teacher: str = Field(DEFAULT_TEACHER, description="The teacher (directory, .gguf or hub id); with `served`, the "
                         "served model's name.")
    top_k: int = Field(32, description="Log-probabilities kept per position (the rest: the store's tail prior).")
    shard_size: int = Field(1024, description="Sequences per shard: the unit of resumption and of parallel work.")
    batch_size: int = Field(8, description="Sequences per teacher forward pass.")
    chunk_size: int | str = Field("auto", description="Positions per head matmul + top-k; 'auto' as "
                                  "loss.chunk_size (`chunk_rows`).")
    dtype: str = Field("float32", description="The teacher's weights dtype: float32, bfloat16 or float16.")
    device: str = Field("auto", description="'auto': cuda:$LOCAL_RANK when available, else cpu; or a torch device.")
    trust_remote_code: bool = Field(False, description="Let transformers run the teacher repository's own code.")
    compile: bool = Field(False, description="torch.compile the teacher's decoder (as teacher.compile).")
    served: ServedTeacherConfig | None = Field(None, description="A served teacher instead (then `teacher` is the "
                                               "served model's name, `top_k` its k, and only its tokenizer is "
                                               "loaded): endpoint, tokenizer, API key, concurrency, timeout and "
                                               "tries, declared as training's `teacher: {kind: served}`.")


@dataclass
class CaptureResult:
    """What `distill.capture` gives back (each process its own shards)."""

    store: Path  # the store folder
    manifest: dict[str, Any] | None  # manifest.json's content; None while other ranks' shards are still missing
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
    if settings.chunk_size != "auto" and not (isinstance(settings.chunk_size, int) and settings.chunk_size >= 1):
        problems.append(f"--chunk-size must be 'auto' or at least 1 (got {settings.chunk_size})")
    for name in ("shard_size", "batch_size"):
        if getattr(settings, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(settings, name)})")
    if settings.dtype not in DTYPES:
        problems.append(f"--dtype must be one of {', '.join(DTYPES)} (got {settings.dtype})")
    if problems:
        raise DistillError("invalid capture settings: " + "; ".join(problems), where="distill capture",
                           fix="fix the flag values (see `distill capture --help`)")


def make_plan(settings: CaptureSettings, teacher: dict[str, Any], tokenizer, corpus: Corpus, vocab: int
              ) -> dict[str, Any]:
    """Identity and settings of a capture; equal plans produce interchangeable shards. `teacher` describes it:
    `{"kind": "served", "model", "endpoint", "tokenizer"}` or a local model's spec, name, kind and weights hash."""
    n_seq = len(corpus.train) + len(corpus.heldout)
    dtype = codec.record_dtype(settings.top_k, vocab)
    who = ({"served_model": teacher["model"]} if teacher["kind"] == "served"
           else {"teacher_sha256": teacher["weights_sha256"]})
    plan = {
        "identity": {**who, "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
                     "corpus_fingerprint": corpus.fingerprint},
        "settings": {"k": settings.top_k, "vocab_size": vocab, "encoding": codec.ENCODING,
                     "record_dtype": dtype.descr, "bytes_per_position": dtype.itemsize,
                     "max_span_nats": codec.MAX_SPAN, "shard_size": settings.shard_size,
                     "n_shards": max(1, math.ceil(n_seq / settings.shard_size)), "teacher_dtype": settings.dtype},
        "teacher": teacher,
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


def capture_shard(store: Path, s: int, settings: CaptureSettings, scorer: LiveScorer | ServedScorer, corpus: Corpus,
                  vocab: int) -> dict[str, Any]:
    """Capture one shard through `scorer` and commit it; returns its commit marker."""
    t0 = time.perf_counter()
    items = _shard_items(corpus, s, settings.shard_size)
    examples = [(corpus.train if split == 0 else corpus.heldout)[i] for split, i in items]
    counts = np.array([int(e["loss_mask"].sum()) for e in examples], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    index = np.stack([np.array([it[0] for it in items]), np.array([it[1] for it in items]), offsets, counts],
                     axis=1).astype(np.int64) if items else np.zeros((0, 4), dtype=np.int64)
    writer = ShardWriter(store, s, codec.record_dtype(settings.top_k, vocab), int(counts.sum()), index)
    mass_sum, mass_min, max_err, max_mass_err = 0.0, math.inf, 0.0, 0.0
    try:
        for values, ids in scorer.chunks(examples, [split == 0 for split, _ in items], settings.top_k):
            if not len(values):
                continue
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
                          "seconds": round(seconds, 3)}, tail_sum=scorer.take_tail())


def _local_teacher(loaded: LoadedModel) -> dict[str, Any]:
    i = loaded.info
    return {"spec": i.spec, "name": i.name, "kind": i.kind, "weights_sha256": i.weights_sha256}


def _served_client(settings: CaptureSettings, tokenizer):
    """The scoring client of a served capture, after the server proved to serve `teacher` with this tokenizer."""
    served = settings.served.model_copy(update={"model": settings.teacher, "top_k": settings.top_k})
    return served.client(tokenizer, where="--teacher-endpoint")


def run_capture(settings: CaptureSettings, loaded: LoadedModel | None = None) -> CaptureResult:
    """Capture this process's shards (all of them without a launcher) and write the manifest when complete."""
    rank, world = _rank_world()
    store = Path(settings.out).expanduser()
    if store.exists() and not store.is_dir():
        raise DistillError(f"--out {store} is a file, not a folder", where="--out",
                           fix="give a new folder path for the store")
    device = _device(settings.device)
    served = settings.served
    if served:
        tokenizer = load_tokenizer(served.tokenizer or DEFAULT_TEACHER, settings.trust_remote_code)
        teacher = {"kind": "served", "model": settings.teacher, "endpoint": served.endpoint,
                   "tokenizer": served.tokenizer or DEFAULT_TEACHER}
    else:
        if loaded is None:
            loaded = load_model(settings.teacher, dtype=DTYPES.get(settings.dtype, torch.float32),
                                trust_remote_code=settings.trust_remote_code)
        tokenizer, teacher = loaded.tokenizer, _local_teacher(loaded)
    vocab = len(tokenizer)
    _validate(settings, vocab)
    corpus = load_corpus(settings.data, tokenizer)
    plan = make_plan(settings, teacher, tokenizer, corpus, vocab)
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
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    client = _served_client(settings, tokenizer) if served else None
    if client is not None:
        scorer: LiveScorer | ServedScorer = ServedScorer(client, batch_size=settings.batch_size,
                                                         concurrency=served.concurrency, floor_nats=codec.MAX_SPAN)
    else:
        allocator.tune_glibc_malloc()  # chunk buffers are reused, not faulted in afresh (as in training)
        model = scoring_teacher(loaded.model.to(device), compile=settings.compile, device=device)
        scorer = LiveScorer(LiveTeacher(model, vocab), vocab, batch_size=settings.batch_size,
                            chunk_size=chunk_rows(settings.chunk_size, vocab, device), pad_id=pad_id, device=device)
    n_shards = plan["settings"]["n_shards"]
    try:
        for s in range(rank, n_shards, world):
            if finished_shard(store, s) is not None:
                result.skipped.append(s)
                continue
            meta = capture_shard(store, s, settings, scorer, corpus, vocab)
            result.computed.append(s)
            result.positions += meta["positions"]
            result.seconds += meta["seconds"]
            log.info("shard %d/%d: %d sequences, %d positions, mass kept %.3f (min %.3f), %.0f positions/s",
                     s + 1, n_shards, meta["sequences"], meta["positions"], meta["mass_mean"], meta["mass_min"],
                     meta["positions"] / max(meta["seconds"], 1e-9))
    finally:
        if client is not None:
            client.close()
    if isinstance(scorer, ServedScorer) and scorer.padded:
        log.warning("%d position(s) got fewer than k=%d usable entries from the server (tokens it sent as "
                    "strings that map to no id); their missing slots hold ~0 probability", scorer.padded,
                    settings.top_k)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        torch.distributed.barrier()
    if (rank == 0 or not distributed) and all(finished_shard(store, s) for s in range(n_shards)):
        sizes = {SPLITS[0]: len(corpus.train), SPLITS[1]: len(corpus.heldout)}
        how = {"batch_size": settings.batch_size, "world_size": world}
        how.update({"concurrency": served.concurrency} if served
                   else {"chunk_size": chunk_rows(settings.chunk_size, vocab, device)})
        result.manifest = finalize(store, plan, sizes, {"capture": how})
    return result

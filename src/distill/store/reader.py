"""Reading a store during training: `StoreTeacher` is a `TeacherSource` backed by memory-mapped shards.

Nothing is loaded into RAM up front: the index and every shard are opened with `np.load(mmap_mode="r")`, and
a batch reads only the records of its own sequences. On open the manifest is checked against what the run
expects (teacher, tokenizer, dataset) and every file's size against the manifest; `verify_store` also checks
the sha256 of every file (it reads the whole store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distill.errors import DistillError
from distill.models.loading import file_sha256
from distill.signals import SparseSignal, TailPriorSignal
from distill.store import codec
from distill.store.manifest import check_identity, read_manifest
from distill.store.writer import SPLITS


def _check_sizes(store: Path, manifest: dict[str, Any]) -> None:
    files = [(s["file"], s["bytes"]) for s in manifest["shards"]]
    files += [(f["file"], f["bytes"]) for f in manifest["index"].values()]
    for name, size in files:
        path = store / name
        if not path.is_file():
            raise DistillError(f"the teacher store is missing its file {name}", where=str(store),
                               fix="copy the complete store folder, or re-capture it (`distill capture`)")
        actual = path.stat().st_size
        if actual != size:
            raise DistillError(f"store file {name} is truncated or altered: {actual} bytes, the manifest says "
                               f"{size}", where=str(path),
                               fix="copy the complete store again, or delete the folder and re-capture it")


def verify_store(store: str | Path) -> dict[str, Any]:
    """Check every file of a finished store against the sizes and sha256 in its manifest; return the manifest."""
    store = Path(store)
    manifest = read_manifest(store)
    _check_sizes(store, manifest)
    files = [(s["file"], s["sha256"]) for s in manifest["shards"]]
    files += [(f["file"], f["sha256"]) for f in manifest["index"].values()]
    for name, digest in files:
        if file_sha256(store / name) != digest:
            raise DistillError(f"store file {name} does not match its sha256 in the manifest (corrupted)",
                               where=str(store / name), fix="copy the store again or re-capture it")
    return manifest


class StoreTeacher:
    """The teacher's top-k from a capture store, for the rows of a batch (a `TeacherSource`).

    Args:
        store_dir: folder written by `distill capture`.
        split: "train" or "heldout": which corpus split `batch["example_ids"]` index into.
        expect: identity the run requires (see `distill.store.manifest.expected_identity`): any of
            teacher_sha256, tokenizer_fingerprint, corpus_fingerprint. Each differing field is named.
        device: where the returned signal's tensors are put.
        tail: "prior" spreads each position's residual mass over the other tokens in proportion to the store's
            tail prior (a `TailPriorSignal`; dense losses); "bucket" keeps it as one outcome (a `SparseSignal`).
            Stores captured before the tail prior existed always use "bucket".
    """

    def __init__(self, store_dir: str | Path, split: str = "train", expect: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu", tail: str = "prior"):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.store, self.split, self.device = Path(store_dir), split, torch.device(device)
        self.manifest = read_manifest(self.store)
        check_identity(self.manifest.get("identity", {}), expect or {}, where=str(self.store))
        _check_sizes(self.store, self.manifest)
        settings = self.manifest["settings"]
        self.k, self.vocab_size = int(settings["k"]), int(settings["vocab_size"])
        self.dtype = codec.record_dtype(self.k, self.vocab_size)
        self.index = np.load(self.store / self.manifest["index"][split]["file"], mmap_mode="r")
        self._shards: dict[int, np.memmap] = {}
        self.log_prior = None
        prior = self.manifest["index"].get("tail_prior")
        if tail == "prior" and prior:
            p = torch.from_numpy(np.load(self.store / prior["file"], allow_pickle=False)).float()
            self.log_prior = p.clamp_min(1e-30).log().to(self.device)

    def __len__(self) -> int:
        return len(self.index)

    def shard(self, s: int) -> np.memmap:
        """Shard s's records, memory-mapped (opened on first use)."""
        if s not in self._shards:
            meta = self.manifest["shards"][s]
            arr = np.load(self.store / meta["file"], mmap_mode="r")
            if arr.dtype != self.dtype or arr.shape != (meta["positions"],):
                raise DistillError(f"store file {meta['file']} holds {arr.dtype}×{arr.shape}, the manifest says "
                                   f"{self.dtype}×({meta['positions']},)", where=str(self.store / meta["file"]),
                                   fix="re-capture the store")
            self._shards[s] = arr
        return self._shards[s]

    def records(self, example: int) -> np.ndarray:
        """The encoded records of one sequence of this split: one per scored position, in position order."""
        if not 0 <= example < len(self.index):
            raise DistillError(f"example {example} is outside the store's {self.split} split "
                               f"({len(self.index)} sequences)", where=str(self.store),
                               fix="train on the corpus the store was captured from")
        s, offset, n = (int(v) for v in self.index[example])
        return self.shard(s)[offset:offset + n]

    def example_topk(self, example: int) -> tuple[Tensor, Tensor]:
        """Decoded (ids [n, k], log-probabilities [n, k]) of one sequence's scored positions."""
        return codec.decode(np.asarray(self.records(example)))

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> SparseSignal | TailPriorSignal:
        """Top-k of the N scored positions of `batch` (positions index the flattened [B*T] loss_mask)."""
        loss_mask = batch["loss_mask"].cpu()
        rows = []
        for b, example in enumerate(batch["example_ids"].tolist()):
            recs = self.records(int(example))
            scored = int(loss_mask[b].sum())
            if scored != len(recs):
                raise DistillError(f"{self.split} example {example} has {scored} scored positions in the batch "
                                   f"but {len(recs)} in the teacher store", where=str(self.store),
                                   fix="the batch does not come from the corpus the store was captured on: "
                                       "use the same data settings, or re-capture")
            rows.append(np.asarray(recs))
        ids, logprobs = codec.decode(np.concatenate(rows) if rows else np.zeros(0, dtype=self.dtype))
        scored_flat = loss_mask.reshape(-1).nonzero().squeeze(1)
        positions = positions.cpu()
        if not torch.equal(positions, scored_flat):
            at = torch.searchsorted(scored_flat, positions).clamp(max=max(len(scored_flat) - 1, 0))
            if len(scored_flat) == 0 or not torch.equal(scored_flat[at], positions):
                raise DistillError("the teacher store was asked for positions the batch's loss_mask does not "
                                   "score", where=str(self.store),
                                   fix="a store only holds the corpus's scored positions; use a live teacher for "
                                       "on-policy batches")
            ids, logprobs = ids[at], logprobs[at]
        if self.log_prior is not None:
            return TailPriorSignal(ids=ids.to(self.device), logprobs=logprobs.to(self.device), log_prior=self.log_prior)
        return SparseSignal(ids=ids.to(self.device), logprobs=logprobs.to(self.device))

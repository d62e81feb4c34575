"""Writing a store: shard files committed atomically, then the index and the manifest.

Layout of a store folder:

    plan.json               identity + capture settings (written first; a resumed capture must match it)
    shard-00000.npy         records, one per scored position (numpy structured array, see `codec`)
    shard-00000.idx.npy     int64 [sequences, 4]: split (0 train, 1 held-out), example index, offset, positions
    shard-00000.json        the shard's commit marker: counts, file sizes, sha256, probability mass kept
    index-train.npy         int64 [train sequences, 3]: shard, offset, positions (the reader's lookup)
    index-heldout.npy       the same for the held-out split
    manifest.json           written last: a store with a manifest is complete

A shard's two .npy files are written under temporary names and renamed; its .json is written (atomically)
after both, so a shard counts as finished only when its marker exists and the file sizes match it. Anything
else is redone by the next run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import DistillError
from distill.fileio import atomic_write, write_json_atomic
from distill.models.loading import file_sha256
from distill.store.manifest import FORMAT_VERSION, MANIFEST, read_json

SPLITS = ("train", "heldout")


def shard_name(s: int) -> str:
    return f"shard-{s:05d}"


def shard_files(store: Path, s: int) -> tuple[Path, Path, Path]:
    """(records .npy, index .npy, commit marker .json) of shard s."""
    base = store / shard_name(s)
    return base.with_suffix(".npy"), base.with_suffix(".idx.npy"), base.with_suffix(".json")


def tail_file(store: Path, s: int) -> Path:
    """Shard s's tail sums: float32 [V], the teacher's probability outside its top-k summed over the shard's
    training positions (merged into the store's tail prior by `finalize`)."""
    return (store / shard_name(s)).with_suffix(".tail.npy")


def finished_shard(store: Path, s: int) -> dict[str, Any] | None:
    """The commit marker of shard s when the shard is complete on disk, else None (it must be redone)."""
    records, index, marker = shard_files(store, s)
    if not marker.is_file():
        return None
    try:
        meta = read_json(marker, f"shard marker {marker.name}")
    except DistillError:
        return None
    for path, key in ((records, "bytes"), (index, "index_bytes"), (tail_file(store, s), "tail_bytes")):
        if key in meta and (not path.is_file() or path.stat().st_size != meta.get(key)):
            return None
    if "bytes" not in meta or "index_bytes" not in meta:
        return None
    return meta


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save to a unique temporary name, then rename (two ranks finalizing at once never collide)."""
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False), binary=True)


class ShardWriter:
    """Fills one shard's records in place (a memory-mapped temporary .npy), then commits it."""

    def __init__(self, store: Path, s: int, dtype: np.dtype, n_positions: int, index: np.ndarray):
        self.store, self.s, self.index = store, s, index
        self.records_path, self.index_path, self.marker_path = shard_files(store, s)
        self.tail_path = tail_file(store, s)
        for stale in (self.marker_path, self.records_path, self.index_path, self.tail_path):
            stale.unlink(missing_ok=True)  # a partial shard from an earlier run is redone from scratch
        self.tmp = self.records_path.with_name(f".{self.records_path.name}.tmp")
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype, shape=(n_positions,))
        self.filled = 0

    def append(self, records: np.ndarray) -> None:
        end = self.filled + len(records)
        self.array[self.filled:end] = records
        self.filled = end

    def commit(self, stats: dict[str, Any], tail_sum: np.ndarray | None = None) -> dict[str, Any]:
        """Flush, rename into place, write the index (and tail sums) and then the commit marker."""
        if self.filled != len(self.array):
            raise RuntimeError(f"shard {self.s}: wrote {self.filled} of {len(self.array)} records")
        self.array.flush()
        del self.array
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.records_path)
        _save_atomic(self.index_path, self.index)
        extra = {}
        if tail_sum is not None:
            _save_atomic(self.tail_path, tail_sum.astype(np.float32))
            extra = {"tail_file": self.tail_path.name, "tail_bytes": self.tail_path.stat().st_size}
        meta = {"shard": self.s, "file": self.records_path.name, "index_file": self.index_path.name,
                "sequences": int(len(self.index)), "positions": int(self.filled),
                "bytes": self.records_path.stat().st_size, "index_bytes": self.index_path.stat().st_size,
                "sha256": file_sha256(self.records_path), "index_sha256": file_sha256(self.index_path), **extra,
                **stats}
        write_json_atomic(self.marker_path, meta)
        return meta

    def abort(self) -> None:
        if hasattr(self, "array"):
            del self.array
        self.tmp.unlink(missing_ok=True)


def finalize(store: Path, plan: dict[str, Any], split_sizes: dict[str, int], extra: dict[str, Any]) -> dict:
    """Merge the shard indexes into one lookup per split and write the manifest (last). All shards must exist."""
    shards = []
    n_shards = plan["settings"]["n_shards"]
    for s in range(n_shards):
        meta = finished_shard(store, s)
        if meta is None:
            raise DistillError(f"shard {s} is not finished", where=str(store),
                               fix="re-run the same `distill capture` command to finish it")
        shards.append(meta)
    lookups = {name: np.full((n, 3), -1, dtype=np.int64) for name, n in split_sizes.items()}
    for meta in shards:
        idx = np.load(store / meta["index_file"], allow_pickle=False)
        for split_code, example, offset, n in idx.tolist():
            lookups[SPLITS[split_code]][example] = (meta["shard"], offset, n)
    files = {}
    for name, table in lookups.items():
        if (table[:, 0] < 0).any():
            raise DistillError(f"the shards do not cover every {name} sequence", where=str(store),
                               fix="delete the store folder and capture again")
        path = store / f"index-{name}.npy"
        _save_atomic(path, table)
        files[name] = {"file": path.name, "sequences": int(len(table)), "bytes": path.stat().st_size,
                       "sha256": file_sha256(path)}
    if all("tail_file" in m for m in shards):
        tail = sum(np.load(store / m["tail_file"], allow_pickle=False) for m in shards)
        prior = (tail / max(float(tail.sum()), 1e-300)).astype(np.float32)
        path = store / "tail-prior.npy"
        _save_atomic(path, prior)
        files["tail_prior"] = {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    positions = sum(m["positions"] for m in shards)
    mass_sum = sum(m["mass_mean"] * m["positions"] for m in shards)
    manifest = {
        "format_version": FORMAT_VERSION,
        **plan,
        "n_shards": n_shards,
        "positions": positions,
        # per-position cost: records and indexes; the tail prior is a fixed 4 bytes per vocabulary entry
        "bytes": sum(m["bytes"] + m["index_bytes"] for m in shards)
        + sum(f["bytes"] for name, f in files.items() if name != "tail_prior"),
        "tail_prior_bytes": files["tail_prior"]["bytes"] if "tail_prior" in files else 0,
        "mass_kept": {"mean": mass_sum / max(positions, 1),
                      "min": min((m["mass_min"] for m in shards if m["positions"]), default=1.0)},
        "max_logprob_error": max((m["max_logprob_error"] for m in shards), default=0.0),
        "max_mass_error": max((m["max_mass_error"] for m in shards), default=0.0),
        "index": files,
        "shards": shards,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    write_json_atomic(store / MANIFEST, manifest)
    return manifest

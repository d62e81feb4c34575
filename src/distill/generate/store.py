"""The resumable result store: append-only JSONL, one line per finished prompt, fsync'd line by line.

* `results.jsonl`: one JSON object per finished prompt, keyed by `key` (a hash of prompt, sampling
  parameters and model, see `row_key`). Re-running skips keys already present.
* `failures.jsonl`: one line per prompt given up on in a run (with the reason); those are retried next run.

A crash (even SIGKILL) can at worst leave a trailing partial line; it is cut off when the store is opened, so
the next run never sees a torn record. A lock file keeps a second process from writing to the same folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from distill.data.generated import RESULTS
from distill.errors import DistillError
from distill.fileio import read_appended_jsonl

log = logging.getLogger(__name__)

FAILURES = "failures.jsonl"


def row_key(messages: list[dict], params: dict[str, Any], model: str) -> str:
    """Stable id of one generation: sha256 of the canonical JSON of (messages, params, model)."""
    blob = json.dumps({"messages": messages, "params": params, "model": model}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def repair_tail(path: Path) -> int:
    """Cut a trailing partial line (no final newline) off a JSONL file; return the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos, block = size, 1 << 16
        keep = 0
        while pos > 0:  # scan backwards for the last newline
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


class ResultStore:
    """Single writer of an output folder. Use as a context manager (holds the folder's lock)."""

    def __init__(self, out_dir: str | Path):
        self.dir = Path(out_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DistillError(f"cannot create the output folder: {e.strerror}", where=str(self.dir),
                               fix="pick a writable --out folder") from None
        self.results, self.failures = self.dir / RESULTS, self.dir / FAILURES
        self._lock_fh = open(self.dir / ".lock", "a+b")  # noqa: SIM115 - held for the store's lifetime
        try:
            import fcntl

            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no inter-process lock
            pass
        except OSError:
            self._lock_fh.close()
            raise DistillError("another `distill generate` is writing to this output folder", where=str(self.dir),
                               fix="wait for it to finish or use another --out folder") from None
        self.torn_bytes = repair_tail(self.results) + repair_tail(self.failures)
        if self.torn_bytes:
            log.warning("removed a partial last line (%d bytes) left by an interrupted run", self.torn_bytes)
        self.rows = read_appended_jsonl(self.results)
        self.keys = {r.get("key") for r in self.rows}
        self._res = open(self.results, "ab")  # noqa: SIM115
        self._fail = open(self.failures, "ab")  # noqa: SIM115

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def done(self, key: str) -> bool:
        return key in self.keys

    @staticmethod
    def _write(fh, record: dict) -> None:
        fh.write((json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())

    def append(self, record: dict) -> bool:
        """Write one finished row (durably); False (and nothing written) if its key is already stored."""
        key = record["key"]
        if key in self.keys:
            return False
        self._write(self._res, record)
        self.keys.add(key)
        return True

    def fail(self, record: dict) -> None:
        """Record a prompt given up on (retried by the next run)."""
        self._write(self._fail, record)

    def rows_now(self) -> list[dict]:
        """Every stored row (read back from disk)."""
        return read_appended_jsonl(self.results)

    def close(self) -> None:
        for fh in (self._res, self._fail, self._lock_fh):
            if not fh.closed:
                fh.close()

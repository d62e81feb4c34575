"""Small file helpers shared across the package: atomic writes and strict JSONL reading."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from distill.errors import DistillError


def atomic_write(path: str | Path, write: Callable[[IO], Any], *, binary: bool = False, mode: int = 0o644) -> None:
    """Write a file under a unique temporary name in the same folder, fsync it, then rename it into place.

    A crash at any moment leaves either the old file or the new one, never a torn one; two processes
    writing the same path never collide on the temporary name.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = 1) -> None:
    atomic_write(path, lambda f: json.dump(payload, f, indent=indent))


def iter_jsonl(lines: Iterator[str] | list[str], where: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a malformed line or a non-object is a DistillError."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DistillError(f"malformed JSON: {e.msg}", where=f"{where} line {n}",
                               fix="write one JSON object per line") from None
        if not isinstance(row, dict):
            raise DistillError("a JSONL line is not an object", where=f"{where} line {n}",
                               fix="write one JSON object per line, e.g. {\"text\": \"...\"}")
        yield n, row


def read_json_file(path: str | Path, what: str, fix_missing: str, fix_unreadable: str) -> Any:
    """Parse a JSON file; a missing or unreadable one is a DistillError naming `what` it should have been."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DistillError(f"{what} not found", where=str(path), fix=fix_missing) from None
    except (OSError, ValueError) as e:
        raise DistillError(f"cannot read the {what} ({type(e).__name__})", where=str(path),
                           fix=fix_unreadable) from None

"""Small file helpers shared across the package: atomic writes, JSON files, strict and tolerant JSONL reading."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from distill.errors import DistillError

log = logging.getLogger(__name__)


def atomic_write(path: str | Path, write: Callable[[IO], Any], *, binary: bool = False, mode: int = 0o644) -> None:
    """Write a file under a unique temporary name in the same folder, fsync it, then rename it into place.

    A crash at any moment leaves either the old file or the new one, never a torn one; two processes
    writing the same path never collide on the temporary name. Text is written as UTF-8.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shareable(root: str | Path) -> None:
    """Give a finished folder written under `tempfile.mkdtemp` (mode 0700), and the files in it that libraries write
    0600, the modes an ordinary `mkdir` and `open` would have: what the umask allows. A model folder must be
    readable by the runtime that serves it, often another user (vLLM's, llama.cpp's)."""
    mask = os.umask(0)
    os.umask(mask)
    root = Path(root)
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def existing_file(path: str | Path, what: str, where: str, fix: str) -> Path:
    """`path` with `~` expanded; a DistillError "<what> not found: <path>" when it is not a file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DistillError(f"{what} not found: {p}", where=where, fix=fix)
    return p


def write_text_atomic(path: str | Path, text: str) -> None:
    """`atomic_write` of one string."""
    atomic_write(path, lambda f: f.write(text))


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


def read_appended_jsonl(path: Path) -> list[dict]:
    """The complete object lines of an append-only JSONL file: a trailing partial line (a write cut short) is
    ignored and an unparseable line skipped with a warning, never an error. A missing file holds no line."""
    if not path.exists():
        return []
    out = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                log.warning("skipping an unreadable line in %s", path)
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def read_json_file(path: str | Path, what: str, fix_missing: str, fix_unreadable: str, *, code: int = 2) -> Any:
    """Parse a JSON file; a missing, unreadable or malformed one is a DistillError naming `what` it should have been."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DistillError(f"{what} not found", where=str(path), fix=fix_missing, code=code) from None
    except json.JSONDecodeError as e:
        raise DistillError(f"the {what} is not valid JSON ({e.msg})", where=str(path), fix=fix_unreadable,
                           code=code) from None
    except (OSError, ValueError) as e:
        raise DistillError(f"cannot read the {what} ({type(e).__name__})", where=str(path),
                           fix=fix_unreadable, code=code) from None


def read_json_object(path: str | Path, what: str, fix: str, *, fix_missing: str | None = None,
                     fmt: str | None = None, code: int = 2) -> dict[str, Any]:
    """`read_json_file` of a file holding one JSON object; with `fmt`, one whose "format" is `fmt`."""
    data = read_json_file(path, what, fix_missing or fix, fix, code=code)
    if fmt is not None and (not isinstance(data, dict) or data.get("format") != fmt):
        raise DistillError(f"not a Distill {what}", where=str(path), fix=fix, code=code)
    if not isinstance(data, dict):
        raise DistillError(f"the {what} is not a JSON object", where=str(path), fix=fix, code=code)
    return data


def decode_text(data: bytes, what: str, where: str, fix: str, refused: str = "") -> str:
    """`data` as UTF-8 text (a BOM dropped); a binary file (NUL bytes, or not UTF-8) is a one-paragraph DistillError
    naming the offending byte. `refused` is appended to the message (e.g. "; it was not tested")."""
    if b"\x00" in data:
        raise DistillError(f"the {what} is a binary file (NUL byte at offset {data.index(0)}), not text{refused}",
                           where=where, fix=fix)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DistillError(f"the {what} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}: a binary "
                           f"file, or text in another encoding){refused}", where=where, fix=fix) from None

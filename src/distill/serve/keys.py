"""API keys for `distill serve`: a file with one key per line, optionally `name:key`."""

from __future__ import annotations

import hmac
from pathlib import Path

from distill.errors import DistillError


def load_api_keys(path: str | Path) -> dict[str, str]:
    """Read an api-key file into {key: name}. Blank lines and `#` comments are skipped.

    A line `alice:sk-123` gives key `sk-123` named `alice`; a bare key is named `key<line number>` (the key
    itself is never used as a name, so it never reaches logs or hooks).
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DistillError(f"cannot read the api-key file ({type(e).__name__})", where=str(p),
                           fix="pass a readable UTF-8 text file with one key (or name:key) per line") from None
    keys: dict[str, str] = {}
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, key = line.partition(":")
        if not sep:
            name, key = f"key{no}", line
        name, key = name.strip(), key.strip()
        if not key or not name:
            raise DistillError(f"line {no} of the api-key file has an empty name or key", where=str(p),
                               fix="write `key` or `name:key` on each line")
        keys[key] = name
    if not keys:
        raise DistillError("the api-key file holds no key", where=str(p), fix="add one key (or name:key) per line")
    return keys


def check_bearer(header: str | None, keys: dict[str, str]) -> str | None:
    """The key's name for an `Authorization: Bearer <key>` header, or None. Constant-time per key."""
    if not header or not header.lower().startswith("bearer "):
        return None
    given = header[7:].strip().encode()
    found = None
    for key, name in keys.items():
        if hmac.compare_digest(given, key.encode()):
            found = name
    return found

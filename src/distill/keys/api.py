"""API keys: the one key a client sends to an endpoint, and the keys `distill serve` accepts.

* `read_api_key(env, file, where)`: the key Distill sends (the served teacher, `distill generate`, `distill trace`,
  `distill derivation`) from an environment variable or the first line of a file, never from a config or the command
  line; a named source that is unset or empty is an error, never a silent request without a key.
* `load_api_keys(path)` and `check_bearer(header, keys)`: the server's side, a file with one key per line, optionally
  `name:key`; only the name ever reaches logs, hooks and the guard.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distill.errors import DistillError


def read_api_key(env: str | None, file: str | None, where: str, default_env: str | None = None) -> str | None:
    """The API key from the environment variable `env` or the first line of `file` (`file` wins when both are
    given), else from `default_env` when that is set and not empty, else None. Errors name `where` (the flag or the
    config field), never the key."""
    if file:
        try:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DistillError(f"cannot read the API key file ({type(e).__name__})", where=f"{where}: {file}",
                               fix="pass a readable text file whose first line is the key") from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise DistillError("the API key file is empty", where=f"{where}: {file}", fix="put the key on line 1")
        return key
    if env:
        key = os.environ.get(env, "").strip()
        if not key:
            raise DistillError(f"the environment variable {env} holding the API key is not set or empty",
                               where=where, fix=f"export {env}=<your key>, or drop the setting")
        return key
    return (os.environ.get(default_env, "").strip() or None) if default_env else None


class KeySource(BaseModel):
    """Where a client's API key comes from, declared once for every client that sends one (the served teacher,
    `distill generate`): the key itself is never a setting, so it never reaches a config dump, an output or a log."""

    model_config = ConfigDict(extra="forbid")

    api_key_env: str | None = Field(None, description="Environment variable holding the API key (never written to "
                                    "outputs or logs).")
    api_key_file: str | None = Field(None, description="File whose first line is the API key (instead of "
                                     "api_key_env).")

    @model_validator(mode="after")
    def _one_source(self) -> KeySource:
        if self.api_key_env and self.api_key_file:
            raise ValueError("the API key comes from api_key_env or api_key_file, not both")
        return self

    def api_key(self, where: str, default_env: str | None = None) -> str | None:
        """The key (`read_api_key`); errors name `where`, never the key."""
        return read_api_key(self.api_key_env, self.api_key_file, where, default_env)


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

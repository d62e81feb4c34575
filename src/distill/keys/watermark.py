"""Watermark keys: a random 256-bit secret plus the scheme parameters and the tokenizer it is meant for.

The key file is JSON, written with mode 0600. The secret itself is never printed or logged: a `key_id` (a
one-way hash of the secret) names it in outputs. Per-account sub-keys are derived with HMAC-SHA256(master,
"distill-watermark-account" || name), so a detection can name the account whose outputs leaked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.fileio import read_json_object

FORMAT = "distill-watermark-key/1"
_ACCOUNT_LABEL = b"distill-watermark-account\x00"


@dataclass(frozen=True)
class WatermarkKey:
    """A watermark secret and its scheme: green fraction `gamma`, bias `delta`, context width `h`."""

    secret: bytes = field(repr=False)
    gamma: float = 0.25
    delta: float = 2.0
    context_width: int = 4
    self_hash: bool = True
    vocab_size: int = 0
    tokenizer_fingerprint: str = ""
    account: str | None = None  # set on derived sub-keys

    @property
    def key_id(self) -> str:
        """A public name for the secret (a one-way hash; reveals nothing about the key)."""
        return hashlib.sha256(b"distill-key-id\x00" + self.secret).hexdigest()[:12]

    def for_account(self, name: str) -> WatermarkKey:
        """The sub-key of account `name` (HMAC-SHA256 of the master secret and the name)."""
        if self.account is not None:
            raise DistillError("sub-keys can only be derived from a master key", where=f"account {self.account}")
        sub = hmac.new(self.secret, _ACCOUNT_LABEL + name.encode("utf-8"), hashlib.sha256).digest()
        return replace(self, secret=sub, account=name)

    def check_tokenizer(self, tokenizer, where: str = "watermark key") -> None:
        """Refuse a tokenizer other than the one the key was made for (vocab size or fingerprint differ)."""
        n = len(tokenizer)
        if self.vocab_size and n != self.vocab_size:
            raise DistillError(
                f"the watermark key was made for a tokenizer with {self.vocab_size} tokens, but this tokenizer "
                f"has {n}", where=where,
                fix="use the tokenizer of the model that generated the text (`--tokenizer`), or the key made for it")
        if self.tokenizer_fingerprint and _vocab_fingerprint(tokenizer) != self.tokenizer_fingerprint:
            raise DistillError(
                "the watermark key was made for a different tokenizer (same size, different vocabulary)",
                where=where,
                fix="use the tokenizer of the model that generated the text (`--tokenizer`), or the key made for it")

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "key": self.secret.hex(), "gamma": self.gamma, "delta": self.delta,
                "context_width": self.context_width, "self_hash": self.self_hash, "vocab_size": self.vocab_size,
                "tokenizer_fingerprint": self.tokenizer_fingerprint,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def public_dict(self) -> dict[str, Any]:
        """Everything about the key except the secret (safe to print)."""
        d = {"key_id": self.key_id, "gamma": self.gamma, "delta": self.delta, "context_width": self.context_width,
             "self_hash": self.self_hash, "vocab_size": self.vocab_size}
        if self.account is not None:
            d["account"] = self.account
        return d


def _vocab_fingerprint(tokenizer) -> str:
    """The key file's `tokenizer_fingerprint` field: SHA-256 of the (token, id) table, in id order.

    Deliberately not `distill.models.loading.tokenizer_fingerprint` (which also hashes the special tokens and
    the tokenizer class): green lists depend on token ids only, and every key file records this value."""
    vocab = tokenizer.get_vocab()
    items = sorted(vocab.items(), key=lambda kv: (kv[1], kv[0]))
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()


def validate_params(gamma: float, delta: float, context_width: int, where: str = "watermark key") -> None:
    if not 0.0 < gamma < 1.0:
        raise DistillError(f"gamma must be between 0 and 1 (got {gamma})", where=where, fix="use e.g. 0.25")
    if not 0.0 <= delta <= 100.0:
        raise DistillError(f"delta must be between 0 and 100 (got {delta})", where=where, fix="use e.g. 2")
    if not 1 <= context_width <= 16:
        raise DistillError(f"context width h must be between 1 and 16 (got {context_width})", where=where,
                           fix="use 4 with self-hash or 1 with plain left-hash")


def new_key(tokenizer=None, *, gamma: float = 0.25, delta: float = 2.0, context_width: int = 4,
            self_hash: bool = True, vocab_size: int | None = None) -> WatermarkKey:
    """A fresh random 256-bit key for `tokenizer` (or for a bare `vocab_size` when no tokenizer is given)."""
    validate_params(gamma, delta, context_width)
    if tokenizer is not None:
        vocab_size, fp = len(tokenizer), _vocab_fingerprint(tokenizer)
    else:
        if not vocab_size:
            raise DistillError("a watermark key needs a tokenizer or a vocabulary size")
        fp = ""
    return WatermarkKey(secrets.token_bytes(32), gamma, delta, context_width, self_hash, int(vocab_size), fp)


def save_key(key: WatermarkKey, path: str | Path) -> Path:
    """Write the key file with mode 0600 (refuses to overwrite an existing file)."""
    path = Path(path)
    if path.exists():
        raise DistillError("refusing to overwrite an existing key file", where=str(path),
                           fix="choose another --out path or delete the old key deliberately")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(path, e) from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DistillError("refusing to overwrite an existing key file", where=str(path),
                           fix="choose another --out path or delete the old key deliberately") from None
    except OSError as e:
        raise _unwritable(path, e) from None
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(key.to_json(), f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, 0o600)
    except BaseException as e:
        path.unlink(missing_ok=True)  # never leave a half-written key behind
        if isinstance(e, OSError):
            raise _unwritable(path, e) from None
        raise
    return path


def _unwritable(path: Path, e: OSError) -> DistillError:
    return DistillError(f"cannot write the watermark key file ({e.strerror or type(e).__name__}); nothing was "
                        "written", where=str(path), fix="choose an --out path in a folder you can write to")


def load_key(path: str | Path) -> WatermarkKey:
    """Read and check a key file written by `save_key`."""
    path = Path(path)
    data = read_json_object(path, "watermark key file", "pass a key file written by `distill watermark keygen`",
                            fix_missing="create one with `distill watermark keygen --out FILE`", fmt=FORMAT)
    try:
        secret = bytes.fromhex(data["key"])
        gamma, delta = float(data["gamma"]), float(data["delta"])
        h, self_hash = int(data["context_width"]), bool(data["self_hash"])
        vocab, fp = int(data.get("vocab_size") or 0), str(data.get("tokenizer_fingerprint") or "")
    except (KeyError, TypeError, ValueError) as e:
        raise DistillError(f"the watermark key file is damaged (field {e})", where=str(path),
                           fix="restore it from a backup; a key cannot be rebuilt") from e
    if len(secret) < 16:
        raise DistillError("the watermark key is too short (fewer than 128 bits)", where=str(path),
                           fix="create a new key with `distill watermark keygen`")
    validate_params(gamma, delta, h, where=str(path))
    return WatermarkKey(secret, gamma, delta, h, self_hash, vocab, fp)

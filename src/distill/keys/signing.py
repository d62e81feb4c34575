"""Signing keys: the Ed25519 keys that sign lineage records and export records (`distill keys`).

* `new_key(out)` writes an unencrypted PKCS#8 PEM private key with mode 0600 (and `<out>.pub`, the public key).
* `load_private_key`, `load_public_key`, `resolve_signing_key` (`--signing-key` or $DISTILL_SIGNING_KEY) read them;
  `fingerprint` ("sha256:<hex>" of the raw public key) names a key, `trusted_fingerprint` a signer to require.

The signatures themselves are `distill.provenance.signatures`. Private keys are only ever read from the path the user
names; their bytes are never logged or written anywhere else.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from distill.errors import DistillError
from distill.fileio import existing_file

ENV_VAR = "DISTILL_SIGNING_KEY"


def raw_public_bytes(public: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key (what a fingerprint and a signature block hold)."""
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public: Ed25519PublicKey | bytes) -> str:
    """"sha256:<hex>" of the raw 32-byte public key."""
    raw = public if isinstance(public, bytes) else raw_public_bytes(public)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _looks_like_model_dir(folder: Path) -> bool:
    return any((folder / n).exists() for n in ("config.json", "lineage.json")) or any(folder.glob("*.safetensors"))


def new_key(out: str | Path, *, force: bool = False) -> tuple[Path, str]:
    """Write a new Ed25519 private key to `out` (PEM, mode 0600) and its public key to `out.pub`.

    Returns (path, fingerprint). Refuses to overwrite unless `force`, and refuses a model directory.
    """
    path = Path(out).expanduser()
    if path.is_dir():
        raise DistillError(f"{path} is a directory", where="--out", fix="give a file name, e.g. ~/.distill/signing.pem")
    if _looks_like_model_dir(path.parent if str(path.parent) else Path(".")):
        raise DistillError("refusing to write a private key into a model directory", where=str(path),
                           fix="keep signing keys outside model and output directories, e.g. ~/.distill/signing.pem")
    if path.exists() and not force:
        raise DistillError(f"{path} already exists", where="--out", fix="choose another file name or pass --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)
    pub = key.public_key()
    pub_path = path.with_name(path.name + ".pub")
    pub_path.write_bytes(pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path, fingerprint(pub)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (unencrypted PEM). Errors never include the file's contents."""
    p = existing_file(path, "signing key file", "--signing-key / DISTILL_SIGNING_KEY",
                      "create one with `distill keys new --out FILE`, or fix the path")
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except TypeError as e:
        raise DistillError("the signing key is encrypted with a passphrase, which Distill does not support",
                           where=str(p), fix="create an unencrypted key with `distill keys new` (mode 0600)") from e
    except (ValueError, OSError):
        raise DistillError("the signing key file is not a PEM private key", where=str(p),
                           fix="point at the file written by `distill keys new`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DistillError("the signing key is not an Ed25519 key", where=str(p),
                           fix="create one with `distill keys new --out FILE`")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read a public key (PEM, as written to `<key>.pub`); a private key file yields its public half."""
    p = existing_file(path, "trusted key file", "--trusted-key",
                      "give the .pub file written next to the key by `distill keys new`")
    data = p.read_bytes()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        return load_private_key(p).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise DistillError("the trusted key is not an Ed25519 public key", where=str(p),
                           fix="give the .pub file written by `distill keys new`")
    return key


def trusted_fingerprint(value: str | Path) -> str:
    """A signer to require: a "sha256:..." fingerprint as text, or a public/private key file."""
    text = str(value)
    if text.startswith("sha256:") and not Path(text).exists():
        return text.lower()
    return fingerprint(load_public_key(value))


def resolve_signing_key(cli_value: str | Path | None) -> Path | None:
    """The signing key to use: `--signing-key` if given, else $DISTILL_SIGNING_KEY, else None (unsigned).

    A named key that does not exist is an error, never a silent fallback to unsigned.
    """
    value = cli_value if cli_value not in (None, "") else os.environ.get(ENV_VAR) or None
    if value is None:
        return None
    origin = "--signing-key" if cli_value not in (None, "") else f"${ENV_VAR}"
    return existing_file(value, "signing key file", origin,
                         "create one with `distill keys new --out FILE`, fix the path, or unset it to write "
                         "unsigned lineage")

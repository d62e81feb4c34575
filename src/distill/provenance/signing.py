"""Ed25519 keys and signatures for lineage records.

* `new_key(out)` writes an unencrypted PKCS#8 PEM private key with mode 0600 (and `<out>.pub`, the public key).
* `sign_record(record, key)` returns a signature block: algorithm, the raw public key (base64), its
  fingerprint ("sha256:<hex>") and the signature over `canonical_json(record without "signature")`.
* `verify_record(record)` checks the embedded signature with the embedded public key, so no private key is
  needed to verify; `--trusted-key` pins the signer's fingerprint.

Private keys are only ever read from the path the user names; their bytes are never logged or written
anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from distill.errors import DistillError
from distill.fileio import existing_file

ENV_VAR = "DISTILL_SIGNING_KEY"
ALGORITHM = "ed25519"
SIGNATURE_KEY = "signature"


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON used for signing: sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def signing_payload(record: dict[str, Any]) -> bytes:
    """The bytes a lineage signature covers: the record without its signature block."""
    return canonical_json({k: v for k, v in record.items() if k != SIGNATURE_KEY})


def _raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public: Ed25519PublicKey | bytes) -> str:
    """"sha256:<hex>" of the raw 32-byte public key."""
    raw = public if isinstance(public, bytes) else _raw_public(public)
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


def sign_record(record: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signature block for `record` (whose own "signature" entry, if any, is ignored)."""
    pub = key.public_key()
    return {
        "algorithm": ALGORITHM,
        "public_key": base64.b64encode(_raw_public(pub)).decode(),
        "fingerprint": fingerprint(pub),
        "value": base64.b64encode(key.sign(signing_payload(record))).decode(),
    }


def verify_record(record: dict[str, Any]) -> tuple[str, str | None, str]:
    """Check the embedded signature: ("valid" | "unsigned" | "invalid", signer fingerprint, detail)."""
    block = record.get(SIGNATURE_KEY)
    if block is None:
        return "unsigned", None, "no signature block"
    if not isinstance(block, dict) or block.get("algorithm") != ALGORITHM:
        return "invalid", None, "signature block is malformed or not ed25519"
    try:
        raw = base64.b64decode(block["public_key"], validate=True)
        sig = base64.b64decode(block["value"], validate=True)
        pub = Ed25519PublicKey.from_public_bytes(raw)
    except (KeyError, ValueError, TypeError):
        return "invalid", None, "signature block is malformed"
    fp = fingerprint(raw)
    if block.get("fingerprint") != fp:
        return "invalid", fp, "the recorded fingerprint does not match the embedded public key"
    try:
        pub.verify(sig, signing_payload(record))
    except InvalidSignature:
        return "invalid", fp, "the signature does not match the record (lineage.json was changed after signing)"
    except ValueError as e:  # non-JSON-able content cannot have been signed
        return "invalid", fp, f"the record cannot be canonicalised: {e}"
    return "valid", fp, "signature valid"


def signature_problems(record: dict[str, Any], name: str, require_signature: bool = False,
                       trusted_key: str | Path | None = None) -> tuple[str, str | None, list[str], bool | None]:
    """A record's signature checked: (status and signer as `verify_record` gives them, what is wrong in words naming
    the record (`name`, e.g. "lineage.json"), whether it was signed by `trusted_key` (None when none was given))."""
    problems: list[str] = []
    status, signer, detail = verify_record(record)
    if status == "invalid":
        problems.append(f"{name}'s signature: {detail}")
    elif status == "unsigned" and require_signature:
        problems.append(f"{name} is not signed and a signature was required")
    trusted = None
    if trusted_key is not None:
        want = trusted_fingerprint(trusted_key)
        trusted = status == "valid" and signer == want
        if not trusted:
            problems.append(f"not signed by the trusted key {want} (signer: {signer or 'none'})")
    return status, signer, problems, trusted

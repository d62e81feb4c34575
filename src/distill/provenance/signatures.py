"""Ed25519 signatures on lineage and export records (the keys that make them: `distill.keys.signing`).

* `sign_record(record, key)` returns a signature block: algorithm, the raw public key (base64), its
  fingerprint ("sha256:<hex>") and the signature over `canonical_json(record without "signature")`.
* `verify_record(record)` checks the embedded signature with the embedded public key, so no private key is
  needed to verify; `--trusted-key` pins the signer's fingerprint.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from distill.keys.signing import fingerprint, raw_public_bytes, trusted_fingerprint

ALGORITHM = "ed25519"
SIGNATURE_KEY = "signature"


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON used for signing: sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def signing_payload(record: dict[str, Any]) -> bytes:
    """The bytes a lineage signature covers: the record without its signature block."""
    return canonical_json({k: v for k, v in record.items() if k != SIGNATURE_KEY})


def sign_record(record: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signature block for `record` (whose own "signature" entry, if any, is ignored)."""
    pub = key.public_key()
    return {
        "algorithm": ALGORITHM,
        "public_key": base64.b64encode(raw_public_bytes(pub)).decode(),
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

"""The export record: what `distill export` wrote, pinned by hash, signed, and checked by `distill lineage verify`.

A GGUF export's record is `<file>.export.json` beside it, a directory export's `export.json` inside it. It holds the
file's sha256 (or the directory's safetensors hash), the measured figures, the student's weights hash and the sha256
of the student's lineage.json, and is signed with the same Ed25519 key as lineage (`--signing-key` or
$DISTILL_SIGNING_KEY). A GGUF file also carries the student's whole lineage record in its metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.fileio import read_json_object
from distill.keys.signing import load_private_key
from distill.provenance import signatures

FORMAT = "distill-export/1"
JSON_SUFFIX = ".export.json"
DIR_RECORD = "export.json"


def record_path(export: str | Path) -> Path:
    """Where the record of the export at `export` (a .gguf file or an exported directory) lives."""
    p = Path(export)
    return p / DIR_RECORD if p.is_dir() else p.with_name(p.name + JSON_SUFFIX)


def is_export(path: str | Path) -> bool:
    """Whether `path` is something `distill export` wrote (it has its record) rather than a trained student."""
    p = Path(path)
    return record_path(p).is_file() and not (p.is_dir() and (p / "lineage.json").is_file())


def sign(record: dict[str, Any], signing_key: str | Path | None) -> dict[str, Any]:
    """`record` with its Ed25519 signature block when a key is given (the key file itself is never recorded)."""
    if signing_key is None:
        return record
    key = load_private_key(Path(signing_key).expanduser())
    body = json.loads(json.dumps(record, allow_nan=False))
    body.pop(signatures.SIGNATURE_KEY, None)
    return {**body, signatures.SIGNATURE_KEY: signatures.sign_record(body, key)}


@dataclass
class ExportCheck:
    """`verify_export`'s outcome; `ok` is False when anything did not check out."""

    path: str
    signature: str  # valid / unsigned / invalid
    signer: str | None
    trusted: bool | None
    weights_ok: bool
    source_lineage: str  # the embedded student lineage's signature status, or "none"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> str:
        return "INVALID" if self.problems else "VALID" if self.signature == "valid" else "UNSIGNED"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "signature": self.signature, "signer": self.signer,
                "trusted": self.trusted, "weights_ok": self.weights_ok, "source_lineage": self.source_lineage,
                "problems": self.problems}


def _embedded_lineage(path: Path) -> tuple[str | None, str | None]:
    """The lineage JSON text and its recorded sha256 from a GGUF file's metadata."""
    from distill.deploy.gguf_writer import read_metadata

    meta = read_metadata(path, "distill.")
    return meta.get("distill.lineage"), meta.get("distill.lineage_sha256")


def verify_export(path: str | Path, *, trusted_key: str | Path | None = None,
                  require_signature: bool = False) -> ExportCheck:
    """Check an export against its record: the record's signature (and signer), the file's bytes (or the
    directory's weights) against the recorded hash, and for a GGUF file the lineage in its metadata against the
    recorded lineage hash and its own signature."""
    from distill.models.loading import file_sha256, weights_sha256

    p = Path(path)
    rec = read_json_object(record_path(p), "export record", code=4, fmt=FORMAT,
                           fix="point at a file or directory written by `distill export` (its record sits beside "
                               "a .gguf file as FILE.export.json, inside a directory as export.json)")
    status, signer, problems, trusted = signatures.signature_problems(rec, "the export record", require_signature, trusted_key)
    if p.is_dir():
        weights_ok = weights_sha256(p) == rec.get("weights_sha256")
    else:
        weights_ok = file_sha256(p) == rec.get("sha256")
    if not weights_ok:
        problems.append("the exported weights do not match the hash recorded at export (the file was changed)")
    source = "none"
    if not p.is_dir() and weights_ok:
        text, recorded = _embedded_lineage(p)
        if text is not None:
            source = signatures.verify_record(json.loads(text))[0]
            if recorded != rec.get("lineage_sha256"):
                problems.append("the lineage hash in the GGUF metadata differs from the export record's")
            if source == "invalid":
                problems.append("the student lineage embedded in the GGUF file does not verify")
    elif p.is_dir() and isinstance(rec.get("source_lineage"), dict):
        source = signatures.verify_record(rec["source_lineage"])[0]
        if source == "invalid":
            problems.append("the student lineage in export.json does not verify")
    return ExportCheck(path=str(p), signature=status, signer=signer, trusted=trusted, weights_ok=weights_ok,
                       source_lineage=source, problems=problems)


"""Authorization records: a rights holder's (or counsel's) permission to distil from a teacher the table refuses.

Format (YAML or JSON)::

    granted_by: "Meta Platforms, Inc. (licensing@...)"   # who granted it
    covers:
      teacher: "meta-llama/Meta-Llama-3-*"                # glob over the teacher's names, licence ids, row ids
      use: distillation                                   # optional; distillation (default), training or any
    reference: "agreement 2026-117, signed 2026-10-02"    # where the grant can be checked
    expires: 2027-12-31                                   # optional ISO date

`covers` may also be a plain string (the teacher pattern). Records that are missing fields, cover another
teacher or another use, or have expired are rejected with an error, never silently ignored.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from distill.errors import DistillError
from distill.fileio import existing_file
from distill.provenance.policy.identify import TeacherIdentity

_USES = ("distillation", "distill", "training", "any", "*")
_FIX = "write the record as documented in docs/policy.md (granted_by, covers.teacher, reference, optional expires)"


def _parse_date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError as e:
        raise DistillError(f"`expires` is not a date: {value!r}", where=where, fix="write it as YYYY-MM-DD") from e


def read_authorization(path: str | Path) -> dict[str, Any]:
    """Read and check the shape of an authorization record (not yet which teacher it covers)."""
    p = existing_file(path, "authorization file", "--authorization / teacher.authorization",
                      "check the path, or leave it out to use the policy table alone")
    raw_bytes = p.read_bytes()
    try:
        text = raw_bytes.decode("utf-8")
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise DistillError(f"the authorization file is not valid YAML/JSON: {e}", where=str(p), fix=_FIX) from e
    if not isinstance(data, dict):
        raise DistillError("the authorization file must hold a mapping", where=str(p), fix=_FIX)
    covers = data.get("covers")
    if isinstance(covers, str):
        covers = {"teacher": covers}
    missing = [k for k in ("granted_by", "reference") if not str(data.get(k) or "").strip()]
    if not isinstance(covers, dict) or not str(covers.get("teacher") or "").strip():
        missing.append("covers.teacher")
    if missing:
        raise DistillError(f"the authorization record is missing {', '.join(missing)}", where=str(p), fix=_FIX)
    use = str(covers.get("use") or "distillation").strip().lower()
    record: dict[str, Any] = {
        "granted_by": str(data["granted_by"]).strip(),
        "covers": {"teacher": str(covers["teacher"]).strip(), "use": use},
        "reference": str(data["reference"]).strip(),
        "expires": None,
        "file": str(p),
        "sha256": hashlib.sha256(raw_bytes).hexdigest(),
    }
    if data.get("expires") not in (None, ""):
        record["expires"] = _parse_date(data["expires"], str(p)).isoformat()
    return record


def _candidates(identity: TeacherIdentity) -> list[str]:
    values = [identity.spec, identity.api_model, *identity.names, *identity.licenses, *(r.id for r in identity.rows)]
    if identity.base_url:
        values.append(identity.base_url)
        values += [e.value for e in identity.evidence if e.kind == "api_host"]
    return [v for v in values if v]


def check_authorization(record: dict[str, Any], identity: TeacherIdentity, *,
                        today: dt.date | None = None) -> dict[str, Any]:
    """Reject a record that covers another teacher or use, or has expired; return it with what it matched.

    Raises DistillError(code=3): a contradictory authorization is a refusal, not a typo to skip over.
    """
    where = record.get("file", "authorization")
    today = today or dt.date.today()
    if record.get("expires") and dt.date.fromisoformat(record["expires"]) < today:
        raise DistillError(f"the authorization expired on {record['expires']}", where=where, code=3,
                           fix="obtain a current authorization from the rights holder and record it")
    use = record["covers"]["use"]
    if use not in _USES:
        raise DistillError(f"the authorization covers the use {use!r}, not distillation", where=where, code=3,
                           fix="use a record whose covers.use is distillation (or training / any)")
    pattern = record["covers"]["teacher"].lower()
    hits = [c for c in _candidates(identity) if fnmatch.fnmatchcase(c.lower(), pattern)]
    if not hits:
        known = ", ".join(_candidates(identity)[:6]) or identity.spec
        raise DistillError(
            f"the authorization covers teacher {record['covers']['teacher']!r}, which does not match this teacher "
            f"({known})", where=where, code=3,
            fix="use the authorization granted for this teacher, or correct covers.teacher")
    return {**record, "matched": hits[0]}

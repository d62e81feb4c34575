"""Signed lineage: `lineage.json` in every student directory says where the student came from.

A record holds the teacher (identity and weights hash, or API endpoint and model), data fingerprints, the
full config, the code version, the policy verdict and any authorization, evaluation figures, the student's own
weights hash and, when the teacher directory has a lineage.json of its own, that record (a chain).
`write_lineage` signs it with Ed25519 when given a key; `verify` checks signature, weights and chain.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import DistillError
from distill.fileio import read_json_object, write_text_atomic
from distill.keys.signing import load_private_key
from distill.provenance import signatures

if TYPE_CHECKING:
    from distill.models.loading import ModelInfo
    from distill.provenance.policy.gate import Verdict

FILENAME = "lineage.json"
FORMAT = "distill-lineage/1"
_UNHASHED = {FILENAME, "README.md"}  # written after (or around) the lineage: not part of an artifact's hash
_TEMPORARY = (f".{FILENAME}.", ".tmp-lineage")  # what an interrupted write leaves (now, and in earlier versions)


# ---------------------------------------------------------------- building


def jsonable(obj: Any) -> Any:
    """Plain JSON values for configs and figures: Paths, tuples, sets, dataclasses, pydantic models, numpy/torch
    scalars; NaN and infinities become None (canonical JSON has no NaN)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(jsonable(v) for v in obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):
        return jsonable(obj.model_dump())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return jsonable(obj.item())
        except (TypeError, ValueError):
            pass
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return jsonable(obj.to_dict())
    return str(obj)


def code_version() -> dict[str, Any]:
    """distill.__version__ and, when the package lives in a git checkout, its commit and dirty flag."""
    import distill

    out: dict[str, Any] = {"distill_version": distill.__version__, "git_commit": None, "git_dirty": None}
    root = Path(distill.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if head.returncode == 0:
            out["git_commit"] = head.stdout.strip()
            st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10)
            out["git_dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def read_lineage(directory: str | Path) -> dict[str, Any] | None:
    """The lineage record of a directory, or None when it has none. A malformed file is a verification error."""
    p = Path(directory) / FILENAME
    if not p.is_file():
        return None
    return read_json_object(p, "lineage record", "the file was damaged or edited; restore it from the original output",
                            code=4)


def _teacher_entry(teacher: ModelInfo | None, api: dict[str, str] | None, verdict: Verdict | dict | None
                   ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    identity = None
    if verdict is not None:
        identity = (verdict.get("teacher") if isinstance(verdict, dict) else verdict.identity.to_dict())
    if teacher is not None:
        entry = {"kind": "model", "spec": teacher.spec, "model_kind": teacher.kind, "name": teacher.name,
                 "weights_sha256": teacher.weights_sha256 or None, "identity": identity}
        parent = None
        for folder in (teacher.local_dir, teacher.path if teacher.kind == "dir" else ""):
            if folder and Path(folder).is_dir():
                parent = read_lineage(folder)
                if parent is not None:
                    break
        return entry, parent
    if api is not None:
        return {"kind": "api", "base_url": api.get("base_url"), "model": api.get("model"),
                "identity": identity}, None
    raise DistillError("a lineage record needs a teacher (ModelInfo) or an API teacher (base_url, model)",
                       where="lineage.build_record", fix="pass teacher=info or api={'base_url':..., 'model':...}")


def build_record(*, teacher: ModelInfo | None = None, api: dict[str, str] | None = None,
                 verdict: Verdict | dict | None = None, config: Any = None,
                 data: list[dict[str, Any]] | dict[str, Any] | None = None,
                 evaluation: dict[str, Any] | None = None, student_name: str = "",
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble a lineage record (unsigned, without the student's weights hash: `write_lineage` adds it).

    Args:
        teacher: the teacher's ModelInfo (white-box / local teacher), or
        api: {"base_url": ..., "model": ...} for an API teacher.
        verdict: the policy Verdict (or its to_dict()) from check_model_teacher / check_api_teacher.
        config: the full training config (pydantic model, dataclass or dict).
        data: data fingerprints, e.g. [{"name": "shakespeare", "sha256": "...", "tokens": 123456}].
        evaluation: evaluation figures, e.g. {"perplexity": 12.3, "teacher_perplexity": 9.8}.
        student_name: the student's name after `apply_obligations`.
        extra: anything else worth recording (kept under "extra").
    """
    teacher_entry, parent = _teacher_entry(teacher, api, verdict)
    policy = verdict if isinstance(verdict, dict) or verdict is None else verdict.to_dict()
    if isinstance(data, dict):
        data = [data]
    record = {
        "format": FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "student": {"name": student_name},
        "teacher": teacher_entry,
        "data": data or [],
        "config": config,
        "code": code_version(),
        "policy": policy,
        "evaluation": evaluation or {},
        "teacher_lineage": parent,
    }
    if extra:
        record["extra"] = extra
    return jsonable(record)


# ---------------------------------------------------------------- hashing and writing


def _files_sha256(directory: Path) -> dict[str, str]:
    from distill.models.loading import file_sha256

    out = {}
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).as_posix()
        if p.is_file() and rel not in _UNHASHED and not p.name.startswith(_TEMPORARY):
            out[rel] = file_sha256(p)
    return out


def artifact_hashes(directory: str | Path) -> dict[str, Any]:
    """What lineage pins for a directory: the safetensors weights hash for a model, else every file's hash."""
    from distill.models.loading import weights_sha256

    d = Path(directory)
    if any(d.glob("*.safetensors")):
        return {"artifact": "model", "weights_sha256": weights_sha256(d)}
    return {"artifact": "files", "files_sha256": _files_sha256(d)}


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except ValueError:
        return False


def write_lineage(student_dir: str | Path, record: dict[str, Any], signing_key: str | Path | None = None) -> Path:
    """Write `<student_dir>/lineage.json`: the record plus the student's hashes, signed when a key is given.

    The student's weights must already be saved (their hash is taken here). A signing key stored inside the
    student directory is refused: it would be shipped with the model. The file is written atomically.
    """
    d = Path(student_dir)
    if not d.is_dir():
        raise DistillError(f"student directory not found: {d}", where="lineage", fix="save the student first")
    key = None
    if signing_key is not None:
        key_path = Path(signing_key).expanduser()
        if _inside(key_path, d):
            raise DistillError("refusing to sign with a key stored inside the student directory: it would be "
                               "distributed with the model", where=str(key_path),
                               fix="move the key outside model/output directories (e.g. ~/.distill/) and point "
                                   "--signing-key or DISTILL_SIGNING_KEY at it")
        key = load_private_key(key_path)
    rec = json.loads(json.dumps(jsonable(record), allow_nan=False))  # exactly what will be on disk
    rec.pop(signatures.SIGNATURE_KEY, None)
    stale = ("artifact", "weights_sha256", "files_sha256")
    rec["student"] = {**{k: v for k, v in (rec.get("student") or {}).items() if k not in stale},
                      **artifact_hashes(d)}
    if key is not None:
        rec[signatures.SIGNATURE_KEY] = signatures.sign_record(rec, key)
    target = d / FILENAME
    write_text_atomic(target, json.dumps(rec, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")
    return target


# ---------------------------------------------------------------- verifying


@dataclass
class ChainLink:
    """One generation: a student and what it was distilled from."""

    student: str
    teacher: str
    decision: str
    signature: str  # valid / unsigned / invalid
    signer: str | None


@dataclass
class VerifyResult:
    """Outcome of `verify`. `ok` is False when anything was tampered with or did not check out."""

    directory: str
    signature: str  # "valid", "unsigned" or "invalid"
    signer: str | None
    trusted: bool | None  # None when no trusted key was asked for
    weights_ok: bool | None  # None when the record pins nothing checkable
    problems: list[str] = field(default_factory=list)
    chain: list[ChainLink] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> str:
        """VALID, UNSIGNED or INVALID (any problem)."""
        if self.problems:
            return "INVALID"
        return "VALID" if self.signature == "valid" else "UNSIGNED"

    def to_dict(self) -> dict[str, Any]:
        return {"directory": self.directory, "status": self.status, "signature": self.signature,
                "signer": self.signer, "trusted": self.trusted, "weights_ok": self.weights_ok,
                "problems": self.problems, "chain": [dataclasses.asdict(c) for c in self.chain]}


def _teacher_label(rec: dict[str, Any]) -> str:
    t = rec.get("teacher") or {}
    if t.get("kind") == "api":
        return f"{t.get('model')} via {t.get('base_url')}"
    return str(t.get("name") or t.get("spec") or "?")


def _chain(rec: dict[str, Any], label: str, problems: list[str], depth: int = 0) -> list[ChainLink]:
    status, signer, detail = signatures.verify_record(rec)
    if status == "invalid" and depth:
        problems.append(f"the teacher's embedded lineage (generation {depth}) is invalid: {detail}")
    link = ChainLink(student=label, teacher=_teacher_label(rec),
                     decision=str((rec.get("policy") or {}).get("decision", "?")), signature=status, signer=signer)
    parent = rec.get("teacher_lineage")
    if isinstance(parent, dict) and depth < 64:
        return [link, *_chain(parent, link.teacher, problems, depth + 1)]
    return [link]


def verify(student_dir: str | Path, *, trusted_key: str | Path | None = None,
           require_signature: bool = False) -> VerifyResult:
    """Check a directory's lineage: signature (and signer, when `trusted_key` is given), the weights (or files)
    against the recorded hashes, and the embedded teacher lineage chain.

    Never raises for a failed check (see `VerifyResult.problems`); raises DistillError(code=4) when there is no
    lineage.json or it is not JSON.
    """
    d = Path(student_dir)
    rec = read_lineage(d)
    if rec is None:
        raise DistillError(f"no {FILENAME} in {d}", where=str(d), code=4,
                           fix="point at a student directory written by `distill train`")
    status, signer, problems, trusted = signatures.signature_problems(rec, FILENAME, require_signature, trusted_key)
    student = rec.get("student") or {}
    weights_ok = None
    try:
        if student.get("weights_sha256"):
            from distill.models.loading import weights_sha256

            weights_ok = weights_sha256(d) == student["weights_sha256"]
            if not weights_ok:
                problems.append("the weights do not match the hash recorded in lineage.json (weights changed)")
        elif student.get("files_sha256"):
            now = _files_sha256(d)
            changed = sorted(k for k in set(now) | set(student["files_sha256"])
                             if now.get(k) != student["files_sha256"].get(k))
            weights_ok = not changed
            if changed:
                problems.append(f"files differ from those recorded in lineage.json: {', '.join(changed[:5])}")
        else:
            problems.append("lineage.json records no weights or file hashes")
    except DistillError as e:
        weights_ok = False
        problems.append(f"cannot hash the weights: {e.what}")
    name = str(student.get("name") or d.name)
    chain = _chain(rec, name, problems)
    return VerifyResult(directory=str(d), signature=status, signer=signer, trusted=trusted, weights_ok=weights_ok,
                        problems=problems, chain=chain, record=rec)


# ---------------------------------------------------------------- rendering


def chain_lines(chain: list[ChainLink]) -> list[str]:
    """The chain in words, newest first: "student <- teacher (decision, signature)"."""
    out = []
    for i, link in enumerate(chain):
        sig = link.signature + (f" by {link.signer[:23]}…" if link.signer else "")
        out.append(f"{'  ' * i}{link.student} <- {link.teacher}  [policy: {link.decision}; {sig}]")
    return out


def card_section(record: dict[str, Any]) -> str:
    """The lineage in words (markdown), for the student's model card README.md, with the policy's notices."""
    from distill.provenance.policy.gate import apply_obligations

    lines = ["## Lineage", ""]
    t = record.get("teacher") or {}
    policy = record.get("policy") or {}
    student = record.get("student") or {}
    if t.get("kind") == "api":
        lines.append(f"- **Teacher:** `{t.get('model')}` served by {t.get('base_url')} (black-box, API outputs).")
    else:
        wh = t.get("weights_sha256")
        lines.append(f"- **Teacher:** {t.get('name') or t.get('spec')} (`{t.get('spec')}`)"
                     + (f", weights sha256 `{wh}`." if wh else "."))
    if policy:
        rule = policy.get("row_name") or "no matching licence or terms"
        lines.append(f"- **Licence gate:** {policy.get('decision')} under {rule}"
                     f" ({'verified' if policy.get('verified') else 'not verified'} against the source text"
                     + (f", checked {policy.get('checked')}" if policy.get("checked") else "") + ").")
        if policy.get("clause"):
            lines.append(f"  - Clause: {policy['clause']}")
        if policy.get("source"):
            lines.append(f"  - Source: {policy['source']}")
        auth = policy.get("authorization")
        if auth:
            lines.append(f"  - Authorization: granted by {auth.get('granted_by')}; reference {auth.get('reference')}"
                         + (f"; expires {auth['expires']}" if auth.get("expires") else "")
                         + f"; covers `{(auth.get('covers') or {}).get('teacher')}`.")
        _, notices = apply_obligations(policy, student.get("name") or "")
        if notices:
            lines += ["", "### Notices and obligations", ""]
            lines += [f"- {n}" for n in notices]
    if record.get("data"):
        lines += ["", "### Training data", ""]
        for item in record["data"]:
            desc = ", ".join(f"{k}: {v}" for k, v in item.items() if k != "name") if isinstance(item, dict) else ""
            name = item.get("name", "data") if isinstance(item, dict) else str(item)
            lines.append(f"- {name}" + (f" ({desc})" if desc else ""))
    if record.get("evaluation"):
        lines += ["", "### Evaluation", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in record["evaluation"].items()]
    code = record.get("code") or {}
    lines += ["", "### Provenance", ""]
    lines.append(f"- Distill {code.get('distill_version')}"
                 + (f", git commit `{code['git_commit']}`" if code.get("git_commit") else "")
                 + (" (with local changes)" if code.get("git_dirty") else "") + ".")
    if student.get("weights_sha256"):
        lines.append(f"- Student weights sha256 `{student['weights_sha256']}`.")
    sig = record.get(signatures.SIGNATURE_KEY)
    if sig:
        lines.append(f"- lineage.json is signed (Ed25519, key `{sig.get('fingerprint')}`); "
                     "check it with `distill lineage verify <dir>`.")
    else:
        lines.append("- lineage.json is **unsigned**.")
    chain = _chain(record, str(student.get("name") or "this model"), [])
    if len(chain) > 1:
        lines += ["", "### Ancestry", ""]
        lines += [f"{'  ' * i}- {link.student} ← {link.teacher} (policy: {link.decision})"
                  for i, link in enumerate(chain)]
    return "\n".join(lines) + "\n"

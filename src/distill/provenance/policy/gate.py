"""The licence/terms gate: decide from the identified teacher and the policy table, before any compute."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import DistillError
from distill.provenance.policy.authorization import check_authorization, read_authorization
from distill.provenance.policy.identify import TeacherIdentity, identify_api, identify_model
from distill.provenance.policy.table import SEVERITY, Row

if TYPE_CHECKING:
    from distill.models.loading import ModelInfo

log = logging.getLogger(__name__)

UNKNOWN_CLAUSE = ("No licence or terms could be identified for this teacher (no GGUF general.license, no README "
                  "`license:`, no recognised LICENSE file, name or API host).")


@dataclass
class Verdict:
    """The gate's decision for one teacher.

    decision: "allowed", "allowed_with_obligations" or "refused". `basis` is "table" or "authorization" (a
    refusal overridden by a valid authorization record). `row` is the deciding row (None when unknown).
    """

    decision: str
    identity: TeacherIdentity
    row: Row | None
    clause: str
    source: str
    verified: bool
    obligations: list[tuple[str, str]] = field(default_factory=list)
    authorization: dict[str, Any] | None = None
    basis: str = "table"

    @property
    def refused(self) -> bool:
        return self.decision == "refused"

    @property
    def table_verdict(self) -> str:
        return self.row.verdict if self.row else "unknown"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as recorded in lineage.json."""
        return {
            "decision": self.decision, "basis": self.basis, "table_verdict": self.table_verdict,
            "row": self.row.id if self.row else None, "row_name": self.row.name if self.row else None,
            "clause": self.clause, "source": self.source, "verified": self.verified,
            "checked": self.row.checked if self.row else None, "note": self.row.note if self.row else "",
            "obligations": [{k: v} for k, v in self.obligations],
            "authorization": self.authorization, "teacher": self.identity.to_dict(),
        }

    def summary(self) -> str:
        """The verdict in a few lines of text."""
        who = self.identity.display_name
        lines = [f"decision: {self.decision.upper()}  teacher: {who}"]
        if self.row:
            lines.append(f"rule: {self.row.id} ({self.row.name}), table verdict {self.row.verdict}, "
                         f"{'verified' if self.verified else 'NOT verified against the source text'} "
                         f"(checked {self.row.checked})")
        lines.append(f"clause: {self.clause}")
        if self.source:
            lines.append(f"source: {self.source}")
        evid = ", ".join(f"{ev.origin}={ev.to_dict()['value']!r}" for _, ev in self.identity.matches[:4])
        if evid:
            lines.append(f"evidence: {evid}")
        if self.authorization:
            a = self.authorization
            lines.append(f"authorization: granted by {a['granted_by']}, reference {a['reference']}"
                         + (f", expires {a['expires']}" if a.get("expires") else ""))
        for kind, text in self.obligations:
            lines.append(f"obligation ({kind}): {text}")
        return "\n".join(lines)

    def refusal(self) -> DistillError:
        """The DistillError(code=3) that the trainer raises for a refused teacher."""
        rule = f"{self.row.name} ({self.row.id})" if self.row else "no matching licence or terms"
        return DistillError(
            f"distilling from {self.identity.display_name} is refused by the policy gate: {rule}: {self.clause}",
            where=f"teacher {self.identity.spec}; source {self.source or 'n/a'}", code=3,
            fix="choose a teacher whose licence permits distillation (see `distill policy check`), or supply an "
                "authorization record from the rights holder with --authorization / teacher.authorization "
                "(format in docs/policy.md)")


def _decide(identity: TeacherIdentity) -> tuple[Row | None, list[tuple[str, str]]]:
    if not identity.rows:
        return None, []
    deciding = max(identity.rows, key=lambda r: SEVERITY[r.verdict])  # max keeps the first of equals
    obligations: list[tuple[str, str]] = []
    if SEVERITY[deciding.verdict] <= SEVERITY["allowed_with_obligations"]:
        for row in identity.rows:  # a teacher under two permissive regimes carries both sets of duties
            for ob in row.obligations:
                if ob not in obligations:
                    obligations.append(ob)
    else:
        obligations = list(deciding.obligations)
    return deciding, obligations


def evaluate(identity: TeacherIdentity, authorization: str | Path | dict | None = None) -> Verdict:
    """Decide for an identified teacher. Never raises for a refusal: see `Verdict.refused` / `refusal()`.

    A given authorization is always validated (a contradictory or expired one raises DistillError) and
    recorded; it turns a prohibited/unknown teacher into allowed (or allowed_with_obligations when the row
    has obligations).
    """
    row, obligations = _decide(identity)
    table_verdict = row.verdict if row else "unknown"
    auth = None
    if authorization is not None:
        record = authorization if isinstance(authorization, dict) else read_authorization(authorization)
        auth = check_authorization(record, identity)
    if table_verdict in ("prohibited", "unknown"):
        decision, basis = ("refused", "table") if auth is None else (
            "allowed_with_obligations" if obligations else "allowed", "authorization")
    else:
        decision, basis = table_verdict, "table"
    verdict = Verdict(decision=decision, identity=identity, row=row,
                      clause=row.clause if row else UNKNOWN_CLAUSE, source=row.source if row else "",
                      verified=row.verified if row else False, obligations=obligations,
                      authorization=auth, basis=basis)
    if row and not row.verified and not verdict.refused:
        log.info("policy row %s is not verified against the licence text (%s)", row.id, row.source)
    return verdict


def check_model_teacher(info: ModelInfo, authorization: str | Path | None = None) -> Verdict:
    """Gate a local/hub/GGUF teacher before any compute. Raises DistillError(code=3) when refused."""
    verdict = evaluate(identify_model(info), authorization)
    if verdict.refused:
        raise verdict.refusal()
    return verdict


def check_api_teacher(base_url: str, model: str, authorization: str | Path | None = None,
                      local_spec: str | None = None) -> Verdict:
    """Gate a teacher served over an API before any request. Raises DistillError(code=3) when refused."""
    verdict = evaluate(identify_api(base_url, model, local_spec), authorization)
    if verdict.refused:
        raise verdict.refusal()
    return verdict


def apply_obligations(verdict: Verdict | dict[str, Any], student_name: str) -> tuple[str, list[str]]:
    """The student's name adjusted for naming obligations (e.g. "Llama-" prefix) and the notices its model card
    must show. Accepts a Verdict or its `to_dict()` form (as stored in lineage.json)."""
    if isinstance(verdict, Verdict):
        obligations = verdict.obligations
    else:
        obligations = [next(iter(o.items())) for o in verdict.get("obligations", [])]
    name, notices = student_name, []
    for kind, text in obligations:
        if kind == "name_prefix":
            if not name.lower().startswith(text.lower()):
                name = f"{text}-{name}" if name else text
        elif kind == "condition":
            notices.append(f"Condition: {text}")
        elif kind == "notice_file":
            notices.append(f"NOTICE: {text}")
        else:
            notices.append(text)
    return name, notices


def notice_text(verdict: Verdict | dict[str, Any]) -> str | None:
    """Text for a NOTICE file the student must ship with (Gemma-style obligations), or None."""
    if isinstance(verdict, Verdict):
        obligations = verdict.obligations
    else:
        obligations = [next(iter(o.items())) for o in verdict.get("obligations", [])]
    lines = [text for kind, text in obligations if kind in ("notice_file", "attribution")]
    return "\n".join(lines) + "\n" if lines else None

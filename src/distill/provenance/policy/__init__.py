"""Licence/terms gate: identify a teacher from metadata, match the policy table, decide before any compute.

Trainer and `distill generate` call, before loading or querying anything expensive::

    verdict = check_model_teacher(info, authorization)        # local / GGUF / hub teacher
    verdict = check_api_teacher(base_url, model, authorization)  # API teacher
    name, notices = apply_obligations(verdict, student_name)

Both raise DistillError(code=3) when refused. See docs/policy.md.
"""

from __future__ import annotations

from distill.provenance.policy.authorization import check_authorization, read_authorization
from distill.provenance.policy.gate import (
    Verdict,
    apply_obligations,
    check_api_teacher,
    check_model_teacher,
    evaluate,
    notice_text,
)
from distill.provenance.policy.identify import (
    Evidence,
    TeacherIdentity,
    identify_api,
    identify_model,
    identify_spec,
)
from distill.provenance.policy.table import Row, load_table

__all__ = [
    "Evidence", "Row", "TeacherIdentity", "Verdict", "apply_obligations", "check_api_teacher",
    "check_authorization", "check_model_teacher", "evaluate", "identify_api", "identify_model", "identify_spec",
    "load_table", "notice_text", "read_authorization",
]

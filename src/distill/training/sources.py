"""The teacher of a run as training sees it: its sources (opened by its declared kind, `distill.teachers`), the
server behind it, and the licence/terms gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.config import DistillConfig
from distill.signals import NoTeacher, TeacherSource
from distill.teachers import TeacherBase, TeacherInputs, open_source
from distill.teachers.several import open_mix


def make_source(cfg: DistillConfig, inputs: TeacherInputs | list[TeacherInputs], split: str) -> TeacherSource:
    """The teacher source for `split`. With no KD term (and no loss.hidden) the training steps need none (the
    data is the signal); the held-out figures still use the teacher. With several teachers `inputs` has one
    entry per member, and the source is their mix (`distill.teachers.several`)."""
    if split == "train" and cfg.loss.kd_weight == 0 and cfg.loss.hidden is None:
        return NoTeacher()
    if cfg.teachers:
        return open_mix(cfg, list(inputs), split)  # type: ignore[arg-type]
    return open_source(cfg.teacher, inputs, split)


def served_origin(cfg: DistillConfig) -> dict[str, Any] | None:
    """The server the teacher signal comes from — this run's served teacher, or the one a store was captured
    from (`distill capture --teacher-endpoint`) — as {"endpoint", "model", "tokenizer"}; None for a local teacher."""
    return cfg.teacher.served_origin(cfg)


def api_identity(cfg: DistillConfig) -> dict[str, str] | None:
    """The served teacher's endpoint and model, for lineage (None when the teacher is not behind a server)."""
    served = served_origin(cfg)
    return None if served is None else {"base_url": served["endpoint"], "model": served["model"]}


def policy_verdict(cfg: DistillConfig, info: Any, teacher: TeacherBase | None = None):
    """The licence/terms gate, before any compute: the served teacher or the API behind a generated set, else the
    teacher model. `teacher`: one of several (default: the run's teacher)."""
    from distill.provenance.policy import check_api_teacher, check_model_teacher

    teacher = teacher or cfg.teacher
    served = teacher.served_origin(cfg)
    if served is not None:
        from distill.provenance.policy.identify import api_host, is_local_host

        local = served.get("tokenizer") if is_local_host(api_host(served["endpoint"])) else None
        return check_api_teacher(served["endpoint"], served["model"], teacher.authorization, local_spec=local)
    source = Path(cfg.data.path) / "source.json"
    if cfg.teacher_kind.name == "api" and source.is_file():
        api = json.loads(source.read_text())
        return check_api_teacher(api["endpoint"], api["model"], cfg.teacher.authorization,
                                 local_spec=cfg.teacher.model)
    return check_model_teacher(info, teacher.authorization)

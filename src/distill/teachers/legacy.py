"""Old flat teacher sections (no `kind`): the kind is inferred once, by the precedence the fields used to imply, and
a one-line notice says how to write it. Fields that belong to no part of the inferred kind are dropped (they did
nothing before either) and named in the notice."""

from __future__ import annotations

import logging
from typing import Any

from distill.errors import DistillError
from distill.teachers.base import TeacherBase

log = logging.getLogger("distill.config")


def infer_kind(teacher: dict[str, Any], *, generated: bool, cross: bool) -> str:
    """The kind an old flat `teacher` section meant; a DistillError where two sources of the signal are set."""
    store, endpoint = teacher.get("store"), teacher.get("endpoint")
    if store and generated:
        raise DistillError("both teacher.store and a generated data set would give the teacher signal",
                           where=f"teacher.store={store}",
                           fix="train from one of them: drop teacher.store, or point data.path at the store's data")
    if cross and (store or endpoint):
        raise DistillError("loss.cross_tokenizer works with a live teacher and a fresh or pretrained student; it "
                           "cannot be combined with teacher.store or teacher.endpoint", where="loss.cross_tokenizer",
                           fix="drop loss.cross_tokenizer or the conflicting setting")
    if endpoint and store:
        raise DistillError("teacher.endpoint scores with a served teacher; it cannot be combined with teacher.store",
                           where="teacher.endpoint", fix="drop teacher.endpoint or teacher.store")
    return ("served" if endpoint else "cross_tokenizer" if cross else "store" if store
            else "api" if generated else "live")


def declare(teacher: dict[str, Any], classes: dict[str, type[TeacherBase]], *, generated: bool,
            cross: bool) -> dict[str, Any]:
    """`teacher` with its `kind` set (unchanged when it has one). Logs the notice for an inferred kind other than
    live, or when fields had to be dropped; a plain `{model: ...}` is a live teacher and needs no notice."""
    if "kind" in teacher:
        return teacher
    name = infer_kind(teacher, generated=generated, cross=cross)
    own = classes[name].model_fields
    known = set().union(*(c.model_fields for c in classes.values()))
    dropped = sorted(k for k in teacher if k not in own and k in known)
    declared = {"kind": name, **{k: v for k, v in teacher.items() if k not in dropped}}
    if name != "live" or dropped:
        form = ", ".join(f"{k}: {v}" for k, v in declared.items())
        log.warning("teacher: old flat form, read as kind '%s'; write it as teacher: {%s}%s", name, form,
                    f" (ignored, not settings of this kind: {', '.join(dropped)})" if dropped else "")
    return declared

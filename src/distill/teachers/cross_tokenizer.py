"""`kind: cross_tokenizer` — a live teacher with another tokenizer than the student's; its signal is mapped onto the
student's tokens by `loss.cross_tokenizer` (align: sparse on student ids; uld: sorted probabilities)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from distill.errors import DistillError
from distill.teachers.base import TeacherInputs, TeacherKind
from distill.teachers.live import LocalModelTeacher

if TYPE_CHECKING:
    from distill.config import DistillConfig


class CrossTokenizerTeacherConfig(LocalModelTeacher):
    """`teacher: {kind: cross_tokenizer, model: ...}` with `loss.cross_tokenizer: align | uld`."""

    kind: Literal["cross_tokenizer"] = Field(description="A live teacher with another tokenizer.")
    KIND = TeacherKind("cross_tokenizer", "a live teacher with another tokenizer (signal mapped onto the student's "
                       "tokens by loss.cross_tokenizer)", needs_weights=True, on_policy=False, signal="sparse")

    def check(self, cfg: DistillConfig) -> None:
        from distill.teachers.api import is_generated_set

        if not cfg.loss.cross_tokenizer:
            raise DistillError("a cross_tokenizer teacher needs loss.cross_tokenizer (how its tokens are mapped onto "
                               "the student's)", where="loss.cross_tokenizer", fix="set loss.cross_tokenizer to align "
                               "or uld")
        if is_generated_set(cfg) or cfg.student.cut_from_teacher:
            raise DistillError("loss.cross_tokenizer works with a live teacher and a fresh or pretrained student; it "
                               f"cannot be combined with generated data or student.init={cfg.student.init}",
                               where="loss.cross_tokenizer", fix="drop loss.cross_tokenizer or the conflicting setting")
        if self.precision != "fp32":
            raise DistillError(f"teacher.precision {self.precision} works for a live teacher in one CPU process's "
                               "memory", where="teacher.precision", fix="use teacher.precision fp32 here")

    def open(self, inputs: TeacherInputs, split: str):
        from distill.crosstok import CrossTokenizerTeacher
        from distill.loss.chunks import chunk_rows

        loss = inputs.cfg.loss
        return CrossTokenizerTeacher(inputs.teacher.model, inputs.teacher.tokenizer, inputs.tokenizer,
                                     method=loss.cross_tokenizer, top_k=loss.cross_top_k,
                                     chunk_size=chunk_rows(loss.chunk_size, len(inputs.teacher.tokenizer),
                                                           inputs.device))

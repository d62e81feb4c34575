"""`kind: api` — answers written by `distill generate`: their tokens are the targets, and their top-k
log-probabilities (where the set has them) travel inside each batch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from distill.data.formats import data_format
from distill.errors import DistillError
from distill.teachers.base import TeacherBase, TeacherInputs, TeacherKind

if TYPE_CHECKING:
    from distill.config import DistillConfig


def is_generated_set(cfg: DistillConfig) -> bool:
    """Is the data a folder written by `distill generate` (teacher answers, maybe with top-k log-probs)?"""
    return data_format(cfg.data.path, cfg.data.format) == "generated"


class ApiTeacherConfig(TeacherBase):
    """`teacher: {kind: api, model: ...}` with data.path a generated set; `model` is the tokenizer the answers were
    rendered with (a local spec)."""

    kind: Literal["api"] = Field(description="Answers from an API, written by `distill generate`.")
    KIND = TeacherKind("api", "answers from an API written by `distill generate` (their tokens as targets, and their "
                       "top-k log-probabilities where the set has them)", needs_weights=False, on_policy=False,
                       signal="sparse", tails=("bucket",))

    def check(self, cfg: DistillConfig) -> None:
        later = (cfg.data.format == "auto" and cfg.data.path != "shakespeare"
                 and not Path(cfg.data.path).expanduser().exists())  # `distill generate` has not run yet
        if not later and not is_generated_set(cfg):
            raise DistillError("an api teacher reads the answers of a set written by `distill generate`, but data.path "
                               "is not one", where=f"data.path={cfg.data.path}",
                               fix="point data.path at the folder `distill generate` wrote, or declare another "
                                   "teacher kind")

    def open(self, inputs: TeacherInputs, split: str):
        from distill.signals import BatchTopK

        return BatchTopK()

"""Where the teacher signal comes from: a declared kind.

`teacher: {kind: live | store | served | api | cross_tokenizer, ...}` is a pydantic discriminated union
(`TeacherConfig`). Each kind is one module here that owns its config fields (documented where declared), its rules
about the other sections (`check`), what it can do (`KIND`: dense or sparse signal, hidden states, on-policy
scoring, tail handling) and how its source opens (`open`); the caller closes what it opens (`close_source`).
Training, `distill eval` and `distill capture` all open a teacher through `open_source`. A new kind is one module
and one entry in `_MEMBERS`: nothing else asks where the signal comes from.

Old flat configs (no `kind`) still load: `legacy.declare` infers the kind once and logs how to write it.
Torch-free: `distill.config` imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from distill.errors import DistillError
from distill.teachers.api import ApiTeacherConfig, is_generated_set
from distill.teachers.base import TeacherBase, TeacherInputs, TeacherKind
from distill.teachers.cross_tokenizer import CrossTokenizerTeacherConfig
from distill.teachers.live import LiveTeacherConfig
from distill.teachers.served import ServedTeacherConfig
from distill.teachers.store import StoreTeacherConfig

if TYPE_CHECKING:
    from distill.config import DistillConfig

_MEMBERS: tuple[type[TeacherBase], ...] = (LiveTeacherConfig, StoreTeacherConfig, ServedTeacherConfig,
                                           ApiTeacherConfig, CrossTokenizerTeacherConfig)
CLASSES: dict[str, type[TeacherBase]] = {m.KIND.name: m for m in _MEMBERS}
KINDS: dict[str, TeacherKind] = {name: m.KIND for name, m in CLASSES.items()}

TeacherConfig = Annotated[LiveTeacherConfig | StoreTeacherConfig | ServedTeacherConfig | ApiTeacherConfig
                          | CrossTokenizerTeacherConfig, Field(discriminator="kind")]

__all__ = ["CLASSES", "KINDS", "ApiTeacherConfig", "CrossTokenizerTeacherConfig", "LiveTeacherConfig",
           "ServedTeacherConfig", "StoreTeacherConfig", "TeacherBase", "TeacherConfig", "TeacherInputs",
           "TeacherKind", "check_teacher", "close_source", "is_generated_set", "open_source"]


def check_teacher(cfg: DistillConfig) -> TeacherKind:
    """The run's teacher kind, after its own rules and the rules every kind shares (a DistillError for any
    combination of settings that cannot work together). Run at config validation."""
    teacher = cfg.teacher
    kind = teacher.KIND
    if cfg.student.tokenizer and not cfg.loss.cross_tokenizer:
        raise DistillError("student.tokenizer differs from the teacher's, but loss.cross_tokenizer is not set",
                           where="student.tokenizer", fix="set loss.cross_tokenizer to align or uld")
    if cfg.loss.cross_tokenizer and kind.name not in ("cross_tokenizer", "live"):
        raise DistillError(f"loss.cross_tokenizer works with a live teacher and a fresh or pretrained student; it "
                           f"cannot be combined with a {kind.name} teacher", where="loss.cross_tokenizer",
                           fix="drop loss.cross_tokenizer or the conflicting setting")
    teacher.check(cfg)
    if cfg.loss.hidden is not None and not kind.hidden_states:
        why = {"served": "the server sends log-probabilities only (vLLM's prompt_logprobs carries no hidden states)",
               "cross_tokenizer": "the teacher's positions are other tokens than the student's",
               "store": "a capture store holds the teacher's top-k log-probabilities, not its hidden states",
               "api": "API answers hold tokens and log-probabilities, not hidden states"}.get(kind.name, "")
        raise DistillError(f"loss.hidden compares intermediate hidden states, which need a live teacher in this "
                           f"process with the student's tokenizer; this run's teacher is {kind.description}: {why}",
                           where="loss.hidden", fix="drop loss.hidden, or train from a live teacher (teacher.kind: "
                           "live)")
    if cfg.train.on_policy_fraction > 0 and not kind.on_policy:
        raise DistillError(f"on-policy distillation needs a teacher that scores the student's samples (a live or a "
                           f"served one); this run's teacher is {kind.description}", where="train.on_policy_fraction",
                           fix="set train.on_policy_fraction to 0, or use a live or served teacher")
    if cfg.train.on_policy_fraction > 0 and cfg.loss.kd_weight == 0:
        raise DistillError("on-policy batches are scored only by the KD term, but loss.kd_weight is 0",
                           where="train.on_policy_fraction", fix="set loss.kd_weight > 0 or on_policy_fraction to 0")
    return kind


def open_source(teacher: TeacherBase, inputs: TeacherInputs, split: str):
    """The one way a teacher source is opened (training, `distill eval`, `distill capture`): `split` is 'train' or
    'heldout'. Close it with `close_source` when done."""
    return teacher.open(inputs, split)


def close_source(source: Any) -> None:
    """Release what a source holds (a served teacher's thread pool and HTTP client); a no-op for the others."""
    close = getattr(source, "close", None)
    if close is not None:
        close()

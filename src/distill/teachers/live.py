"""`kind: live` — the teacher model loaded in this process, run on every batch (white-box, dense signal)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from distill.errors import DistillError
from distill.teachers.base import TeacherBase, TeacherInputs, TeacherKind

if TYPE_CHECKING:
    from distill.config import DistillConfig


class LocalModelTeacher(TeacherBase):
    """The fields of a teacher whose weights run in this process (live and cross_tokenizer)."""

    precision: Literal["fp32", "bf16", "int8"] = Field(
        "fp32", description="A live teacher's arithmetic: 'fp32' = exact, as loaded (the default; on GPU the run's "
        "bf16 autocast as before); 'int8' = decoder Linear weights int8 per output channel, activations quantized "
        "per tensor at run time (PyTorch dynamic quantization, CPU only; embeddings, final norm and head stay "
        "fp32); 'bf16' = the teacher in bfloat16 (fast on GPUs and on CPUs with AMX/AVX-512-BF16). A lower "
        "precision is measured at start: KL(teacher_fp32 ‖ teacher_fast) per token on held-out sequences is "
        "printed, and the run refused above precision_max_kl (distill.models.precision).")
    precision_max_kl: float = Field(0.02, gt=0, description="With precision bf16 or int8: the largest "
                                    "KL(teacher_fp32 ‖ teacher_fast), nats per held-out token, a run accepts.")
    precision_check_sequences: int = Field(8, ge=1, description="With precision bf16 or int8: held-out sequences "
                                           "scored by both teachers to measure that KL.")
    compile: bool = Field(False, description="torch.compile the teacher's decoder for scoring (fused norms, "
                          "rotary and activations around the matmuls; the same results up to fp32 rounding). Costs "
                          "a compile of minutes at start on a small CPU and another for each new batch shape; "
                          "without a working compiler the teacher runs eagerly (a warning).")


class LiveTeacherConfig(LocalModelTeacher):
    """A live teacher: `teacher: {kind: live, model: ...}` (the default kind)."""

    kind: Literal["live"] = Field("live", description="A live teacher model in this process.")
    KIND = TeacherKind("live", "a live teacher model in this process (dense signal over the whole vocabulary)",
                       needs_weights=True, on_policy=True, signal="dense", hidden_states=True)

    def check(self, cfg: DistillConfig) -> None:
        if cfg.loss.cross_tokenizer:
            raise DistillError("loss.cross_tokenizer is set, but the teacher is declared kind: live (which shares "
                               "the student's tokenizer)", where="loss.cross_tokenizer",
                               fix="declare teacher.kind: cross_tokenizer, or drop loss.cross_tokenizer")

    def open(self, inputs: TeacherInputs, split: str):
        from distill.signals import LiveTeacher

        return LiveTeacher(inputs.teacher.model, len(inputs.tokenizer),
                           inputs.hidden_layers if split == "train" else ())

"""The interface every teacher signal kind implements, and the one every teacher source implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol, Union, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from distill.config import LossConfig


class ClosedForm(NamedTuple):
    """A chunk's KD terms with their gradient w.r.t. the student logits, computed without autograd."""

    kd: Tensor  # [C] per-token KD loss (already scaled by T²)
    has: Tensor  # [C] bool: the token carries teacher signal
    grad: Tensor  # [C, V] ∂(kd_weight · Σ kd)/∂ student logits
    log_q: Tensor | None  # [C, V] the student's log-softmax at T=1 when the method formed it (the CE term reuses it)
    q: Tensor | None  # its softmax, when formed


@runtime_checkable
class SignalKind(Protocol):
    """What a signal kind owns: its loss math over one chunk of scored positions (`rows` of the N).

    `s_logits` are the student's logits for those rows, [C, V], in at least float32; `loss` is the
    `LossConfig` (kind, beta, alpha, temperature, kd_weight)."""

    def kd_terms(self, s_logits: Tensor, rows: slice, loss: LossConfig) -> tuple[Tensor, Tensor]:
        """Per-token KD loss [C] (differentiable w.r.t. `s_logits`) and the has-signal mask [C]."""
        ...

    def closed_form(self, s_logits: Tensor, rows: slice, loss: LossConfig) -> ClosedForm | None:
        """The same terms with their gradient in closed form, or None where this kind has none for `loss`."""
        ...

    def top1(self, rows: slice) -> Tensor | None:
        """The teacher's most likely student-vocabulary id per row [C], or None where ids are not comparable."""
        ...


Signal = Union[SignalKind, None]  # noqa: UP007  None: no teacher distribution (sequence-level KD, CE only)


class TeacherSource(Protocol):
    """Anything that can say what the teacher thinks at the scored positions of a batch."""

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> Signal: ...


def scored_positions(batch: dict[str, Tensor]) -> Tensor:
    """The positions the loss scores, as indices into the flattened [B*T] batch ([N] long)."""
    return batch["loss_mask"].reshape(-1).nonzero().squeeze(-1)


def upcast(x: Tensor) -> Tensor:
    """Losses run in at least float32 (bf16/fp16 logits from autocast are upcast)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x

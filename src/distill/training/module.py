"""The student and its fused loss as one module, so DDP sees the whole computation in `forward`."""

from __future__ import annotations

import torch
from torch import Tensor

from distill.config import HiddenLossConfig, LossConfig
from distill.loss.fused import distill_loss
from distill.loss.hidden import Origin, Projections, auto_pairs, capture, check_pairs, hidden_terms
from distill.models.lora import causal_lm
from distill.signals import Signal


class StudentLoss(torch.nn.Module):
    """`forward(batch, positions, signal, normalizer)` → (loss, stats) for the scored positions of a batch.

    The student may be a LoRA (peft) model: its decoder and head are read from the transformers model inside.
    With `loss.hidden`, `pairs` names the (student, teacher) decoder layers compared and `projections` maps student
    states to the teacher's width (its parameters live here, beside the student: DDP and FSDP wrap them with it,
    the optimizer steps them, the written model leaves them out); the signal carries the teacher's layer outputs.
    """

    def __init__(self, student: torch.nn.Module, vocab_size: int, loss: LossConfig,
                 pairs: list[tuple[int, int]] | None = None, projections: Projections | None = None):
        super().__init__()
        self.student, self.vocab_size, self.loss = student, vocab_size, loss
        self.pairs = list(pairs or [])
        self.projections = projections

    def hidden(self, batch: dict[str, Tensor], positions: Tensor) -> Tensor:
        out = causal_lm(self.student).base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        h = out.last_hidden_state
        return h.reshape(-1, h.shape[-1]).index_select(0, positions)

    def head(self) -> Tensor:
        return causal_lm(self.student).get_output_embeddings().weight[: self.vocab_size]

    def forward(self, batch: dict[str, Tensor], positions: Tensor, signal: Signal, normalizer: float):
        targets = batch["targets"].reshape(-1).index_select(0, positions)
        if not self.pairs or self.loss.hidden is None:
            return distill_loss(self.hidden(batch, positions), self.head(), signal, targets, self.loss, normalizer)
        blocks = causal_lm(self.student).base_model.layers
        with capture([blocks[s] for s, _ in self.pairs], positions) as states:
            h = self.hidden(batch, positions)
        loss, stats = distill_loss(h, self.head(), signal, targets, self.loss, normalizer)
        teacher = getattr(signal, "layers", ())
        if len(teacher) != len(self.pairs):
            raise RuntimeError(f"loss.hidden: the teacher signal carries {len(teacher)} layer outputs for "
                               f"{len(self.pairs)} pairs (the source was not built with the mapping)")
        per_token = hidden_terms(self.projections(states), teacher, self.loss.hidden.kind)
        stats["hidden_sum"] = float(per_token.detach().sum())
        return loss + self.loss.hidden.weight * per_token.sum() / (normalizer or len(positions)), stats


def hidden_parts(hidden: HiddenLossConfig, student: torch.nn.Module, teacher: torch.nn.Module
                 ) -> tuple[list[tuple[int, int]], Projections]:
    """The (student, teacher) layer pairs of `loss.hidden` and their projections, for `StudentLoss`."""
    s_model = causal_lm(student)
    origin: Origin | None = getattr(s_model, "teacher_origin", None)
    n_s, n_t = len(s_model.base_model.layers), len(teacher.base_model.layers)
    pairs = (auto_pairs(n_s, n_t, origin.layers if origin else None) if hidden.layers == "auto"
             else check_pairs(hidden.layers, n_s, n_t))
    channels = origin.hidden if origin else None
    return pairs, Projections(len(pairs), s_model.config.hidden_size, teacher.config.hidden_size, channels)

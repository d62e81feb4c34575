"""The student and its fused loss as one module, so DDP sees the whole computation in `forward`."""

from __future__ import annotations

import torch
from torch import Tensor

from distill.config import LossConfig
from distill.loss.fused import distill_loss
from distill.models.lora import causal_lm
from distill.signals import Signal


class StudentLoss(torch.nn.Module):
    """`forward(batch, positions, signal, normalizer)` → (loss, stats) for the scored positions of a batch.

    The student may be a LoRA (peft) model: its decoder and head are read from the transformers model inside.
    """

    def __init__(self, student: torch.nn.Module, vocab_size: int, loss: LossConfig):
        super().__init__()
        self.student, self.vocab_size, self.loss = student, vocab_size, loss

    def hidden(self, batch: dict[str, Tensor], positions: Tensor) -> Tensor:
        out = causal_lm(self.student).base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        h = out.last_hidden_state
        return h.reshape(-1, h.shape[-1]).index_select(0, positions)

    def head(self) -> Tensor:
        return causal_lm(self.student).get_output_embeddings().weight[: self.vocab_size]

    def forward(self, batch: dict[str, Tensor], positions: Tensor, signal: Signal, normalizer: float):
        targets = batch["targets"].reshape(-1).index_select(0, positions)
        return distill_loss(self.hidden(batch, positions), self.head(), signal, targets, self.loss, normalizer)

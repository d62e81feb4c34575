"""The teacher signal: one interface, whatever the teacher is.

A `TeacherSource` turns a batch into the teacher's view of the positions the loss scores. The training loop
only ever calls `source.signal(batch, positions)` and hands the result to the fused loss, so it does not know
whether the teacher is a live model, a capture store on disk, or answers collected from an API.

Batches are dicts of tensors (see `distill.data`):
    input_ids       [B, T] long
    attention_mask  [B, T] long
    loss_mask       [B, T] bool   position t is scored (it predicts input_ids[t+1])
    targets         [B, T] long   input_ids shifted left, -100 where not scored
    example_ids     [B]    long   index of each row in its dataset (stores use it to find their records)
    topk_ids        [B, T, k] long  (optional) teacher top-k ids from an API or a store, -1 = padding
    topk_logprobs   [B, T, k] float (optional) their log-probabilities, -inf = padding

`positions` is `loss_mask.nonzero()` flattened: a LongTensor [N] of indices into the B*T flattened positions.
Signals hold exactly those N positions, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


@dataclass
class DenseSignal:
    """The teacher's full distribution, kept factored: logits = hidden @ head.T (+ softcap).

    Never materialized for all positions at once: the fused loss multiplies chunk by chunk.
    """

    hidden: Tensor  # [N, d_teacher] final hidden states at the scored positions
    head: Tensor  # [V, d_teacher] teacher output embedding (rows beyond the real vocabulary are dropped)
    softcap: float | None = None  # final-logit soft-capping (Gemma-style), if the teacher uses it

    def logits(self, rows: slice) -> Tensor:
        out = self.hidden[rows] @ self.head.T
        if self.softcap:
            out = torch.tanh(out / self.softcap) * self.softcap
        return out


@dataclass
class SparseSignal:
    """The teacher's top-k log-probabilities (from an API, or a capture store); the rest is one bucket."""

    ids: Tensor  # [N, k] long, -1 where padded
    logprobs: Tensor  # [N, k] float, -inf where padded


Signal = DenseSignal | SparseSignal | None  # None: no teacher distribution (sequence-level KD, CE only)


class TeacherSource(Protocol):
    """Anything that can say what the teacher thinks at the scored positions of a batch."""

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> Signal: ...


class LiveTeacher:
    """A teacher model run in inference mode on each batch (white-box distillation)."""

    def __init__(self, model: torch.nn.Module, vocab_size: int):
        self.model = model.eval().requires_grad_(False)
        self.vocab_size = vocab_size
        self.softcap = getattr(model.config, "final_logit_softcapping", None)

    @torch.inference_mode()
    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        out = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state  # [B, T, d]

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> DenseSignal:
        hidden = self.hidden_states(batch["input_ids"], batch["attention_mask"])
        flat = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
        head = self.model.get_output_embeddings().weight[: self.vocab_size].detach()
        return DenseSignal(hidden=flat.clone(), head=head.to(flat.dtype), softcap=self.softcap)


class BatchTopK:
    """Top-k log-probabilities that travel inside the batch (API answers; stores attach theirs too)."""

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> SparseSignal | None:
        if "topk_ids" not in batch:
            return None
        k = batch["topk_ids"].shape[-1]
        ids = batch["topk_ids"].reshape(-1, k).index_select(0, positions)
        logprobs = batch["topk_logprobs"].reshape(-1, k).index_select(0, positions)
        return SparseSignal(ids=ids, logprobs=logprobs.float())


class NoTeacher:
    """Sequence-level KD or plain fine-tuning: the data is the only signal."""

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> None:
        return None

"""The teacher signal: one interface, whatever the teacher is.

A `TeacherSource` turns a batch into the teacher's view of the positions the loss scores. The training loop
only ever calls `source.signal(batch, positions)` and hands the result to the fused loss, so it does not know
whether the teacher is a live model, a capture store on disk, or answers collected from an API.

Batches are dicts of tensors (see `distill.data.corpus`):
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


@dataclass
class TailPriorSignal:
    """A store's top-k with the residual mass spread over the other tokens in proportion to a tail prior.

    The prior is the teacher's average distribution over tokens outside its top-k (summed at capture over the
    training positions). The teacher distribution is then dense: p_v exactly for the k stored ids, and
    R · prior_v / Z for every other id, where R = 1 − Σ top-k p and Z = the prior's mass outside this
    position's top-k. It is materialized chunk by chunk (`logits(rows)` returns normalized log-probabilities),
    so every dense loss applies unchanged."""

    ids: Tensor  # [N, k] long, -1 where padded
    logprobs: Tensor  # [N, k] float, -inf where padded
    log_prior: Tensor  # [V] log of the tail prior (normalized over the vocabulary)
    softcap: float | None = None  # always None: the values are already log-probabilities

    def logits(self, rows: slice) -> Tensor:
        ids, lp = self.ids[rows], self.logprobs[rows].float()
        valid = ids >= 0
        safe = ids.clamp_min(0)
        head = torch.where(valid, lp.exp(), torch.zeros_like(lp))
        residual = (1.0 - head.sum(-1)).clamp_min(1e-12)
        prior_in_top = torch.where(valid, self.log_prior[safe].exp(), torch.zeros_like(lp)).sum(-1)
        z = (1.0 - prior_in_top).clamp_min(1e-12)
        out = self.log_prior.expand(len(ids), -1) + (residual.log() - z.log()).unsqueeze(1)
        # padded slots rewrite the row's first entry with its own value, so they never clobber a real id
        first = safe[:, :1]
        first_val = torch.where(valid[:, :1], lp[:, :1], out.gather(1, first))
        idx = torch.where(valid, safe, first.expand_as(safe))
        return out.scatter(1, idx, torch.where(valid, lp, first_val.expand_as(lp)))


Signal = DenseSignal | SparseSignal | TailPriorSignal | None  # None: no teacher distribution (sequence-level KD, CE only)


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

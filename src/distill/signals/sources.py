"""Teacher sources that need no package of their own: a live model, top-k inside the batch, and none."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from distill.loss.hidden import capture
from distill.signals.dense import DenseSignal
from distill.signals.sparse import SparseSignal


class LiveTeacher:
    """A teacher model run in inference mode on each batch (white-box distillation)."""

    def __init__(self, model: torch.nn.Module, vocab_size: int, layers: Sequence[int] = ()):
        """`layers`: teacher decoder layers whose outputs the signal also carries (`loss.hidden`), in pair order."""
        from torch.distributed.fsdp import FSDPModule

        self.model = model.eval().requires_grad_(False)
        self.vocab_size = vocab_size
        self.layers = tuple(layers)
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        # FSDP's gathered blocks cannot be inference tensors: a sharded teacher runs under no_grad instead
        sharded = any(isinstance(m, FSDPModule) for m in model.modules())
        self.no_grad = torch.no_grad if sharded else torch.inference_mode

    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        with self.no_grad():
            out = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state  # [B, T, d]

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> DenseSignal:
        blocks = self.model.base_model.layers
        with capture([blocks[i] for i in self.layers], positions) as states:
            hidden = self.hidden_states(batch["input_ids"], batch["attention_mask"])
        flat = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
        head = self.model.get_output_embeddings().weight[: self.vocab_size].detach()
        layers = tuple(s.clone() for s in states)  # out of inference mode: autograd may save them
        return DenseSignal(hidden=flat.clone(), head=head.to(flat.dtype), softcap=self.softcap, layers=layers)


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

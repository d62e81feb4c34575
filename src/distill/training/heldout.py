"""Held-out figures during training: KL(teacher‖student) per token, student perplexity, top-1 agreement."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch import Tensor

from distill.data.corpus import Corpus, collate
from distill.loss.fused import evaluate_chunks
from distill.signals import TeacherSource, scored_positions
from distill.training.module import StudentLoss
from distill.training.sharding import gathered


def autocast(device: torch.device):
    """bf16 autocast on GPU; plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def heldout_eval(module: StudentLoss, source: TeacherSource, corpus: Corpus, sequences: int, batch_size: int,
                 chunk_size: int, device: torch.device) -> dict:
    """The first `sequences` held-out sequences, scored against `source` in batches of `batch_size`."""
    was_training = module.training
    module.eval()
    total = {"kl_sum": 0.0, "nll_sum": 0.0, "agree": 0, "tokens": 0, "kl_tokens": 0}
    seqs = corpus.heldout[:sequences]
    for start in range(0, len(seqs), batch_size):
        ids = list(range(start, min(start + batch_size, len(seqs))))
        batch = to_device(collate([seqs[i] for i in ids], module.student.config.pad_token_id or 0, ids), device)
        positions = scored_positions(batch)
        targets = batch["targets"].reshape(-1).index_select(0, positions)
        with autocast(device), gathered(module):
            signal = source.signal(batch, positions)
            hidden = module.hidden(batch, positions)
            part = evaluate_chunks(hidden, module.head().to(hidden.dtype), signal, targets, chunk_size)
        for k in total:
            total[k] += part[k]
    module.train(was_training)
    out = {"heldout_nll": total["nll_sum"] / max(total["tokens"], 1)}
    out["heldout_ppl"] = math.exp(min(out["heldout_nll"], 50))
    if total["kl_tokens"]:
        out["heldout_kl"] = total["kl_sum"] / total["kl_tokens"]
        out["top1_agreement"] = total["agree"] / total["kl_tokens"]
    return out

"""On-policy distillation (GKD): on a share λ of micro-batches the student continues each sequence's
prompt with its own samples, and the loss is computed on those sampled tokens — the teacher scores the
student's own distribution of states instead of the data's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from distill.models.lora import causal_lm

if TYPE_CHECKING:
    from distill.config import DistillConfig
    from distill.training.toolrollout import ToolRollout


def is_on_policy(seed: int, step: int, micro: int, fraction: float) -> bool:
    """Deterministic per (step, micro-batch), so resumed and multi-process runs agree."""
    gen = torch.Generator().manual_seed(seed * 7919 + step * 131 + micro)
    return bool(torch.rand((), generator=gen) < fraction)


@torch.no_grad()
def sample_continuations(student: torch.nn.Module, prompt_ids: Tensor, max_new_tokens: int, temperature: float,
                         eos_id: int, seed: int) -> Tensor:
    """Batched sampling with the KV cache (HF generate). Returns [B, P + new] ids (eos-padded)."""
    was_training = student.training
    student.eval()
    torch.manual_seed(seed)
    out = student.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), do_sample=True,
                           temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                           pad_token_id=eos_id, eos_token_id=None)
    student.train(was_training)
    return out


@torch.no_grad()
def sample_static(student: torch.nn.Module, prompt_ids: Tensor, max_new_tokens: int, temperature: float,
                  seed: int) -> Tensor:
    """The same samples as `sample_continuations` for the same seed, with less work per token.

    A static KV cache allocated once for P + new positions (no per-token concatenation of the cache), the output
    head run on the last position only, and the sampling step reduced to what `generate` does here (float32
    logits / temperature → softmax → `torch.multinomial`, the same random draws in the same order) without its
    logits processors and stopping checks (nothing stops early: every row gets `max_new_tokens`).
    Returns [B, P + new] ids."""
    from transformers import StaticCache

    model = causal_lm(student)
    was_training = model.training
    model.eval()
    B, P = prompt_ids.shape
    cache = StaticCache(config=model.config, max_cache_len=P + max_new_tokens)
    out = torch.empty((B, P + max_new_tokens), dtype=prompt_ids.dtype, device=prompt_ids.device)
    out[:, :P] = prompt_ids
    torch.manual_seed(seed)
    logits = model(input_ids=prompt_ids, cache=cache, use_cache=True, logits_to_keep=1).logits
    for i in range(max_new_tokens):
        scores = logits[:, -1, :].float()
        if temperature != 1.0:
            scores = scores / temperature
        token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)
        out[:, P + i] = token[:, 0]
        if i + 1 < max_new_tokens:
            position = torch.full((B, 1), P + i, dtype=torch.long, device=prompt_ids.device)
            logits = model(input_ids=token, position_ids=position, cache=cache, use_cache=True,
                           logits_to_keep=1).logits
    model.train(was_training)
    return out


def maybe_on_policy(batch: dict[str, Tensor], student: torch.nn.Module, cfg: DistillConfig, step: int,
                    micro: int, tokenizer, tools: ToolRollout | None = None) -> dict[str, Tensor]:
    """Replace the batch with prompt + student samples on a λ share of micro-batches; else return it as is.

    The prompt is the first (seq_len − max_new_tokens) tokens of each data sequence; only the sampled
    positions are scored. With `tools` (data.tools), each conversation's prompt is its text up to the first
    answer, and the student plays a whole trajectory, its tool calls executed (`distill.training.toolrollout`).
    """
    t = cfg.train
    if not is_on_policy(t.seed, step, micro, t.on_policy_fraction):
        return batch
    if tools is not None:
        return tools.batch(batch, getattr(student, "module", student), t.sample_max_new_tokens,
                           t.sample_temperature, t.seed * 1000 + step * 10 + micro)
    T = batch["input_ids"].shape[1]
    new = min(t.sample_max_new_tokens, T - 1)
    prompt = batch["input_ids"][:, : T - new]
    base = getattr(student, "module", student)
    seed = t.seed * 1000 + step * 10 + micro
    seq = sample_static(base, prompt, new, t.sample_temperature, seed) if t.sample_fast else \
        sample_continuations(base, prompt, new, t.sample_temperature, tokenizer.eos_token_id, seed=seed)
    B, L = seq.shape
    loss_mask = torch.zeros((B, L), dtype=torch.bool, device=seq.device)
    loss_mask[:, prompt.shape[1] - 1: L - 1] = True  # positions predicting the sampled tokens
    targets = torch.full((B, L), -100, dtype=torch.long, device=seq.device)
    targets[:, :-1] = seq[:, 1:]
    targets[~loss_mask] = -100
    return {"input_ids": seq, "attention_mask": torch.ones_like(seq), "loss_mask": loss_mask,
            "targets": targets, "example_ids": batch["example_ids"]}

"""Building a student three ways: an existing model, a fresh small model on the teacher's tokenizer, or a
subset of the teacher's layers with the teacher's embeddings."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from distill.errors import DistillError


def fresh_config(vocab_size: int, *, hidden_size: int = 192, num_layers: int = 4, num_heads: int = 4,
                 num_kv_heads: int | None = None, intermediate_size: int | None = None,
                 max_position_embeddings: int = 2048, tie_embeddings: bool = True, bos_token_id: int | None = None,
                 eos_token_id: int | None = None, pad_token_id: int | None = None) -> LlamaConfig:
    """The configuration of a fresh student Llama (shared by `fresh_llama` and the memory plan)."""
    if hidden_size % num_heads:
        raise DistillError(f"student.hidden_size ({hidden_size}) must be divisible by student.num_heads ({num_heads})",
                           where="student", fix="pick a head count that divides the hidden size")
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        rope_theta=10000.0,
    )


def fresh_llama(tokenizer, *, seed: int = 0, **shape):
    """A randomly initialized Llama that shares `tokenizer` (default ≈11 M parameters at vocab 49152); `shape`
    takes `fresh_config`'s keywords."""
    config = fresh_config(len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, **shape)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model


def layer_subset(teacher: torch.nn.Module, layers: Sequence[int] | None = None, every: int | None = None):
    """A copy of the teacher keeping only some decoder layers (an explicit list, or every k-th one).

    Embeddings, final norm and output head are the teacher's; the chosen layers keep their weights.
    """
    blocks = teacher.base_model.layers
    n = len(blocks)
    if layers is None:
        if not every or every < 1:
            raise DistillError("student.init=layers needs student.layers (a list) or student.every (k ≥ 1)",
                               where="student", fix="set e.g. `student.every: 3` or `student.layers: [0, 10, 20]`")
        layers = list(range(0, n, every))
    bad = [i for i in layers if not 0 <= i < n]
    if bad or not layers:
        raise DistillError(f"student.layers {list(layers)} is invalid for a teacher with {n} layers",
                           where="student.layers", fix=f"use indices from 0 to {n - 1}")
    student = copy.deepcopy(teacher)
    student.base_model.layers = torch.nn.ModuleList([student.base_model.layers[i] for i in layers])
    for new_idx, block in enumerate(student.base_model.layers):
        if hasattr(block, "self_attn") and hasattr(block.self_attn, "layer_idx"):
            block.self_attn.layer_idx = new_idx  # the KV cache is indexed by position in the stack
    cfg = student.config
    cfg.num_hidden_layers = len(layers)
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[i] for i in layers]
    student.requires_grad_(True)
    return student


def param_count(model: torch.nn.Module) -> int:
    """Parameters, counting tied tensors once."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel()
    return total

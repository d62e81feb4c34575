"""`train.parallel: fsdp` — PyTorch FSDP2 (`torch.distributed.fsdp.fully_shard`) for the student and the teacher,
and sharded checkpoints through `torch.distributed.checkpoint` (DCP).

* **Student**: every decoder block is its own FSDP unit and the root (`StudentLoss`: embeddings, final norm, output
  head) another, so parameters, gradients and AdamW moments are all sharded across ranks. The fused chunked loss
  runs inside the root's forward, where the root's parameters — the output head among them — are gathered once per
  forward and freed after backward: the head is gathered once per micro-batch, never per chunk.
* **Teacher** (frozen, inference only): its decoder blocks are sharded and gathered block by block during its
  forward, then freed; it has no gradients and no optimizer state. Its embeddings, final norm and output head stay
  whole on every rank (the loss reads the head outside the teacher's forward, many chunks a step).
* **Mixed precision** on GPU: bf16 parameters and compute, fp32 gradient reduction; fp32 on CPU.
* **Checkpoints**: model and optimizer state as DCP shards (`.distcp` files, no pickle of tensors), one per rank;
  DCP reshards on load, so a run may resume on another number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from distill.models.lora import apply_lora, causal_lm

if TYPE_CHECKING:
    from distill.config import LoraConfig


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder blocks of a Hugging Face causal LM (`model.model.layers` for Llama-, Gemma-, Qwen-style models)."""
    base = getattr(model, "base_model", model)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"cannot find the decoder layers of {type(model).__name__} (no base_model.layers)")
    return list(layers)


def _policy(device: torch.device):
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if device.type == "cuda":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard_student(module: nn.Module, student: nn.Module, device: torch.device) -> nn.Module:
    """Shard `student`'s blocks, then `module` (the root that owns the rest) in place; returns `module`."""
    from torch.distributed.fsdp import fully_shard

    mp = _policy(device)
    for layer in decoder_layers(causal_lm(student)):  # a LoRA block: its frozen base and adapters in one unit
        fully_shard(layer, mp_policy=mp)  # each block's shard moves to the device as it is sharded
    fully_shard(module, mp_policy=mp)
    return module.to(device)  # buffers outside the units (rotary tables); the shards are there already


def shard_teacher(teacher: nn.Module, device: torch.device) -> nn.Module:
    """Shard a frozen teacher's blocks (gathered one at a time in its forward, freed after)."""
    from torch.distributed.fsdp import fully_shard

    teacher.requires_grad_(False)
    mp = _policy(device)
    for layer in decoder_layers(teacher):
        fully_shard(layer, mp_policy=mp, reshard_after_forward=True)  # moves the block's shard to the device
    return teacher.to(device)  # the rest (embeddings, final norm, head, buffers) whole on every rank


@contextmanager
def gathered(root: nn.Module) -> Iterator[None]:
    """The root unit's parameters (embeddings, final norm, output head) whole for calls that bypass its forward
    (held-out evaluation, on-policy sampling); the blocks gather themselves. A no-op on an unsharded module."""
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(root, FSDPModule):
        yield
        return
    root.unshard()
    try:
        yield
    finally:
        root.reshard()


def gathered_copy(root: nn.Module, student: nn.Module, lora: LoraConfig | None = None,
                  prefix: str = "student.") -> nn.Module | None:
    """An unsharded copy of `student` (the module `root` holds under `prefix`) on rank 0, for the export — a LoRA
    student as the same peft model, its adapters unmerged; None on the other ranks (collective)."""
    from transformers import AutoModelForCausalLM

    full = full_state_dict(root)
    if dist.get_rank() != 0:
        return None
    state = {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}
    plain = AutoModelForCausalLM.from_config(causal_lm(student).config)  # on the CPU: its buffers are real
    copy = apply_lora(plain, lora) if lora is not None else plain
    copy.load_state_dict(state, strict=True)
    return copy.eval()


def ensure_process_group() -> None:
    """FSDP needs a process group even in a world of one: a private gloo group on 127.0.0.1."""
    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


def save_sharded(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every rank writes its shards of the model and optimizer state under `path` (collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(path))


def load_sharded(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Restore model and optimizer state in place from `save_sharded`'s folder (collective; reshards)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    state: dict[str, Any] = {"model": model_sd, "optimizer": optim_sd}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's tensors on rank 0 (on the CPU), an empty dict elsewhere (collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

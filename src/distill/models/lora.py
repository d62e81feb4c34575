"""LoRA students (peft): low-rank adapters on a frozen student, merged into a normal model at the end.

`apply_lora(model, settings)` wraps any student (fresh, layer subset or pretrained) in a peft model whose only
trainable parameters are the adapters. Training reads the wrapped transformers model through `causal_lm`
(its decoder gives the final hidden states and its output head the weight the fused loss multiplies: the head is
never a LoRA target, so the loss never needs full logits). `merged` folds the adapters in for export;
`save_adapter` and `save_base` write the adapter alone and the weights it applies to.

peft is imported only when a LoRA student is built (it takes seconds to import).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from distill.errors import DistillError

if TYPE_CHECKING:
    from distill.config import LoraConfig

WHERE = "student.lora.target_modules"


def is_lora(model: torch.nn.Module) -> bool:
    """Whether `model` is a peft-wrapped (LoRA) student. Without peft imported, no model can be one."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def causal_lm(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers causal LM inside a peft wrapper (its adapted layers in place), or `model` itself."""
    return model.get_base_model() if is_lora(model) else model


def _leaf_names(model: torch.nn.Module, kinds: tuple[type, ...]) -> list[str]:
    return [name for name, m in model.named_modules() if name and isinstance(m, kinds)]


def _adaptable_kinds() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D

    return torch.nn.Linear, torch.nn.Embedding, Conv1D


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)  # peft's rule for a list of names


def _embedding_names(model: torch.nn.Module) -> set[str]:
    """Module paths of the output head and the input embeddings (the head may be tied to them)."""
    wanted = {id(m) for m in (model.get_output_embeddings(), model.get_input_embeddings()) if m is not None}
    return {name for name, m in model.named_modules() if id(m) in wanted}


def check_targets(model: torch.nn.Module, targets: list[str]) -> None:
    """Refuse target names that match no adaptable layer, or that reach the output head or the embeddings."""
    layers = _leaf_names(model, _adaptable_kinds())
    short = sorted({n.rsplit(".", 1)[-1] for n in layers} - {n.rsplit(".", 1)[-1] for n in _embedding_names(model)})
    unknown = [t for t in targets if not any(_matches(n, t) for n in layers)]
    if unknown:
        raise DistillError(f"student.lora.target_modules names {unknown}, which match no linear layer of the "
                           f"{type(model).__name__} student", where=WHERE,
                           fix=f"use names of its layers ({', '.join(short)}) or 'all-linear'")
    heads = [t for t in targets if any(_matches(n, t) for n in _embedding_names(model))]
    if heads:
        raise DistillError(f"student.lora.target_modules {heads} would put an adapter on the output head or the "
                           "input embeddings, which the fused loss reads directly (and which may be tied)",
                           where=WHERE, fix=f"adapt the inner layers instead ({', '.join(short)}) or 'all-linear'")


def adapter_parameters(model: torch.nn.Module, settings: LoraConfig) -> int:
    """How many parameters `settings`' adapters add to `model` (r × (in + out) per adapted linear layer); works
    on a model built on the meta device, so the memory plan can count them without weights."""
    heads = _embedding_names(model)
    total = 0
    for name, m in model.named_modules():
        if not isinstance(m, torch.nn.Linear) or name in heads:
            continue
        if settings.target_modules == "all-linear" or any(_matches(name, t) for t in settings.target_modules):
            total += settings.r * (m.in_features + m.out_features)
    return total


def peft_config(settings: LoraConfig):
    """The peft LoraConfig for `student.lora`."""
    from peft import LoraConfig as PeftLoraConfig

    targets = settings.target_modules if settings.target_modules == "all-linear" else list(settings.target_modules)
    return PeftLoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                          target_modules=targets, bias="none")


def apply_lora(model: torch.nn.Module, settings: LoraConfig) -> torch.nn.Module:
    """`model` wrapped with LoRA adapters (a peft model): every base weight frozen, only the adapters trainable."""
    if settings.target_modules != "all-linear":
        check_targets(model, list(settings.target_modules))
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers deprecations that peft still touches
        try:
            wrapped = get_peft_model(model, peft_config(settings))
        except ValueError as e:  # e.g. no layer matched 'all-linear' on an unusual architecture
            raise DistillError(f"peft could not add LoRA adapters: {str(e).splitlines()[0][:300]}",
                               where=WHERE, fix="name the layers to adapt explicitly") from e
    return wrapped


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters that get gradients (and optimizer state): all of them, or a LoRA student's adapters."""
    return [p for p in model.parameters() if p.requires_grad]


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """The adapters folded into the base weights: a plain transformers model. Done in place (the peft model
    is not usable afterwards); a model without adapters is returned as is."""
    if not is_lora(model):
        return model
    return model.merge_and_unload()


def save_adapter(model: torch.nn.Module, directory: Path, base: str) -> None:
    """The adapter alone in peft's format (adapter_config.json + adapter_model.safetensors), naming `base` as
    the model it applies to."""
    model.peft_config["default"].base_model_name_or_path = base
    # the embeddings are never targets: no need for peft to look the base up (on the hub) to decide that
    model.save_pretrained(directory, safe_serialization=True, save_embedding_layers=False)


def base_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The frozen base weights under their original names (without the adapters, not merged)."""
    out = {}
    for name, tensor in causal_lm(model).state_dict().items():
        if ".lora_" not in name:
            out[name.replace(".base_layer.", ".")] = tensor
    return out


def save_base(model: torch.nn.Module, directory: Path) -> None:
    """The weights the adapter applies to, as a Hugging Face model directory (safetensors)."""
    causal_lm(model).save_pretrained(directory, state_dict=base_state_dict(model), safe_serialization=True)

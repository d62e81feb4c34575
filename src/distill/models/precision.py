"""The teacher at a lower precision, and how far it is from the exact one.

`teacher.precision` (config) or `--teacher-precision` (`distill eval`):

- `fp32` (default): the teacher as loaded — nothing here changes it.
- `int8`: the decoder layers' Linear weights are quantized to int8 per output channel and their activations per
  tensor at run time (PyTorch's dynamic quantization, `torch.ao.quantization.quantize_dynamic`, the fbgemm / x86
  kernel); the embeddings, the final norm and the output head stay fp32. CPU only.
- `bf16`: the teacher's body in bfloat16 (on CPU this is fast only where oneDNN has AMX or AVX-512-BF16 kernels);
  its final hidden states are returned in fp32 and its output head kept in fp32, so the loss computes the
  teacher's logits in fp32.

A lower-precision teacher says something slightly different from the exact one, so it never runs unmeasured:
`fidelity` scores the first held-out sequences with both and returns KL(teacher_fp32 ‖ teacher_fast) per scored
token (nats), which the run prints at start (and refuses above `teacher.precision_max_kl`) and `distill eval`
prints with its report.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from distill.errors import DistillError
from distill.loss.divergences import forward_kl

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")


def lower_precision(model: torch.nn.Module, precision: str, device: torch.device) -> torch.nn.Module:
    """A copy of `model` at `precision` (the model itself for fp32). The original is left as it is."""
    if precision == "fp32":
        return model
    if precision == "int8":
        if device.type != "cpu":
            raise DistillError("teacher.precision int8 is a CPU kernel (PyTorch dynamic quantization)",
                               where="teacher.precision", fix="use bf16 on a GPU, or fp32")
        return _int8(model)
    if precision == "bf16":
        if next(model.parameters()).device.type == "cpu" and not bf16_kernels():
            log.warning("teacher.precision bf16: this CPU has no bfloat16 matmul kernels (torch reports %s; fast "
                        "bf16 needs AVX512-BF16 or AMX), so the bf16 teacher runs slower than fp32 here (measured "
                        "4x slower per step on an AVX2-only EPYC). Use teacher.precision fp32 on this machine.",
                        torch.backends.cpu.get_cpu_capability())
        return _bf16(model)
    raise DistillError(f"unknown teacher precision {precision!r}", where="teacher.precision",
                       fix=f"use one of {', '.join(PRECISIONS)}")


def _decoder_linears(model: torch.nn.Module) -> set[str]:
    """Qualified names of the Linear layers inside the decoder blocks (not the output head)."""
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    prefix = next(name for name, m in model.named_modules() if m is body)
    layers = getattr(body, "layers", None)
    if layers is None:
        raise DistillError("int8 teacher: cannot find the decoder layers of this architecture",
                           where=type(model).__name__, fix="use teacher.precision fp32 or bf16")
    names = set()
    for name, m in layers.named_modules():
        if isinstance(m, torch.nn.Linear):
            names.add(".".join(p for p in (prefix, "layers", name) if p))
    return names


def _int8(model: torch.nn.Module) -> torch.nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = _decoder_linears(model)
    fast = copy.deepcopy(model).float().eval()
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao; the kernel is the same
        warnings.simplefilter("ignore")
        quantize_dynamic(fast, {name: per_channel_dynamic_qconfig for name in names}, inplace=True)
    return fast.requires_grad_(False)


def bf16_kernels() -> bool:
    """Whether this CPU has fast bfloat16 matmuls (oneDNN's AVX512-BF16 or AMX paths)."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def _bf16(model: torch.nn.Module) -> torch.nn.Module:
    fast = copy.deepcopy(model).to(torch.bfloat16).eval().requires_grad_(False)
    body = fast.get_decoder() if hasattr(fast, "get_decoder") else fast.base_model
    norm = getattr(body, "norm", None)
    if norm is not None:  # the loss forms the teacher's logits from these hidden states: hand them over in fp32
        norm.register_forward_hook(lambda _m, _i, out: out.float())
        head = fast.get_output_embeddings()
        if head is not None:  # the head stays fp32 (untied from the bf16 embeddings): the loss reads its weight
            head.weight = torch.nn.Parameter(model.get_output_embeddings().weight.detach().float().clone(),
                                             requires_grad=False)
            head.register_forward_pre_hook(lambda m, args: (args[0].to(m.weight.dtype), *args[1:]))
    return fast


@dataclass
class Fidelity:
    """KL(teacher_fp32 ‖ teacher_fast) per scored token on held-out sequences, and top-1 agreement."""

    precision: str
    kl_per_token: float
    top1_agreement: float
    tokens: int
    sequences: int

    def describe(self) -> str:
        return (f"teacher precision {self.precision}: KL(fp32 ‖ {self.precision}) = {self.kl_per_token:.5f} nats/token, "
                f"top-1 agreement {self.top1_agreement:.2%} ({self.tokens} held-out tokens, {self.sequences} "
                f"sequences)")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@torch.no_grad()
def fidelity(exact, fast, sequences: list[dict[str, Tensor]], pad_id: int, precision: str, batch_size: int = 4,
             chunk_size: int = 64, device: torch.device | None = None) -> Fidelity:
    """Score `sequences` with both teacher sources (`LiveTeacher`s, or anything with `signal(batch, positions)`
    returning a dense signal) and compare their next-token distributions at every scored position.

    Batches of `batch_size` as in training: an int8 teacher's activation scales are per batch, so its answer for a
    sequence depends a little on the sequences beside it."""
    from distill.data.corpus import collate
    from distill.signals import scored_positions

    device = device or torch.device("cpu")
    kl_sum, agree, tokens = 0.0, 0, 0
    for start in range(0, len(sequences), batch_size):
        ids = list(range(start, min(start + batch_size, len(sequences))))
        batch = {k: v.to(device) for k, v in collate([sequences[i] for i in ids], pad_id, ids).items()}
        positions = scored_positions(batch)
        p_sig, q_sig = exact.signal(batch, positions), fast.signal(batch, positions)
        for c in range(0, positions.numel(), chunk_size):
            rows = slice(c, c + chunk_size)
            p = torch.log_softmax(p_sig.logits(rows).double(), dim=-1)  # float64: small KLs stay exact
            q = torch.log_softmax(q_sig.logits(rows).double(), dim=-1)
            kl_sum += float(forward_kl(p, q).sum())
            agree += int((p.argmax(-1) == q.argmax(-1)).sum())
        tokens += positions.numel()
    if not tokens:
        raise DistillError("no held-out tokens to measure the lower-precision teacher on",
                           where="teacher.precision", fix="use more data or teacher.precision fp32")
    return Fidelity(precision, kl_sum / tokens, agree / tokens, tokens, len(sequences))


def check_fidelity(result: Fidelity, max_kl: float, where: str = "teacher.precision_max_kl") -> None:
    """Refuse a lower-precision teacher whose KL from the exact one is above `max_kl` nats per token."""
    if result.kl_per_token > max_kl:
        raise DistillError(
            f"the {result.precision} teacher is too far from the exact one: KL(fp32 ‖ {result.precision}) = "
            f"{result.kl_per_token:.4f} nats/token on {result.tokens} held-out tokens, above the limit {max_kl:g}",
            where=where, fix="use teacher.precision fp32 (exact), another precision, or raise "
                             "teacher.precision_max_kl if this difference is acceptable for your run")

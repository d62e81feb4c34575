"""The teacher as it runs for scoring — one place for the trainer, `distill capture` and `distill eval`.

`scoring_teacher(model, precision=..., compile=...)` returns the model the teacher source runs:

- `precision` (`distill.models.precision`): `fp32` returns the model itself (exact); `bf16` / `int8` a lower-precision
  copy, only together with its measured fidelity (`measured_teacher` does both and refuses one too far off).
- `compile`: `torch.compile` (inductor) of the decoder's forward, which fuses the norms, rotary embedding, SiLU·up
  and residual adds around the matmuls. Same arithmetic up to fp32 rounding (the fused reductions sum in another
  order). Opt-in: compiling the 30-layer default teacher takes minutes on 2 cores, and each new input shape
  compiles again. When no C++ compiler is present, or compiling fails for any other reason, the teacher runs
  eagerly (one warning) and says the same thing.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from distill.models.precision import Fidelity, check_fidelity, fidelity, lower_precision

log = logging.getLogger(__name__)


def decoder(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body whose last hidden states the teacher sources read (`model.base_model`)."""
    return model.base_model


def compile_forward(module: torch.nn.Module, what: str = "teacher") -> torch.nn.Module:
    """Replace `module.forward` with its `torch.compile`d version, falling back to eager for good on the first
    failure (no compiler, an unsupported op...). Returns the module."""
    eager = module.forward
    compiled = torch.compile(eager)
    state = {"compiled": True}

    def forward(*args: Any, **kwargs: Any):
        if state["compiled"]:
            try:
                return compiled(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any compile failure: the eager forward computes the same
                state["compiled"] = False
                log.warning("torch.compile of the %s failed (%s: %s); it runs eagerly", what, type(e).__name__,
                            str(e).splitlines()[0][:200] if str(e) else "")
        return eager(*args, **kwargs)

    forward.compile_state = state  # type: ignore[attr-defined]
    module.forward = forward
    return module


def scoring_teacher(model: torch.nn.Module, *, precision: str = "fp32", compile: bool = False,
                    device: torch.device | None = None) -> torch.nn.Module:
    """The teacher model at `precision` (a copy unless fp32), its decoder compiled when asked."""
    fast = lower_precision(model, precision, device or torch.device("cpu"))
    if compile:
        compile_forward(decoder(fast))
    return fast.eval().requires_grad_(False)


def measured_teacher(model: torch.nn.Module, *, precision: str, compile: bool, max_kl: float,
                     sequences: list, pad_id: int, vocab_size: int, batch_size: int = 4, chunk_size: int = 64,
                     device: torch.device | None = None) -> tuple[torch.nn.Module, Fidelity | None]:
    """`scoring_teacher`, and for a lower precision its fidelity against `model` on `sequences` (logged, and a
    DistillError above `max_kl` nats per token). Returns (teacher to run, fidelity or None for fp32)."""
    fast = scoring_teacher(model, precision=precision, compile=compile, device=device)
    if precision == "fp32":
        return fast, None
    from distill.signals import LiveTeacher

    result = fidelity(LiveTeacher(model, vocab_size), LiveTeacher(fast, vocab_size), sequences, pad_id, precision,
                      batch_size=batch_size, chunk_size=chunk_size, device=device)
    log.info("%s (limit %g)", result.describe(), max_kl)
    check_fidelity(result, max_kl)
    return fast, result

"""Intermediate-layer losses (`loss.hidden`): the student's decoder-layer outputs pulled towards the teacher's.

Student layer j is paired with teacher layer i (`pairs`, [(j, i), ...]); each pair's term compares the output of
student layer j (the residual stream after it, before the final norm), through a learned linear projection when
the widths differ, with the output of teacher layer i, at the scored positions only:

    cosine:  1 − cos(P·s, t)                       (scale-free: the usual choice for a residual stream)
    mse:     mean over the teacher's channels of (P·s − t)²   (in the teacher's units)

averaged over the pairs, summed over tokens and divided by the step's token count like every other loss term.

Memory stays bounded: the outputs are captured with forward hooks on the mapped layers only, each cut to the
scored positions ([N, d]) as soon as its layer has run; nothing stacks every layer's states
(`output_hidden_states`).

`auto_pairs`: every student layer is paired with the teacher layer at the end of the stretch of teacher layers it
stands for, so that its output is what the teacher's next stretch receives. For a student cut from the teacher
(pruned, or a layer subset) the stretches follow the kept teacher layers: student layer j (teacher layer kept[j])
stands for teacher layers kept[j] … kept[j+1] − 1 and is paired with kept[j+1] − 1, the last one with the teacher's
last layer. Otherwise the stretches are even: student layer j of S is paired with ⌈(j + 1)·L / S⌉ − 1 of L.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from distill.errors import DistillError


@dataclass(frozen=True)
class Origin:
    """What a student cut from the teacher kept of it, as teacher indices (for the `auto` mapping and the
    projection's start). Attached to such a student as `teacher_origin`; a plain attribute, never saved."""

    layers: tuple[int, ...]  # teacher decoder layer of each student layer
    hidden: tuple[int, ...] | None = None  # teacher hidden channel of each student channel (a width-pruned student)


def auto_pairs(student_layers: int, teacher_layers: int, kept: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """The `layers: auto` mapping (see the module docstring): one (student, teacher) pair per student layer."""
    if kept is not None and len(kept) == student_layers:
        ends = [nxt - 1 for nxt in kept[1:]] + [teacher_layers - 1]
        return list(enumerate(ends))
    return [(j, max(0, -(-(j + 1) * teacher_layers // student_layers) - 1)) for j in range(student_layers)]


def check_pairs(pairs: Sequence[Sequence[int]], student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Explicit `loss.hidden.layers`, validated against both models' depths."""
    out = []
    for pair in pairs:
        s, t = int(pair[0]), int(pair[1])
        if not (0 <= s < student_layers and 0 <= t < teacher_layers):
            raise DistillError(f"loss.hidden.layers pair [{s}, {t}] is out of range: the student has "
                               f"{student_layers} decoder layers, the teacher {teacher_layers}",
                               where="loss.hidden.layers",
                               fix=f"use student indices 0..{student_layers - 1} and teacher indices "
                                   f"0..{teacher_layers - 1}, or layers: auto")
        out.append((s, t))
    if len({s for s, _ in out}) != len(out):
        raise DistillError("loss.hidden.layers pairs a student layer twice", where="loss.hidden.layers",
                           fix="give each student layer at most one teacher layer")
    return out


def layer_terms(student: Tensor, teacher: Tensor, kind: Literal["cosine", "mse"]) -> Tensor:
    """One pair's per-token loss [N] between projected student states and teacher states, both [N, d_t]."""
    s = student.float()
    t = teacher.float()
    if kind == "cosine":
        return 1.0 - torch.nn.functional.cosine_similarity(s, t, dim=-1, eps=1e-8)
    if kind == "mse":
        return (s - t).pow(2).mean(-1)
    raise ValueError(f"unknown hidden loss kind {kind!r}")


def hidden_terms(student: Sequence[Tensor], teacher: Sequence[Tensor], kind: Literal["cosine", "mse"]) -> Tensor:
    """Per-token loss [N]: `layer_terms` averaged over the pairs (already projected, in the pairs' order)."""
    if len(student) != len(teacher) or not student:
        raise ValueError(f"{len(student)} student states for {len(teacher)} teacher states")
    total = layer_terms(student[0], teacher[0], kind)
    for s, t in zip(student[1:], teacher[1:], strict=True):
        total = total + layer_terms(s, t, kind)
    return total / len(student)


class Projections(torch.nn.Module):
    """One learned linear map per pair, student width → teacher width (none when the widths are equal).

    Trained with the student, never part of it: the exported model is the student alone. `channels` (the teacher
    hidden channels a width-pruned student kept, in order) starts each map as the exact embedding of those
    channels, so the loss starts where the pruned weights are."""

    def __init__(self, pairs: int, student_width: int, teacher_width: int, channels: Sequence[int] | None = None):
        super().__init__()
        self.maps = torch.nn.ModuleList()
        if student_width == teacher_width:
            return
        for _ in range(pairs):
            lin = torch.nn.Linear(student_width, teacher_width, bias=False)
            if channels is not None and len(channels) == student_width:
                with torch.no_grad():
                    lin.weight.zero_()
                    lin.weight[torch.as_tensor(list(channels)), torch.arange(student_width)] = 1.0
            self.maps.append(lin)

    def forward(self, states: Sequence[Tensor]) -> list[Tensor]:
        if not len(self.maps):
            return list(states)
        return [m(s.to(m.weight.dtype)) for m, s in zip(self.maps, states, strict=True)]


@contextmanager
def capture(layers: Sequence[torch.nn.Module], positions: Tensor) -> Iterator[list[Tensor | None]]:
    """Forward hooks on `layers`: while inside, each layer's output is kept cut to `positions` of the flattened
    [B·T] batch ([N, d], with its autograd graph). Yields the list, filled in `layers`' order as they run."""
    states: list[Tensor | None] = [None] * len(layers)

    def hook(i: int):
        def keep(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            states[i] = h.reshape(-1, h.shape[-1]).index_select(0, positions)
        return keep

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        yield states
    finally:
        for h in handles:
            h.remove()

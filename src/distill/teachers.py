"""Where the teacher signal comes from, declared once.

`teacher_kind(cfg)` names the one kind of teacher a run uses — a live model, a capture store, API answers or a
cross-tokenizer teacher — and checks every cross-field rule about it. `DistillConfig` runs it at validation, so a
config that cannot work is refused with one paragraph before anything loads; the trainer prints the kind at start
and builds its source by looking the kind's name up in `distill.training.sources.BUILDERS`. A new kind (a served
teacher, say) is one more `TeacherKind` here and one builder there: nothing else asks where the signal comes from.

This module is torch-free and imports nothing of Distill's but errors and data formats (config imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from distill.data.formats import data_format
from distill.errors import DistillError

if TYPE_CHECKING:
    from distill.config import DistillConfig


@dataclass(frozen=True)
class TeacherKind:
    """One way the teacher signal reaches the loss."""

    name: str
    description: str  # printed at the start of training
    needs_weights: bool  # the teacher model is loaded into the training process
    on_policy: bool  # can score samples the student draws during training


KINDS: dict[str, TeacherKind] = {k.name: k for k in (
    TeacherKind("live", "a live teacher model in this process (dense signal over the whole vocabulary)",
                needs_weights=True, on_policy=True),
    TeacherKind("store", "a capture store on disk (the teacher's top-k, its tail by teacher.store_tail)",
                needs_weights=False, on_policy=False),
    TeacherKind("api", "answers from an API written by `distill generate` (their tokens as targets, and their "
                "top-k log-probabilities where the set has them)", needs_weights=False, on_policy=False),
    TeacherKind("served", "a teacher behind an inference server, scoring each micro-batch (top-k log-probabilities "
                "per position, prefetched)", needs_weights=False, on_policy=True),
    TeacherKind("cross_tokenizer", "a live teacher with another tokenizer (signal mapped onto the student's "
                "tokens by loss.cross_tokenizer)", needs_weights=True, on_policy=False),
)}


def is_generated_set(cfg: DistillConfig) -> bool:
    """Is the data a folder written by `distill generate` (teacher answers, maybe with top-k log-probs)?"""
    return data_format(cfg.data.path, cfg.data.format) == "generated"


def teacher_kind(cfg: DistillConfig) -> TeacherKind:
    """The run's teacher kind; a DistillError for any combination of settings that cannot work together."""
    generated = is_generated_set(cfg)
    cross = cfg.loss.cross_tokenizer
    if cfg.student.tokenizer and not cross:
        raise DistillError("student.tokenizer differs from the teacher's, but loss.cross_tokenizer is not set",
                           where="student.tokenizer", fix="set loss.cross_tokenizer to align or uld")
    if cfg.teacher.store and generated:
        raise DistillError("both teacher.store and a generated data set would give the teacher signal",
                           where=f"teacher.store={cfg.teacher.store}, data.path={cfg.data.path}",
                           fix="train from one of them: drop teacher.store, or point data.path at the store's data")
    cut = cfg.student.init in ("layers", "prune")  # a student cut from the teacher's own weights
    if cross and (cfg.teacher.store or generated or cut):
        raise DistillError("loss.cross_tokenizer works with a live teacher and a fresh or pretrained student; it "
                           f"cannot be combined with teacher.store, generated data or student.init={cfg.student.init}",
                           where="loss.cross_tokenizer", fix="drop loss.cross_tokenizer or the conflicting setting")
    served = cfg.teacher.endpoint
    if served and (cfg.teacher.store or generated or cross or cut):
        raise DistillError("teacher.endpoint scores with a served teacher; it cannot be combined with teacher.store, "
                           "generated data, loss.cross_tokenizer or student.init=layers / prune (each needs local "
                           "weights)",
                           where="teacher.endpoint", fix="drop teacher.endpoint or the conflicting setting")
    t = cfg.teacher
    if served and t.endpoint_tail == "server_prior" and t.tail_k <= t.top_k:
        raise DistillError(f"teacher.tail_k ({t.tail_k}) must exceed teacher.top_k ({t.top_k}): the tail prior is "
                           "made of the entries ranked below the top-k", where="teacher.tail_k",
                           fix=f"set teacher.tail_k above {t.top_k} (e.g. 200) and start the server with "
                               "--max-logprobs at least that")
    name = ("served" if served else "cross_tokenizer" if cross else "store" if cfg.teacher.store
            else "api" if generated else "live")
    kind = KINDS[name]
    if cfg.loss.hidden is not None and name != "live":
        why = {"served": "the server sends log-probabilities only (vLLM's prompt_logprobs carries no hidden states)",
               "cross_tokenizer": "the teacher's positions are other tokens than the student's",
               "store": "a capture store holds the teacher's top-k log-probabilities, not its hidden states",
               "api": "API answers hold tokens and log-probabilities, not hidden states"}[name]
        raise DistillError(f"loss.hidden compares intermediate hidden states, which need a live teacher in this "
                           f"process with the student's tokenizer; this run's teacher is {kind.description}: {why}",
                           where="loss.hidden", fix="drop loss.hidden, or train from a live teacher (teacher.model "
                           "without teacher.store, teacher.endpoint, loss.cross_tokenizer or generated data)")
    if cfg.train.on_policy_fraction > 0 and not kind.on_policy:
        raise DistillError(f"on-policy distillation needs a teacher that scores the student's samples (a live or a "
                           f"served one); this run's teacher is {kind.description}", where="train.on_policy_fraction",
                           fix="set train.on_policy_fraction to 0, or use a live or served teacher")
    if cfg.train.on_policy_fraction > 0 and cfg.loss.kd_weight == 0:
        raise DistillError("on-policy batches are scored only by the KD term, but loss.kd_weight is 0",
                           where="train.on_policy_fraction", fix="set loss.kd_weight > 0 or on_policy_fraction to 0")
    return kind

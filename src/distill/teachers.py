"""Where the teacher signal comes from, declared once.

`teacher_kind(cfg)` names the one kind of teacher a run uses — a live model, a capture store, API answers or a
cross-tokenizer teacher — and checks every cross-field rule about it. `DistillConfig` runs it at validation, so a
config that cannot work is refused with one paragraph before anything loads; the trainer prints the kind at start
and builds its source with `make_source`, a look-up in `KINDS`. A new kind (a served teacher, say) is one more
`TeacherKind` entry and its builder: nothing else asks where the signal comes from.

This module stays torch-free (config validation imports it); builders import what they need when called.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.data.formats import data_format
from distill.errors import DistillError

if TYPE_CHECKING:
    from distill.config import DistillConfig
    from distill.signals import TeacherSource


@dataclass(frozen=True)
class SourceInputs:
    """What a builder may use. `tokenizer` is the student's (the data is tokenized with it)."""

    cfg: DistillConfig
    teacher: Any  # LoadedModel, or None when the kind needs no weights
    info: Any  # ModelInfo of teacher.model
    tokenizer: Any
    corpus: Any  # distill.data.corpus.Corpus
    device: Any  # torch.device


def _live(x: SourceInputs, split: str) -> TeacherSource:
    from distill.signals import LiveTeacher

    return LiveTeacher(x.teacher.model, len(x.tokenizer))


def _store(x: SourceInputs, split: str) -> TeacherSource:
    from distill.store import StoreTeacher, expected_identity

    expect = expected_identity(teacher=x.info, tokenizer=x.tokenizer, corpus=x.corpus)
    return StoreTeacher(x.cfg.teacher.store, split=split, expect=expect, device=x.device, tail=x.cfg.teacher.store_tail)


def _api(x: SourceInputs, split: str) -> TeacherSource:
    from distill.signals import BatchTopK

    return BatchTopK()


def _cross_tokenizer(x: SourceInputs, split: str) -> TeacherSource:
    from distill.crosstok import CrossTokenizerTeacher

    loss = x.cfg.loss
    return CrossTokenizerTeacher(x.teacher.model, x.teacher.tokenizer, x.tokenizer, method=loss.cross_tokenizer,
                                 top_k=loss.cross_top_k, chunk_size=loss.chunk_size)


@dataclass(frozen=True)
class TeacherKind:
    """One way the teacher signal reaches the loss."""

    name: str
    description: str  # printed at the start of training
    needs_weights: bool  # the teacher model is loaded into the training process
    on_policy: bool  # can score samples the student draws during training
    build: Callable[[SourceInputs, str], TeacherSource]  # (inputs, split 'train' | 'heldout') -> source


KINDS: dict[str, TeacherKind] = {k.name: k for k in (
    TeacherKind("live", "a live teacher model in this process (dense signal over the whole vocabulary)",
                needs_weights=True, on_policy=True, build=_live),
    TeacherKind("store", "a capture store on disk (the teacher's top-k, its tail by teacher.store_tail)",
                needs_weights=False, on_policy=False, build=_store),
    TeacherKind("api", "answers from an API written by `distill generate` (their tokens as targets, and their "
                "top-k log-probabilities where the set has them)", needs_weights=False, on_policy=False, build=_api),
    TeacherKind("cross_tokenizer", "a live teacher with another tokenizer (signal mapped onto the student's "
                "tokens by loss.cross_tokenizer)", needs_weights=True, on_policy=False, build=_cross_tokenizer),
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
    if cross and (cfg.teacher.store or generated or cfg.student.init == "layers"):
        raise DistillError("loss.cross_tokenizer works with a live teacher and a fresh or pretrained student; it "
                           "cannot be combined with teacher.store, generated data or student.init=layers",
                           where="loss.cross_tokenizer", fix="drop loss.cross_tokenizer or the conflicting setting")
    name = "cross_tokenizer" if cross else "store" if cfg.teacher.store else "api" if generated else "live"
    kind = KINDS[name]
    if cfg.train.on_policy_fraction > 0 and not kind.on_policy:
        raise DistillError(f"on-policy distillation needs a live teacher to score the student's samples; this run's "
                           f"teacher is {kind.description}", where="train.on_policy_fraction",
                           fix="set train.on_policy_fraction to 0, or use a live white-box teacher")
    if cfg.train.on_policy_fraction > 0 and cfg.loss.kd_weight == 0:
        raise DistillError("on-policy batches are scored only by the KD term, but loss.kd_weight is 0",
                           where="train.on_policy_fraction", fix="set loss.kd_weight > 0 or on_policy_fraction to 0")
    return kind


def make_source(cfg: DistillConfig, inputs: SourceInputs, split: str) -> TeacherSource:
    """The teacher source for `split`. With no KD term the training steps need none (the data is the signal);
    the held-out figures still use the teacher."""
    if split == "train" and cfg.loss.kd_weight == 0:
        from distill.signals import NoTeacher

        return NoTeacher()
    return teacher_kind(cfg).build(inputs, split)


def policy_verdict(cfg: DistillConfig, info: Any):
    """The licence/terms gate, before any compute: the API behind a generated set, else the teacher model."""
    from distill.provenance.policy import check_api_teacher, check_model_teacher

    source = Path(cfg.data.path) / "source.json"
    if teacher_kind(cfg).name == "api" and source.is_file():
        api = json.loads(source.read_text())
        return check_api_teacher(api["endpoint"], api["model"], cfg.teacher.authorization,
                                 local_spec=cfg.teacher.model)
    return check_model_teacher(info, cfg.teacher.authorization)

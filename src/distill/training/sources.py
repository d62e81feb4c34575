"""The teacher source of a run: a look-up of its teacher kind (`distill.teachers`) in `BUILDERS`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.config import DistillConfig
from distill.loss.fused import chunk_rows
from distill.signals import BatchTopK, LiveTeacher, NoTeacher, TeacherSource


@dataclass(frozen=True)
class SourceInputs:
    """What a builder may use. `tokenizer` is the student's (the data is tokenized with it)."""

    cfg: DistillConfig
    teacher: Any  # LoadedModel, or None when the kind needs no weights
    info: Any  # ModelInfo of teacher.model
    tokenizer: Any
    corpus: Any  # distill.data.corpus.Corpus
    world: Any  # distill.training.distributed.World (rank, size, device)
    sampler: Any = None  # distill.training.sampler.BatchSampler: the coming rows, for sources that prefetch
    start_step: int = 0  # the step training starts (or resumes) at
    hidden_layers: tuple[int, ...] = ()  # loss.hidden: the teacher layers whose outputs the training signal carries

    @property
    def device(self):
        return self.world.device


def _live(x: SourceInputs, split: str) -> TeacherSource:
    return LiveTeacher(x.teacher.model, len(x.tokenizer), x.hidden_layers if split == "train" else ())


def _store(x: SourceInputs, split: str) -> TeacherSource:
    from distill.store import StoreTeacher, expected_identity

    served = served_origin(x.cfg)
    expect = expected_identity(teacher=None if served else x.info, served_model=x.cfg.teacher.model if served else None,
                               tokenizer=x.tokenizer, corpus=x.corpus)
    return StoreTeacher(x.cfg.teacher.store, split=split, expect=expect, device=x.device, tail=x.cfg.teacher.store_tail)


def _api(x: SourceInputs, split: str) -> TeacherSource:
    return BatchTopK()


def _served(x: SourceInputs, split: str) -> TeacherSource:
    from distill.served.source import open_served_teacher

    return open_served_teacher(x.cfg, x.tokenizer, x.corpus, x.world, split=split, sampler=x.sampler,
                               start_step=x.start_step)


def _cross_tokenizer(x: SourceInputs, split: str) -> TeacherSource:
    from distill.crosstok import CrossTokenizerTeacher

    loss = x.cfg.loss
    return CrossTokenizerTeacher(x.teacher.model, x.teacher.tokenizer, x.tokenizer, method=loss.cross_tokenizer,
                                 top_k=loss.cross_top_k,
                                 chunk_size=chunk_rows(loss.chunk_size, len(x.teacher.tokenizer), x.world.device))


# teacher kind name -> (inputs, split 'train' | 'heldout') -> source; one entry per `distill.teachers.KINDS` entry
BUILDERS: dict[str, Callable[[SourceInputs, str], TeacherSource]] = {
    "live": _live, "store": _store, "api": _api, "served": _served, "cross_tokenizer": _cross_tokenizer,
}


def make_source(cfg: DistillConfig, inputs: SourceInputs, split: str) -> TeacherSource:
    """The teacher source for `split`. With no KD term (and no loss.hidden) the training steps need none (the
    data is the signal); the held-out figures still use the teacher."""
    if split == "train" and cfg.loss.kd_weight == 0 and cfg.loss.hidden is None:
        return NoTeacher()
    return BUILDERS[cfg.teacher_kind.name](inputs, split)


def served_origin(cfg: DistillConfig) -> dict[str, Any] | None:
    """The server the teacher signal comes from — this run's teacher.endpoint, or the one a store was captured
    from (`distill capture --teacher-endpoint`) — as {"endpoint", "model", "tokenizer"}; None for a local teacher."""
    t = cfg.teacher
    if cfg.teacher_kind.name == "served":
        return {"endpoint": t.endpoint, "model": t.model, "tokenizer": t.tokenizer}
    if cfg.teacher_kind.name == "store":
        from distill.store import read_manifest, served_store

        return served_store(read_manifest(t.store))
    return None


def api_identity(cfg: DistillConfig) -> dict[str, str] | None:
    """The served teacher's endpoint and model, for lineage (None when the teacher is not behind a server)."""
    served = served_origin(cfg)
    return None if served is None else {"base_url": served["endpoint"], "model": served["model"]}


def policy_verdict(cfg: DistillConfig, info: Any):
    """The licence/terms gate, before any compute: the served teacher or the API behind a generated set, else the
    teacher model."""
    from distill.provenance.policy import check_api_teacher, check_model_teacher

    served = served_origin(cfg)
    if served is not None:
        from distill.provenance.policy.identify import api_host, is_local_host

        local = served.get("tokenizer") if is_local_host(api_host(served["endpoint"])) else None
        return check_api_teacher(served["endpoint"], served["model"], cfg.teacher.authorization, local_spec=local)
    source = Path(cfg.data.path) / "source.json"
    if cfg.teacher_kind.name == "api" and source.is_file():
        api = json.loads(source.read_text())
        return check_api_teacher(api["endpoint"], api["model"], cfg.teacher.authorization,
                                 local_spec=cfg.teacher.model)
    return check_model_teacher(info, cfg.teacher.authorization)

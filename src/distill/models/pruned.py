"""`distill.prune` (and `distill prune`): a student cut from the teacher by importance, written to a directory as a
Hugging Face model with `importance.json` beside the weights; no training. The cut itself is `distill.models.prune`."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from distill.config import DataConfig, PruneConfig
from distill.errors import DistillError
from distill.fileio import shareable, write_json_atomic
from distill.models.prune import Dims


class PruneSettings(PruneConfig):
    """The pruned shape (as `student.prune`: layers, hidden_size, intermediate_size, num_heads or target_params, and
    calibration_sequences), plus the teacher, the calibration data and where to write; each a `distill prune` flag
    of the same name."""

    out: str = Field(description="The output model directory (it must not exist unless `overwrite`).")
    teacher: str = Field("default", description="The teacher: 'default', a GGUF file, a model folder or a hub id "
                         "(Llama-style architectures).")
    data: str = Field("shakespeare", description="Calibration data, as data.path in a config (its training split).")
    seq_len: int = Field(256, ge=8, description="Tokens per calibration sequence.")
    overwrite: bool = Field(False, description="Replace an existing `out` directory.")

    @field_validator("out", "teacher", "data", mode="before")
    @classmethod
    def _paths_as_text(cls, v: Any) -> Any:  # a pathlib.Path is as good as its text
        return str(v) if isinstance(v, os.PathLike) else v


@dataclass(frozen=True)
class PruneOutput:
    """What `distill.prune` gives back."""

    path: Path  # the written model directory (with importance.json)
    teacher: str  # the teacher's name
    dims: Dims  # the student's shape: layers, hidden_size, intermediate_size, num_heads, num_kv_heads
    kept_layers: list[int]  # the teacher layers kept, in order
    teacher_params: int
    student_params: int
    report: dict[str, Any]  # importance.json: the scores and what was kept of each kind


def prune(settings: PruneSettings) -> PruneOutput:
    """Measure importance on the calibration data, cut the student, write it (temp name, then renamed)."""
    from distill.data.corpus import load_corpus
    from distill.models.loading import describe_model, load_model
    from distill.models.prune import prune_teacher
    from distill.provenance.policy import check_model_teacher

    out = Path(settings.out).expanduser()
    if out.exists() and not settings.overwrite:
        raise DistillError(f"output directory already exists: {out}", where="--out",
                           fix="choose another --out or pass --overwrite")
    check_model_teacher(describe_model(settings.teacher), None)  # the licence gate, before any compute
    teacher = load_model(settings.teacher)
    corpus = load_corpus(DataConfig(path=settings.data, seq_len=settings.seq_len), teacher.tokenizer)
    res = prune_teacher(teacher.model, settings, corpus.train, teacher.tokenizer.pad_token_id)
    report = {**res.report, "teacher": teacher.info.name, "data": settings.data, "seq_len": settings.seq_len}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        res.student.save_pretrained(tmp, safe_serialization=True)
        teacher.tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "importance.json", report)
        shareable(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PruneOutput(out, teacher.info.name, res.dims, list(res.selection.layers), res.teacher_params,
                       res.student_params, report)

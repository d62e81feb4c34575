"""`kind: store` — a capture store on disk written by `distill capture`: the teacher's top-k at every position (and
its average tail), read instead of running the teacher."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from distill.errors import DistillError
from distill.teachers.base import TeacherBase, TeacherInputs, TeacherKind

if TYPE_CHECKING:
    from distill.config import DistillConfig


class StoreTeacherConfig(TeacherBase):
    """`teacher: {kind: store, store: DIR, model: ...}`; `model` is the teacher the store was captured from."""

    kind: Literal["store"] = Field(description="A capture store written by `distill capture`.")
    KIND = TeacherKind("store", "a capture store on disk (the teacher's top-k, its tail by teacher.store_tail)",
                       needs_weights=False, on_policy=False, signal="sparse", tails=("prior", "bucket"))

    store: str = Field(description="The store folder written by `distill capture`; training reads the teacher's "
                       "top-k from it instead of running the teacher.")
    store_tail: Literal["prior", "bucket"] = Field(
        "prior", description="What the loss does with the mass outside the stored top-k. 'prior' spreads it over "
        "the other tokens in proportion to the teacher's average tail (the store's tail prior, summed at capture) "
        "and uses the dense losses; 'bucket' compares it as one outcome (cheaper per step, but the student learns "
        "nothing about the shape of the teacher's tail).")
    tokenizer: str | None = Field(None, description="For a store captured from a served teacher: that teacher's "
                                  "tokenizer, as a local model spec (default: `model`). Checked against the store.")

    @property
    def local_spec(self) -> str:
        return self.tokenizer or self.model

    def check(self, cfg: DistillConfig) -> None:
        from distill.teachers.api import is_generated_set

        if is_generated_set(cfg):
            raise DistillError("both teacher.store and a generated data set would give the teacher signal",
                               where=f"teacher.store={self.store}, data.path={cfg.data.path}",
                               fix="train from one of them: drop teacher.store, or point data.path at the store's data")

    def served_origin(self, cfg: DistillConfig) -> dict[str, Any] | None:
        from distill.store.manifest import read_manifest, served_store

        return served_store(read_manifest(self.store))

    def open(self, inputs: TeacherInputs, split: str):
        from distill.store.manifest import expected_identity
        from distill.store.reader import StoreTeacher

        served = self.served_origin(inputs.cfg)
        expect = expected_identity(teacher=None if served else inputs.info, served_model=self.model if served else None,
                                   tokenizer=inputs.tokenizer, corpus=inputs.corpus)
        return StoreTeacher(self.store, split=split, expect=expect, device=inputs.device, tail=self.store_tail)

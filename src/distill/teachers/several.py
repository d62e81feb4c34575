"""Several teachers in one run: `teachers: [{name, weight, kind, ...}, ...]`.

Each member is a teacher of any kind (the kind's own fields and rules) plus a `name` and a `weight`. A training
example whose data row names a teacher (a `teacher` field in JSONL text or chat rows) is distilled from that
teacher alone (routing); an example that names none, from the weighted mixture of all members' distributions in
probability space (ensemble: `distill.signals.mixture`). A teacher is asked only for batches where some example
needs it. The first member is the primary: the student is built on its tokenizer (and cut from it with
student.init layers / prune); every other member must share that tokenizer (cross-tokenizer members are not
supported in a mixture), and an `api` member is refused (its answers are the data itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field, create_model

from distill.errors import DistillError
from distill.teachers.api import ApiTeacherConfig
from distill.teachers.base import TeacherBase, TeacherInputs
from distill.teachers.cross_tokenizer import CrossTokenizerTeacherConfig
from distill.teachers.live import LiveTeacherConfig
from distill.teachers.served import ServedTeacherConfig
from distill.teachers.store import StoreTeacherConfig

if TYPE_CHECKING:
    from distill.config import DistillConfig

MEMBER_FIELDS = ("name", "weight")


def _member(cls: type[TeacherBase]) -> type[TeacherBase]:
    return create_model(
        cls.__name__.replace("Config", "Member"), __base__=cls, __doc__=f"{cls.__doc__} One of several teachers.",
        name=(str, Field(min_length=1, description="The teacher's name: what a data row's `teacher` field routes "
                         "to, and its label in logs, the memory plan and lineage.")),
        weight=(float, Field(1.0, gt=0, description="Its share of the ensemble target (examples whose row names no "
                             "teacher); the weights are normalized over the members.")))


MEMBERS: dict[str, type[TeacherBase]] = {c.KIND.name: _member(c) for c in (
    LiveTeacherConfig, StoreTeacherConfig, ServedTeacherConfig, ApiTeacherConfig, CrossTokenizerTeacherConfig)}
TeacherMember = Annotated[Union[tuple(MEMBERS.values())], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007


def as_teacher(member: TeacherBase) -> TeacherBase:
    """The member as a single teacher of its kind (its name and weight left out)."""
    from distill.teachers import CLASSES

    return CLASSES[member.KIND.name].model_validate(member.model_dump(exclude=set(MEMBER_FIELDS)))


def check_members(cfg: DistillConfig) -> None:
    """The rules of a run with several teachers (each member's own rules run too, as its kind's)."""
    members = cfg.teachers or []
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DistillError(f"two teachers share the name {dup[0]!r}", where="teachers",
                           fix="give every teacher its own name (data rows route to it by name)")
    for i, m in enumerate(members):
        where = f"teachers[{i}] ({m.name})"
        if m.KIND.name in ("api", "cross_tokenizer"):
            why = ("its answers are the data itself, not a distribution to mix" if m.KIND.name == "api" else
                   "its positions are other tokens than the student's")
            raise DistillError(f"a {m.KIND.name} teacher cannot be one of several teachers: {why}", where=where,
                               fix="use live, store or served teachers in `teachers`, or train from it alone "
                                   "with `teacher`")
        if cfg.train.on_policy_fraction > 0 and not m.KIND.on_policy:
            raise DistillError(f"on-policy distillation needs every teacher to score the student's samples; "
                               f"{m.name} is {m.KIND.description}", where=where,
                               fix="set train.on_policy_fraction to 0, or use live or served teachers")
        as_teacher(m).check(cfg)
    if cfg.train.parallel == "fsdp":
        raise DistillError("several teachers run under DDP or in one process; train.parallel fsdp shards one teacher",
                           where="train.parallel", fix="use train.parallel ddp with `teachers`")
    if cfg.loss.hidden is not None:
        raise DistillError("loss.hidden pulls the student towards one teacher's layers; with several teachers it "
                           "would not say whose", where="loss.hidden", fix="drop loss.hidden with `teachers`")


def routes(corpus: Any, split: str, names: list[str]) -> list[int]:
    """Per example of `split`, the index of the teacher its data row names, or -1 (the ensemble). An unknown
    name is a DistillError that lists the teachers."""
    out = []
    for i, ex in enumerate(corpus.train if split == "train" else corpus.heldout):
        name = ex.get("teacher")
        if name is not None and name not in names:
            raise DistillError(f"a data row names the teacher {name!r}, which is not one of this run's teachers "
                               f"({', '.join(names)})", where=f"data ({split} example {i})",
                               fix="name one of the teachers in the row's `teacher` field, or add that teacher")
        out.append(names.index(name) if name is not None else -1)
    return out


class TeacherMix:
    """The teacher source of a run with several teachers: each member's own source (opened by its kind), and the
    weight of each member at each scored position (routing one-hot, else the normalized ensemble weights)."""

    def __init__(self, names: list[str], weights: list[float], sources: list[Any], routed: list[int], vocab: int):
        import torch

        self.names, self.sources, self.vocab = names, sources, vocab
        self.routed = torch.tensor(routed, dtype=torch.long)  # [examples of the split]
        w = torch.tensor(weights, dtype=torch.float32)
        self.ensemble = w / w.sum()  # [M]

    def row_weights(self, example_ids):
        """[B, M] weights of each row of a batch: its routed teacher's one-hot, or the ensemble weights."""
        import torch

        route = self.routed[example_ids.cpu()]
        one_hot = torch.nn.functional.one_hot(route.clamp_min(0), len(self.names)).float()
        return torch.where((route >= 0)[:, None], one_hot, self.ensemble.expand_as(one_hot))

    def signal(self, batch, positions):
        from distill.signals import MixtureSignal

        B, T = batch["input_ids"].shape
        rows = self.row_weights(batch["example_ids"]).to(positions.device)
        weights = rows.repeat_interleave(T, dim=0).index_select(0, positions)  # [N, M]
        needed = (weights > 0).any(0).tolist()
        members = [src.signal(batch, positions) if need else None
                   for src, need in zip(self.sources, needed, strict=True)]
        return MixtureSignal(members=members, weights=weights, vocab=self.vocab)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, src in zip(self.names, self.sources, strict=True):
            if hasattr(src, "summary"):
                out.update({f"{name}.{k}": v for k, v in src.summary().items()})
        return out

    def close(self) -> None:
        from distill.teachers import close_source

        for src in self.sources:
            close_source(src)


def open_mix(cfg: DistillConfig, inputs: list[TeacherInputs], split: str) -> TeacherMix:
    """Every member's source for `split` (`inputs[i]`: member i's, with its loaded model when it has one); if one
    fails to open, those already open are closed."""
    from distill.teachers import close_source, open_source

    members = cfg.teachers or []
    sources: list[Any] = []
    try:
        for m, x in zip(members, inputs, strict=True):
            sources.append(open_source(as_teacher(m), x, split))
        return TeacherMix([m.name for m in members], [m.weight for m in members], sources,
                          routes(inputs[0].corpus, split, [m.name for m in members]), len(inputs[0].tokenizer))
    except BaseException:
        for src in sources:
            close_source(src)
        raise

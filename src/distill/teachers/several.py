"""Several teachers in one run: `teachers: [{name, weight, kind, ...}, ...]`.

Each member is a teacher of any kind (the kind's own fields and rules) plus a `name` and a `weight`. A training
example whose data row names a teacher (a `teacher` field in JSONL text or chat rows) is distilled from that
teacher alone (routing); an example that names none, from the weighted mixture of all members' distributions in
probability space (ensemble: `distill.signals.mixture`). A teacher is asked only for batches where some example
needs it. The first member is the primary: the student is built on its tokenizer (and cut from it with
student.init layers / prune); every other member must share that tokenizer (cross-tokenizer members are not
supported in a mixture), and an `api` member is refused (its answers are the data itself)."""

from __future__ import annotations

import math
from dataclasses import replace
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
ENSEMBLE = "ensemble"  # data.teacher_shares' name for the rows that name no teacher


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
    shares = cfg.data.teacher_shares or {}
    unknown = sorted(set(shares) - set(names) - {ENSEMBLE})
    if unknown:
        raise DistillError(f"data.teacher_shares names {unknown[0]!r}, which is not one of this run's teachers",
                           where="data.teacher_shares", fix=f"use the teachers' names ({', '.join(names)}) or "
                           f"'{ENSEMBLE}' for rows that name none")
    if any(not (v > 0 and math.isfinite(v)) for v in shares.values()):
        raise DistillError("every share in data.teacher_shares must be a positive number", where="data.teacher_shares",
                           fix="leave a group out of the data instead of giving it 0")
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


def sub_batch(batch: dict[str, Any], positions: Any, keep: Any) -> tuple[dict[str, Any], Any, Any]:
    """The rows `keep` ([B] bool) of a batch: (the sub-batch, the scored positions that fall in those rows as
    indices into its flattened [B', T], and their indices among `positions` [N'], ascending). Every tensor whose
    first dimension is the batch's rows is cut; anything else is passed on."""
    import torch

    B, T = batch["input_ids"].shape
    kept = keep.nonzero().squeeze(-1)  # [B']
    new_row = torch.full((B,), -1, dtype=torch.long, device=positions.device)
    new_row[kept.to(positions.device)] = torch.arange(len(kept), device=positions.device)
    row = new_row[positions // T]  # [N]
    cover = (row >= 0).nonzero().squeeze(-1)  # [N']
    at = row[cover] * T + positions[cover] % T
    sub = {k: v.index_select(0, kept.to(v.device)) if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == B
           else v for k, v in batch.items()}
    return sub, at, cover


def share_pool(routed: list[int], names: list[str], shares: dict[str, float] | None) -> list[int] | None:
    """The training examples one epoch draws from (`training.sampler.BatchSampler`'s pool), so that each teacher's
    rows (`routed`: per train example, the member index or -1) make up its share of `shares` (`data.teacher_shares`):
    a group's rows repeated whole, then the first of them again for the remainder; the largest group relative to its
    share appears once. None without shares (each example once). A group the data holds without a share, or a share
    for a group it does not hold, is a DistillError."""
    if not shares:
        return None
    groups: dict[str, list[int]] = {}
    for e, r in enumerate(routed):
        groups.setdefault(names[r] if r >= 0 else ENSEMBLE, []).append(e)
    missing = sorted(set(groups) - set(shares))
    if missing:
        raise DistillError(f"the data has rows for {missing[0]!r} but data.teacher_shares gives it no share",
                           where="data.teacher_shares", fix=f"give every group a share ({', '.join(sorted(groups))})")
    empty = sorted(set(shares) - set(groups))
    if empty:
        raise DistillError(f"data.teacher_shares gives {empty[0]!r} a share but no training row is routed to it",
                           where="data.teacher_shares", fix=f"name it in the data's `teacher` fields, or share "
                           f"only among the groups the data holds ({', '.join(sorted(groups))})")
    total = sum(shares[g] for g in groups)
    epoch = max(len(ids) * total / shares[g] for g, ids in groups.items())
    pool: list[int] = []
    for g, ids in groups.items():
        count = max(len(ids), round(epoch * shares[g] / total))
        pool += ids * (count // len(ids)) + ids[: count % len(ids)]
    return pool


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
        """The mixture at `positions` ([N] into the flattened [B, T] batch). Each member runs only on the rows
        that need it (a routed row on its teacher's alone; an ensemble row on every member's), so routing two
        teachers costs one teacher forward per row, as one teacher does."""
        from distill.signals import MixtureSignal

        B, T = batch["input_ids"].shape
        rows = self.row_weights(batch["example_ids"]).to(positions.device)  # [B, M]
        weights = rows.repeat_interleave(T, dim=0).index_select(0, positions)  # [N, M]
        members, covers = [], []
        for m, src in enumerate(self.sources):
            need = rows[:, m] > 0  # [B]
            if not bool(need.any()):
                members.append(None)
                covers.append(None)
            elif bool(need.all()):
                members.append(src.signal(batch, positions))
                covers.append(None)
            else:
                sub, at, cover = sub_batch(batch, positions, need)
                members.append(src.signal(sub, at))
                covers.append(cover)
        return MixtureSignal(members=members, weights=weights, vocab=self.vocab, covers=covers)

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
    names = [m.name for m in members]
    routed = routes(inputs[0].corpus, split, names)
    sources: list[Any] = []
    try:
        for i, (m, x) in enumerate(zip(members, inputs, strict=True)):
            mine = frozenset(e for e, r in enumerate(routed) if r in (i, -1))
            sources.append(open_source(as_teacher(m), replace(x, examples=mine), split))
        return TeacherMix(names, [m.weight for m in members], sources, routed, len(inputs[0].tokenizer))
    except BaseException:
        for src in sources:
            close_source(src)
        raise

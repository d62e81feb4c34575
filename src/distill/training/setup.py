"""Everything a run needs before its first step, built in one place: `setup(cfg)` → `Run`.

Order matters and is the point of this module: the teacher is identified and gated before any compute, its
weights are loaded only when its kind needs them (or a layer-subset student is cut from them), the data is
tokenized with the student's tokenizer, and a resumed run picks up its checkpoint last.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from distill.config import DistillConfig
from distill.data.corpus import Corpus, load_corpus
from distill.errors import DistillError
from distill.loss.fused import chunk_rows
from distill.models.fast import measured_teacher
from distill.models.loading import (
    LoadedModel,
    ModelInfo,
    check_compatible,
    describe_model,
    load_model,
    load_tokenizer,
)
from distill.models.lora import apply_lora, trainable_parameters
from distill.models.student_init import student_init
from distill.models.students import param_count
from distill.signals import TeacherSource
from distill.teachers import TeacherInputs
from distill.teachers.live import LocalModelTeacher
from distill.teachers.several import as_teacher, routes, share_pool
from distill.training import allocator, distributed, memory, sharding
from distill.training.checkpoint import latest_checkpoint, load_checkpoint
from distill.training.module import StudentLoss, hidden_parts
from distill.training.sampler import BatchSampler
from distill.training.sources import make_source, policy_verdict
from distill.training.toolrollout import ToolRollout

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A run's pieces. The loop and the callbacks read them; only the loop steps the optimizer."""

    cfg: DistillConfig
    world: distributed.World
    out_dir: Path  # the finished student
    run_dir: Path  # checkpoints, metrics.jsonl, TensorBoard: `<output_dir>.ckpt`
    info: ModelInfo  # the teacher, identified
    verdict: Any  # the policy gate's verdict (recorded in lineage)
    tokenizer: Any  # the student's (the data's) tokenizer
    corpus: Corpus
    student: torch.nn.Module
    module: StudentLoss  # student + fused loss
    model: torch.nn.Module  # `module`, wrapped in DDP under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    source: TeacherSource  # the teacher signal for training steps
    eval_source: TeacherSource  # ... and for held-out figures
    sampler: BatchSampler
    start_step: int = 0
    history: list[dict] = field(default_factory=list)
    sample_time: float = 0.0  # seconds spent sampling on-policy continuations
    sample_tokens: int = 0  # ... and the tokens sampled in them (this process)
    memory_plan: memory.Plan | None = None  # the expected peak per rank (None with train.memory_check: false)
    teacher_fidelity: dict | None = None  # teacher.precision bf16/int8: KL(fp32 ‖ fast) per held-out token, measured
    members: list[dict] = field(default_factory=list)  # several teachers: each one's name, kind, weight, identity
    member_verdicts: list = field(default_factory=list)  # ... and the policy gate's verdict of each after the first
    tools: ToolRollout | None = None  # data.tools: on-policy trajectories with the student's tool calls executed

    def close(self) -> None:
        """Release the teacher sources (a served teacher's connections and threads), logging what each did."""
        for name, src in {"train": self.source, "heldout": self.eval_source}.items():
            if hasattr(src, "summary"):
                log.info("teacher source (%s, rank %d): %s", name, self.world.rank,
                         " ".join(f"{k}={v}" for k, v in src.summary().items()))
            if hasattr(src, "close"):
                src.close()


def build_student(cfg: DistillConfig, teacher: LoadedModel | None, tokenizer) -> torch.nn.Module:
    """The student as `student.init` says, wrapped with LoRA adapters when `student.lora` is set."""
    student = student_init(cfg).build(cfg, teacher, tokenizer)
    return apply_lora(student, cfg.student.lora) if cfg.student.lora else student


def scoring_model(cfg: DistillConfig, model: torch.nn.Module, corpus: Corpus, tokenizer, device: torch.device,
                  teacher: LocalModelTeacher | None = None):
    """The teacher the sources run (`distill.models.fast`): at teacher.precision, measured on held-out sequences
    and refused above teacher.precision_max_kl; compiled with teacher.compile. fp32 without compile: `model`.
    `teacher`: one of several (default: the run's teacher)."""
    t = teacher or cfg.teacher
    if t.precision != "fp32" and (t.KIND.name != "live" or cfg.train.parallel == "fsdp"
                                  or device.type != "cpu"):
        raise DistillError(f"teacher.precision {t.precision} works for a live teacher in one CPU process's memory",
                           where="teacher.precision",
                           fix="use teacher.precision fp32 here (on GPU the teacher already runs in bf16 autocast)")
    fidelity = None
    if t.precision != "fp32" or t.compile:
        model, fidelity = measured_teacher(
            model, precision=t.precision, compile=t.compile, max_kl=t.precision_max_kl,
            sequences=corpus.heldout[: t.precision_check_sequences], pad_id=tokenizer.pad_token_id,
            vocab_size=len(tokenizer), batch_size=cfg.train.batch_size,
            chunk_size=chunk_rows(cfg.loss.chunk_size, len(tokenizer), device), device=device)
    return model, fidelity


def load_member(cfg: DistillConfig, teacher, corpus: Corpus, tokenizer, device: torch.device) -> LoadedModel | None:
    """One of several teachers (after the first) in this process: a live one loaded, moved to `device` and set to its
    precision (None for a store or a served one); its tokenizer checked against the student's either way."""
    loaded = None
    if teacher.KIND.needs_weights:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        loaded = load_model(teacher.model, dtype=dtype, trust_remote_code=teacher.trust_remote_code)
        loaded.model.to(device, dtype=dtype)
        loaded.model, _ = scoring_model(cfg, loaded.model, corpus, tokenizer, device, teacher)
    tok = loaded.tokenizer if loaded else load_tokenizer(teacher.local_spec, teacher.trust_remote_code)
    check_compatible(tok, tokenizer, loaded.model if loaded else None, None)
    return loaded


def checkpointed(module: StudentLoss) -> torch.nn.Module:
    """What a local checkpoint holds: the student, or the whole module when loss.hidden adds projections to it."""
    return module if module.projections is not None and len(module.projections.maps) else module.student


def lr_lambda(cfg: DistillConfig):
    """Linear warm-up, then cosine decay to `min_lr_ratio` × lr."""
    t = cfg.train

    def f(step: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / (t.warmup_steps + 1)
        progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
        return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


def setup(cfg: DistillConfig, *, resume: bool = False, overwrite: bool = False) -> Run:
    """Gate, load and build everything for `cfg`; restore the last checkpoint when resuming."""
    world = distributed.setup()
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    allocator.tune_glibc_malloc()
    torch.manual_seed(t.seed)
    random.seed(t.seed)
    out_dir = Path(cfg.output_dir)
    run_dir = out_dir.with_name(out_dir.name + ".ckpt")
    if out_dir.exists() and not (resume or overwrite):
        raise DistillError(f"output directory already exists: {out_dir}", where="output_dir",
                           fix="choose another output_dir, pass --overwrite, or --resume an interrupted run")
    if t.batch_size % world.size:
        raise DistillError(f"train.batch_size ({t.batch_size}) is not divisible by the {world.size} processes",
                           where="train.batch_size", fix=f"use a multiple of {world.size}")

    kind = cfg.teacher_kind
    info = describe_model(cfg.teacher.local_spec)
    verdict = policy_verdict(cfg, info)
    others = [as_teacher(m) for m in (cfg.teachers or [])[1:]]  # several teachers: gated before any compute too
    other_infos = [describe_model(m.local_spec) for m in others]
    other_verdicts = [policy_verdict(cfg, i, m) for m, i in zip(others, other_infos, strict=True)]
    memory_plan = memory.check(cfg, world.size, world.device.type) if t.memory_check else None
    cut = cfg.student.cut_from_teacher
    needs_weights = kind.needs_weights or cut
    # On GPU a teacher that only scores is read in bf16 (half the host memory); one a student is cut from, in fp32.
    load_dtype = torch.bfloat16 if world.device.type == "cuda" and not cut else torch.float32
    teacher = load_model(cfg.teacher.model, dtype=load_dtype, trust_remote_code=cfg.teacher.trust_remote_code) \
        if needs_weights else None
    teacher_tok = teacher.tokenizer if teacher else load_tokenizer(cfg.teacher.local_spec, cfg.teacher.trust_remote_code)
    tokenizer = student_init(cfg).tokenizer(cfg, teacher_tok)  # the data is tokenized with the student's
    corpus = load_corpus(cfg.data, tokenizer)
    student = build_student(cfg, teacher, tokenizer)
    tools = ToolRollout.from_config(cfg, tokenizer, student, corpus.conversations) if cfg.data.tools else None
    if cfg.loss.cross_tokenizer:
        vocab = len(tokenizer)
    else:
        vocab = check_compatible(teacher_tok, tokenizer, teacher.model if teacher else None, student)
    fsdp = t.parallel == "fsdp"
    if teacher is not None:
        # fp32 on CPU (exact; teacher.precision chooses a faster copy); bf16 autocast on GPU, the teacher stored in bf16.
        # Under fsdp the blocks reach the device one at a time as they are sharded: never the whole teacher at once.
        dtype = torch.bfloat16 if world.device.type == "cuda" else torch.float32
        teacher.model.to(None if fsdp and kind.needs_weights else world.device, dtype=dtype)
    fidelity = None
    if teacher is not None and kind.needs_weights:
        teacher.model, fidelity = scoring_model(cfg, teacher.model, corpus, tokenizer, world.device)
    student.to(None if fsdp else world.device).train()
    if t.activation_checkpointing:
        student.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    pairs, projections = hidden_parts(cfg.loss.hidden, student, teacher.model) if cfg.loss.hidden else ([], None)
    if projections is not None:
        projections.to(None if fsdp else world.device)
        log.info("loss.hidden: %s (student, teacher) layer pairs %s, %s", cfg.loss.hidden.kind, pairs,
                 f"{len(projections.maps)} projections" if len(projections.maps) else "no projection (same width)")
    module = StudentLoss(student, vocab, cfg.loss, pairs, projections)
    if fsdp:
        sharding.ensure_process_group()
        if teacher is not None and kind.needs_weights:
            sharding.shard_teacher(teacher.model, world.device)
        model = sharding.shard_student(module, student, world.device)
    else:
        model = torch.nn.parallel.DistributedDataParallel(module) if world.size > 1 else module
    trained = [*trainable_parameters(student), *(module.projections.parameters() if module.projections else [])]
    optimizer = torch.optim.AdamW(trained, lr=t.lr, weight_decay=t.weight_decay, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))

    start_step, history = 0, []
    if resume and (ckpt := latest_checkpoint(run_dir)):
        state = load_checkpoint(ckpt, checkpointed(module), optimizer, scheduler, rank=world.rank,
                                sharded_root=model if t.parallel == "fsdp" else None)
        start_step, history = state["step"], state["extra"].get("history", [])
        log.info("resumed from %s (step %d)", ckpt, start_step)
    elif world.main:
        shutil.rmtree(run_dir, ignore_errors=True)
    world.barrier()
    pool = share_pool(routes(corpus, "train", [m.name for m in cfg.teachers]), [m.name for m in cfg.teachers],
                      cfg.data.teacher_shares) if cfg.teachers else None
    sampler = BatchSampler.for_config(cfg, len(corpus.train), pool)
    inputs: TeacherInputs | list[TeacherInputs] = TeacherInputs(
        cfg, teacher if kind.needs_weights else None, info, tokenizer, corpus, world, sampler, start_step,
        tuple(t_layer for _, t_layer in pairs))
    if others:
        loaded = [load_member(cfg, m, corpus, tokenizer, world.device) for m in others]
        inputs = [inputs, *(replace(inputs, teacher=x, info=i) for x, i in zip(loaded, other_infos, strict=True))]
    source = make_source(cfg, inputs, "train")
    eval_source = make_source(cfg, inputs, "heldout")
    run = Run(cfg, world, out_dir, run_dir, info, verdict, tokenizer, corpus, student, module, model, optimizer,
              scheduler, source, eval_source, sampler, start_step, history, memory_plan=memory_plan,
              teacher_fidelity=fidelity.to_dict() if fidelity else None,
              members=[{"name": m.name, "kind": m.kind, "weight": m.weight, "model": m.model, "identity": i.to_dict()}
                       for m, i in zip(cfg.teachers, [info, *other_infos], strict=True)] if cfg.teachers else [],
              member_verdicts=other_verdicts, tools=tools)
    if world.main:
        log.info("teacher %s (%s: %s) | student %.1f M params (%.2f M trained) | %s", info.name, kind.name,
                 kind.description, param_count(student) / 1e6, sum(p.numel() for p in trainable_parameters(student))
                 / 1e6, corpus.description)
        if cfg.teachers:
            log.info("teachers: %s — a row naming one is distilled from it alone, any other from their weighted "
                     "mixture", ", ".join(f"{m.name} ({m.kind}, weight {m.weight:g})" for m in cfg.teachers))
    return run

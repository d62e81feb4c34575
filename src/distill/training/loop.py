"""The training loop: one plain PyTorch loop for every mode.

Read top to bottom: `train(cfg)` builds the pieces (teacher source, student, data, optimizer), then each
step draws micro-batches, asks the teacher source for its signal at the scored positions, and lets
`StudentLoss` compute the fused, chunked loss. Where the signal comes from — a live teacher, a capture store,
or top-k log-probabilities from an API set — is decided once, in `make_source`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from distill.config import DistillConfig
from distill.data.corpus import Corpus, collate, load_corpus
from distill.errors import DistillError
from distill.loss.fused import LossSpec, distill_loss, evaluate_chunks
from distill.models.loading import (
    LoadedModel,
    ModelInfo,
    check_compatible,
    describe_model,
    load_model,
    load_tokenizer,
)
from distill.models.students import fresh_llama, layer_subset, param_count
from distill.signals import BatchTopK, LiveTeacher, NoTeacher, TeacherSource
from distill.training import allocator, distributed
from distill.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


class StudentLoss(torch.nn.Module):
    """Student + fused loss in one module, so DDP sees the whole computation in `forward`."""

    def __init__(self, student: torch.nn.Module, vocab_size: int, spec: LossSpec):
        super().__init__()
        self.student, self.vocab_size, self.spec = student, vocab_size, spec

    def hidden(self, batch: dict[str, Tensor], positions: Tensor) -> Tensor:
        out = self.student.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        h = out.last_hidden_state
        return h.reshape(-1, h.shape[-1]).index_select(0, positions)

    def head(self) -> Tensor:
        return self.student.get_output_embeddings().weight[: self.vocab_size]

    def forward(self, batch: dict[str, Tensor], positions: Tensor, signal, normalizer: float):
        targets = batch["targets"].reshape(-1).index_select(0, positions)
        return distill_loss(self.hidden(batch, positions), self.head(), signal, targets, self.spec, normalizer)


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    final_eval: dict
    history: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- set-up


def build_student(cfg: DistillConfig, teacher: LoadedModel | None, tokenizer) -> torch.nn.Module:
    s = cfg.student
    if s.init == "fresh":
        return fresh_llama(tokenizer, hidden_size=s.hidden_size, num_layers=s.num_layers, num_heads=s.num_heads,
                           intermediate_size=s.intermediate_size, seed=cfg.train.seed)
    if s.init == "layers":
        if teacher is None:
            raise DistillError("student.init=layers needs the teacher's weights", where="student.init")
        return layer_subset(teacher.model, layers=s.layers, every=s.every)
    return load_model(s.model).model.train()


def make_source(cfg: DistillConfig, teacher: LoadedModel | None, info: ModelInfo, tokenizer, corpus: Corpus,
                split: str, device: torch.device) -> TeacherSource:
    """Decide once where the teacher signal comes from: store, API top-k in the data, or a live model.

    `tokenizer` is the student's (the data is tokenized with it); it is the teacher's too, except in
    cross-tokenizer mode."""
    if cfg.teacher.store:
        from distill.store import StoreTeacher, expected_identity

        expect = expected_identity(teacher=info, tokenizer=tokenizer, corpus=corpus)
        return StoreTeacher(cfg.teacher.store, split=split, expect=expect, device=device, tail=cfg.teacher.store_tail)
    if is_generated_set(cfg):
        return BatchTopK()
    if teacher is None:
        return NoTeacher()
    if cfg.loss.cross_tokenizer:
        from distill.crosstok import CrossTokenizerTeacher

        return CrossTokenizerTeacher(teacher.model, teacher.tokenizer, tokenizer, method=cfg.loss.cross_tokenizer,
                                     top_k=cfg.loss.cross_top_k, chunk_size=cfg.loss.chunk_size)
    return LiveTeacher(teacher.model, len(tokenizer))


def is_generated_set(cfg: DistillConfig) -> bool:
    """Is the data a folder written by `distill generate` (teacher answers, maybe with top-k log-probs)?"""
    path = Path(cfg.data.path)
    return cfg.data.format == "generated" or (path.is_dir() and (path / "results.jsonl").is_file())


def _policy_gate(cfg: DistillConfig, info: ModelInfo):
    """The licence/terms gate, before any compute: the API teacher of a generated set, else the model."""
    from distill.provenance.policy import check_api_teacher, check_model_teacher

    source = Path(cfg.data.path) / "source.json"
    if is_generated_set(cfg) and source.is_file():
        api = json.loads(source.read_text())
        return check_api_teacher(api["endpoint"], api["model"], cfg.teacher.authorization,
                                 local_spec=cfg.teacher.model)
    return check_model_teacher(info, cfg.teacher.authorization)


def _batch_rows(step: int, micro: int, cfg: DistillConfig, n_train: int, perms: dict[int, Tensor]) -> list[int]:
    """Global sample indices of one micro-batch: a pure function of the step (exact resume for free)."""
    rows = []
    start = (step * cfg.train.grad_accum + micro) * cfg.train.batch_size
    for g in range(start, start + cfg.train.batch_size):
        epoch, pos = divmod(g, n_train)
        if epoch not in perms:
            gen = torch.Generator().manual_seed(cfg.train.seed * 1000003 + epoch)
            perms[epoch] = torch.randperm(n_train, generator=gen)
        rows.append(int(perms[epoch][pos]))
    return rows


def _lr_lambda(cfg: DistillConfig):
    t = cfg.train

    def f(step: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / (t.warmup_steps + 1)
        progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
        return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


def autocast(device: torch.device):
    """bf16 autocast on GPU; plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


# ----------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def heldout_eval(module: StudentLoss, source: TeacherSource, corpus: Corpus, cfg: DistillConfig,
                 device: torch.device) -> dict:
    """Held-out KL(teacher‖student) per token, student perplexity and top-1 agreement."""
    was_training = module.training
    module.eval()
    total = {"kl_sum": 0.0, "nll_sum": 0.0, "agree": 0, "tokens": 0, "kl_tokens": 0}
    seqs = corpus.heldout[: cfg.train.eval_sequences]
    for start in range(0, len(seqs), cfg.train.batch_size):
        ids = list(range(start, min(start + cfg.train.batch_size, len(seqs))))
        batch = _to(collate([seqs[i] for i in ids], module.student.config.pad_token_id or 0, ids), device)
        positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(-1)
        targets = batch["targets"].reshape(-1).index_select(0, positions)
        with autocast(device):
            signal = source.signal(batch, positions)
            hidden = module.hidden(batch, positions)
            part = evaluate_chunks(hidden, module.head().to(hidden.dtype), signal, targets, cfg.loss.chunk_size)
        for k in total:
            total[k] += part[k]
    module.train(was_training)
    out = {"heldout_nll": total["nll_sum"] / max(total["tokens"], 1)}
    out["heldout_ppl"] = math.exp(min(out["heldout_nll"], 50))
    if total["kl_tokens"]:
        out["heldout_kl"] = total["kl_sum"] / total["kl_tokens"]
        out["top1_agreement"] = total["agree"] / total["kl_tokens"]
    return out


# ----------------------------------------------------------------------------------------------- the loop


def train(cfg: DistillConfig, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Distill a student as `cfg` says; returns where it was written and its final held-out figures."""
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

    # Teacher first: identify and gate it before any compute is spent. With a capture store (or a generated
    # set) the teacher's weights are only needed to build a layer-subset student.
    info = describe_model(cfg.teacher.model)
    verdict = _policy_gate(cfg, info)
    needs_weights = cfg.teacher.store is None and not is_generated_set(cfg) or cfg.student.init == "layers"
    teacher = load_model(cfg.teacher.model, trust_remote_code=cfg.teacher.trust_remote_code) if needs_weights \
        else None
    teacher_tok = teacher.tokenizer if teacher else load_tokenizer(cfg.teacher.model, cfg.teacher.trust_remote_code)
    # The data is tokenized with the student's tokenizer: the teacher's, except in cross-tokenizer mode.
    if cfg.student.init == "pretrained":
        tokenizer = load_tokenizer(cfg.student.model)
    elif cfg.student.tokenizer:
        tokenizer = load_tokenizer(cfg.student.tokenizer)
    else:
        tokenizer = teacher_tok
    corpus = load_corpus(cfg.data, tokenizer)
    student = build_student(cfg, teacher, tokenizer)
    if cfg.loss.cross_tokenizer:
        vocab = len(tokenizer)
    else:
        vocab = check_compatible(teacher_tok, tokenizer, teacher.model if teacher else None, student)
    live = teacher if cfg.teacher.store is None else None
    # With no KD term the teacher is only needed for the held-out figures, not at every step.
    source = make_source(cfg, live, info, tokenizer, corpus, "train", world.device) if cfg.loss.kd_weight > 0 \
        else NoTeacher()
    eval_source = make_source(cfg, live, info, tokenizer, corpus, "heldout", world.device)
    if t.on_policy_fraction > 0 and not isinstance(source, LiveTeacher):
        raise DistillError("on-policy distillation needs a live teacher to score the student's samples",
                           where="train.on_policy_fraction",
                           fix="set on_policy_fraction to 0, or drop teacher.store / use a white-box teacher")
    if teacher is not None:
        # fp32 on CPU (bf16 matmuls are ~7x slower on AVX2); bf16 autocast on GPU, the teacher stored in bf16.
        teacher.model.to(world.device, dtype=torch.bfloat16 if world.device.type == "cuda" else torch.float32)
    student.to(world.device).train()
    spec = LossSpec.from_config(cfg.loss)
    module = StudentLoss(student, vocab, spec)
    model = module
    if world.size > 1:
        model = torch.nn.parallel.DistributedDataParallel(module)
    optimizer = torch.optim.AdamW(student.parameters(), lr=t.lr, weight_decay=t.weight_decay, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))

    start_step = 0
    history: list[dict] = []
    if resume and (ckpt := latest_checkpoint(run_dir)):
        state = load_checkpoint(ckpt, student, optimizer, scheduler)
        start_step = state["step"]
        history = state["extra"].get("history", [])
        log.info("resumed from %s (step %d)", ckpt, start_step)
    elif world.main:
        shutil.rmtree(run_dir, ignore_errors=True)
    world.barrier()
    if world.main:
        log.info("teacher %s | student %.1f M params | %s", info.name, param_count(student) / 1e6,
                 corpus.description)

    writer = _tensorboard(run_dir) if world.main else None
    metrics_path = run_dir / "metrics.jsonl"
    perms: dict[int, Tensor] = {}
    warned = False
    bar = _progress(t, start_step, world.main)
    sample_time = 0.0
    t_start = time.perf_counter()
    for step in range(start_step, t.steps):
        micro_batches = [_batch_rows(step, m, cfg, len(corpus.train), perms) for m in range(t.grad_accum)]
        normalizer = sum(int(corpus.train[i]["loss_mask"].sum()) for rows in micro_batches for i in rows)
        terms = {"kd_sum": 0.0, "ce_sum": 0.0, "kd_tokens": 0, "tokens": 0}
        for m, rows in enumerate(micro_batches):
            mine = rows[world.rank:: world.size]
            batch = _to(collate([corpus.train[i] for i in mine], tokenizer.pad_token_id, mine), world.device)
            if t.on_policy_fraction > 0:
                from distill.training.onpolicy import maybe_on_policy

                t0 = time.perf_counter()
                batch = maybe_on_policy(batch, student, cfg, step, m, tokenizer)
                sample_time += time.perf_counter() - t0
            positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(-1)
            with autocast(world.device):
                signal = source.signal(batch, positions)
            sync = m == len(micro_batches) - 1 or world.size == 1
            ctx = model.no_sync() if (world.size > 1 and not sync) else nullcontext()
            with ctx, autocast(world.device):
                loss, stats = model(batch, positions, signal, normalizer / world.size)
                loss.backward()
            for k in terms:
                terms[k] += stats[k]
        grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), t.max_grad_norm)
        if not torch.isfinite(grad_norm) or not math.isfinite(terms["kd_sum"] + terms["ce_sum"]):
            raise DistillError(f"the loss became NaN/inf at step {step + 1}", where=f"run {out_dir}",
                               fix="lower train.lr or loss.temperature, check the data; resume from the last "
                                   "checkpoint with --resume")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        row = _step_row(step + 1, terms, cfg, scheduler.get_last_lr()[0], float(grad_norm))
        warned = warned or _warn_scale(row, cfg)
        if (step + 1) % t.eval_every == 0 or step + 1 == t.steps:
            row.update(heldout_eval(module, eval_source, corpus, cfg, world.device))
        if t.on_policy_fraction > 0:
            row["sampling_share"] = sample_time / max(time.perf_counter() - t_start, 1e-9)
        history.append(row)
        if world.main:
            _log_row(metrics_path, writer, row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "heldout_kl") if k in row})
        if (step + 1) % t.checkpoint_every == 0 and step + 1 < t.steps and world.main:
            save_checkpoint(run_dir, step + 1, student, optimizer, scheduler, {"history": history})
        world.barrier()
    if bar is not None:
        bar.close()
    final = history[-1] if history else {}
    if world.main:
        from distill.training.finalize import write_student

        write_student(out_dir, student, tokenizer, cfg, info, corpus, history, verdict, overwrite or resume)
        if writer is not None:
            writer.close()
    world.barrier()
    distributed.teardown(world)
    return TrainResult(out_dir, t.steps, final, history)


# ----------------------------------------------------------------------------------------------- logging


def _step_row(step: int, terms: dict, cfg: DistillConfig, lr: float, grad_norm: float) -> dict:
    kd = terms["kd_sum"] / max(terms["kd_tokens"], 1)
    ce = terms["ce_sum"] / max(terms["tokens"], 1)
    loss = cfg.loss.kd_weight * terms["kd_sum"] / max(terms["tokens"], 1) + cfg.loss.ce_weight * ce
    return {"step": step, "loss": loss, "kd": kd, "ce": ce, "lr": lr, "grad_norm": grad_norm,
            "time": time.time()}


def _warn_scale(row: dict, cfg: DistillConfig) -> bool:
    a, b = cfg.loss.kd_weight * row["kd"], cfg.loss.ce_weight * row["ce"]
    if a > 0 and b > 0 and max(a / b, b / a) > cfg.loss.warn_ratio:
        big, small = ("KD", "CE") if a > b else ("CE", "KD")
        log.warning("the weighted %s term (%.3g) is %.0f× the %s term (%.3g): the %s term barely affects training. "
                    "Adjust loss.kd_weight / loss.ce_weight.", big, max(a, b), max(a / b, b / a), small, min(a, b),
                    small)
        return True
    return False


def _log_row(path: Path, writer, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    if writer is not None:
        for k, v in row.items():
            if k not in ("step", "time") and isinstance(v, (int, float)):
                writer.add_scalar(k, v, row["step"])


def _tensorboard(run_dir: Path):
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; stay usable without it
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _progress(t, start: int, main: bool):
    if not (t.progress and main):
        return None
    from tqdm import tqdm

    return tqdm(total=t.steps, initial=start, desc="distill", unit="step", dynamic_ncols=True)


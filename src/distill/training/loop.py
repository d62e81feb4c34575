"""The training loop: one plain PyTorch loop for every kind of teacher.

`train(cfg)` builds the run (`distill.training.setup`), then each step draws its micro-batches, asks the teacher
source for its signal at the scored positions and lets `StudentLoss` compute the fused, chunked loss. Where the
signal comes from is settled by the config (`distill.teachers`); evaluation, logging, progress and checkpoints
are callbacks (`distill.training.callbacks`).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from distill.config import DistillConfig
from distill.data.corpus import collate
from distill.errors import DistillError
from distill.signals import scored_positions
from distill.training import distributed
from distill.training.callbacks import Callback, default_callbacks
from distill.training.heldout import autocast, to_device
from distill.training.onpolicy import maybe_on_policy
from distill.training.setup import Run, setup
from distill.training.sharding import gathered, gathered_copy
from distill.training.sources import api_identity


@dataclass
class TrainResult:
    """What `distill.train` gives back (rank 0 has the figures; other ranks the same paths)."""

    output_dir: Path  # the written student: a Hugging Face directory with its model card and lineage.json
    steps: int  # the run's train.steps (all applied: a run that stops early raises instead)
    final_eval: dict  # the last step's row, with the final held-out figures (heldout_kl, top1_agreement, ...)
    history: list[dict] = field(default_factory=list)  # one row per step of this call, as in metrics.jsonl


def train(cfg: DistillConfig, *, resume: bool = False, overwrite: bool = False,
          callbacks: list[Callback] | None = None) -> TrainResult:
    """Distill a student as `cfg` says; returns where it was written and its final held-out figures."""
    run = setup(cfg, resume=resume, overwrite=overwrite)
    hooks = default_callbacks() + list(callbacks or [])
    for cb in hooks:
        cb.on_train_start(run)
    t_start = time.perf_counter()
    done = run.start_step  # steps whose optimizer update is applied
    try:
        for step in range(run.start_step, cfg.train.steps):
            for cb in hooks:
                cb.on_step_start(run, step)
            row = train_step(run, step)
            done = step + 1
            if cfg.train.on_policy_fraction > 0:
                row["sampling_share"] = run.sample_time / max(time.perf_counter() - t_start, 1e-9)
                row["sample_tokens_per_s"] = run.sample_tokens / max(run.sample_time, 1e-9)
                if run.tools is not None:  # what the rollouts did so far (this process)
                    row.update(tool_turns=run.tools.turns, tool_calls=run.tools.calls, tool_errors=run.tools.errors)
            run.history.append(row)
            for cb in hooks:
                cb.on_step_end(run, row)
            run.world.barrier()
    except DistillError:  # e.g. the teacher server gave up: keep what the finished steps learned
        for cb in hooks:
            cb.on_error(run, done)
        raise
    finally:
        for cb in hooks:
            cb.on_train_end(run)
        run.close()
    return finish(run, overwrite or resume)


def micro_batches(run: Run, step: int) -> list[dict[str, Tensor]]:
    """This process's micro-batches of `step`, on its device, on-policy ones already sampled."""
    out = []
    for m, rows in enumerate(run.sampler.step_rows(step)):
        mine = rows[run.world.rank:: run.world.size]
        batch = to_device(collate([run.corpus.train[i] for i in mine], run.tokenizer.pad_token_id, mine),
                          run.world.device)
        if run.cfg.train.on_policy_fraction > 0:
            t0 = time.perf_counter()
            with gathered(run.model):
                sampled = maybe_on_policy(batch, run.student, run.cfg, step, m, run.tokenizer, run.tools)
            run.sample_time += time.perf_counter() - t0
            if sampled is not batch:
                run.sample_tokens += int(sampled["loss_mask"].sum())
            batch = sampled
        out.append(batch)
    return out


def train_step(run: Run, step: int) -> dict:
    """One optimizer step; returns its row (loss terms per token, lr, gradient norm)."""
    batches = micro_batches(run, step)
    # Every scored token of the step weighs the same, whether it came from the data or from on-policy samples:
    # the loss is the sum over the step's scored tokens (all processes) divided by their number.
    normalizer = run.world.sum(sum(int(b["loss_mask"].sum()) for b in batches))
    terms = {"kd_sum": 0.0, "ce_sum": 0.0, "kd_tokens": 0, "tokens": 0, "hidden_sum": 0.0}
    for m, batch in enumerate(batches):
        positions = scored_positions(batch)
        with autocast(run.world.device):
            signal = run.source.signal(batch, positions)
        with gradient_sync(run, last=m == len(batches) - 1), autocast(run.world.device):
            loss, stats = run.model(batch, positions, signal, normalizer / run.world.size)
            loss.backward()
        for k in terms:
            terms[k] += stats.get(k, 0)
    terms = run.world.sum_all(terms)  # the logged row is the whole step's, over every process
    grad_norm = torch.nn.utils.clip_grad_norm_(run.student.parameters(), run.cfg.train.max_grad_norm)
    if hasattr(grad_norm, "full_tensor"):  # FSDP: the norm is a replicated DTensor
        grad_norm = grad_norm.full_tensor()
    if not torch.isfinite(grad_norm) or not math.isfinite(terms["kd_sum"] + terms["ce_sum"]):
        raise DistillError(f"the loss became NaN/inf at step {step + 1}", where=f"run {run.out_dir}",
                           fix="lower train.lr or loss.temperature, check the data; resume from the last "
                               "checkpoint with --resume")
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    return step_row(step + 1, terms, run.cfg, run.scheduler.get_last_lr()[0], float(grad_norm))


def gradient_sync(run: Run, last: bool):
    """Gradients are reduced across processes on the last micro-batch of a step only (accumulated locally before)."""
    if run.world.size == 1 or last:
        if run.cfg.train.parallel == "fsdp":
            run.model.set_requires_gradient_sync(True)
        return nullcontext()
    if run.cfg.train.parallel == "fsdp":
        run.model.set_requires_gradient_sync(False)
        return nullcontext()
    return run.model.no_sync()


def step_row(step: int, terms: dict, cfg: DistillConfig, lr: float, grad_norm: float) -> dict:
    """The logged figures of one step: loss, KD per teacher-scored token, CE per token (and loss.hidden's term)."""
    kd = terms["kd_sum"] / max(terms["kd_tokens"], 1)
    ce = terms["ce_sum"] / max(terms["tokens"], 1)
    loss = cfg.loss.kd_weight * terms["kd_sum"] / max(terms["tokens"], 1) + cfg.loss.ce_weight * ce
    row = {"step": step, "loss": loss, "kd": kd, "ce": ce, "lr": lr, "grad_norm": grad_norm, "time": time.time()}
    if cfg.loss.hidden is not None:  # the intermediate-layer term per token, in the loss with its weight
        row["hidden"] = terms["hidden_sum"] / max(terms["tokens"], 1)
        row["loss"] += cfg.loss.hidden.weight * row["hidden"]
    return row


def finish(run: Run, replace: bool) -> TrainResult:
    """Write the student (main process; a sharded one gathered first), leave the process group, return the result."""
    student = (gathered_copy(run.model, run.student, run.cfg.student.lora) if run.cfg.train.parallel == "fsdp"
               else run.student)
    if run.world.main:
        from distill.training.finalize import write_student

        write_student(run.out_dir, student, run.tokenizer, run.cfg, run.info, run.corpus, run.history,
                      run.verdict, replace, api=api_identity(run.cfg), members=run.members,
                      member_verdicts=run.member_verdicts)
    run.world.barrier()
    distributed.teardown(run.world)
    steps = run.cfg.train.steps
    return TrainResult(run.out_dir, steps, run.history[-1] if run.history else {}, run.history)

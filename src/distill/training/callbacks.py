"""What happens around the steps — evaluation, logging, progress, checkpoints, timing — as callbacks.

A callback overrides any of the four hooks. `on_step_end` gets the step's row (the dict that becomes a line of
metrics.jsonl, already in `run.history`); callbacks run in order and may add to it, so held-out figures come before
the loggers that write them. `train(cfg, callbacks=[...])` appends its callbacks after the default ones.
"""

from __future__ import annotations

import json
import logging
import time

from distill.training.checkpoint import save_checkpoint, save_sharded_checkpoint
from distill.training.heldout import heldout_eval
from distill.training.memory import human, measured_peak, mib
from distill.training.setup import Run, checkpointed

log = logging.getLogger(__name__)


class Callback:
    """The hooks; each does nothing unless overridden."""

    def on_train_start(self, run: Run) -> None: ...

    def on_step_start(self, run: Run, step: int) -> None: ...

    def on_step_end(self, run: Run, row: dict) -> None: ...

    def on_error(self, run: Run, done: int) -> None:
        """A DistillError stopped the run after `done` complete steps (called before on_train_end)."""

    def on_train_end(self, run: Run) -> None:
        """The run is over, finished or not."""


class ScaleWarning(Callback):
    """Warn once when one weighted loss term dwarfs the other (the smaller would silently do nothing)."""

    def __init__(self) -> None:
        self.warned = False

    def on_step_end(self, run: Run, row: dict) -> None:
        loss = run.cfg.loss
        a, b = loss.kd_weight * row["kd"], loss.ce_weight * row["ce"]
        if self.warned or not (a > 0 and b > 0 and max(a / b, b / a) > loss.warn_ratio):
            return
        big, small = ("KD", "CE") if a > b else ("CE", "KD")
        log.warning("the weighted %s term (%.3g) is %.0f× the %s term (%.3g): the %s term barely affects training. "
                    "Adjust loss.kd_weight / loss.ce_weight.", big, max(a, b), max(a / b, b / a), small, min(a, b),
                    small)
        self.warned = True


class HeldoutEval(Callback):
    """Held-out KL, perplexity and top-1 agreement every `train.eval_every` steps and at the last step."""

    def on_step_end(self, run: Run, row: dict) -> None:
        t = run.cfg.train
        if row["step"] % t.eval_every == 0 or row["step"] == t.steps:
            row.update(heldout_eval(run.module, run.eval_source, run.corpus, t.eval_sequences, t.batch_size,
                                    run.cfg.loss.chunk_size, run.world.device))


class MetricsLog(Callback):
    """Each row as a line of `<run_dir>/metrics.jsonl` and as TensorBoard scalars (main process only)."""

    def __init__(self) -> None:
        self.writer = None

    def on_train_start(self, run: Run) -> None:
        if run.world.main:
            run.run_dir.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a declared dependency; stay usable without it
                return
            self.writer = SummaryWriter(str(run.run_dir / "tensorboard"))

    def on_step_end(self, run: Run, row: dict) -> None:
        if not run.world.main:
            return
        with open(run.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("step", "time") and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, row["step"])

    def on_train_end(self, run: Run) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress(Callback):
    """A tqdm bar with the loss and the last held-out KL (`train.progress`, main process only)."""

    def __init__(self) -> None:
        self.bar = None

    def on_train_start(self, run: Run) -> None:
        if run.cfg.train.progress and run.world.main:
            from tqdm import tqdm

            self.bar = tqdm(total=run.cfg.train.steps, initial=run.start_step, desc="distill", unit="step",
                            dynamic_ncols=True)

    def on_step_end(self, run: Run, row: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "heldout_kl") if k in row})

    def on_train_end(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.close()


class Checkpoint(Callback):
    """A resumable checkpoint every `train.checkpoint_every` steps (not at the end: the student is written then),
    and one of the finished steps when a step fails (so `--resume` loses none of them)."""

    def __init__(self) -> None:
        self.saved = -1

    def on_train_start(self, run: Run) -> None:
        self.saved = run.start_step

    def on_step_end(self, run: Run, row: dict) -> None:
        t = run.cfg.train
        if row["step"] % t.checkpoint_every == 0 and row["step"] < t.steps:
            self.save(run, row["step"])

    def on_error(self, run: Run, done: int) -> None:
        if done > self.saved and run.world.size == 1:  # other ranks may be stuck in a collective: no barrier
            self.save(run, done)
            log.warning("the run stopped after %d steps; saved a checkpoint of them (resume with --resume)", done)

    def save(self, run: Run, step: int) -> None:
        extra = {"history": run.history}
        if run.cfg.train.parallel == "fsdp":  # every rank writes its shards
            save_sharded_checkpoint(run.run_dir, step, run.model, run.optimizer, run.scheduler, run.world, extra)
        elif run.world.main:
            save_checkpoint(run.run_dir, step, checkpointed(run.module), run.optimizer, run.scheduler, extra)
        self.saved = step


class StepTimer(Callback):
    """Wall-clock and CPU time at the start of every step: `seconds(a, b)` is the time steps a … b−1 took,
    including their callbacks (benchmarks pick a span without evaluation)."""

    def __init__(self) -> None:
        self.wall: dict[int, float] = {}
        self.cpu: dict[int, float] = {}

    def on_step_start(self, run: Run, step: int) -> None:
        self.wall[step], self.cpu[step] = time.perf_counter(), time.process_time()

    def seconds(self, a: int, b: int, *, cpu: bool = False) -> float:
        stamps = self.cpu if cpu else self.wall
        return stamps[b] - stamps[a]


class MemoryReport(Callback):
    """The memory plan at the start (main rank) and, at the end, each rank's measured peak beside it."""

    def on_train_start(self, run: Run) -> None:
        p = run.memory_plan
        if p is not None and run.world.main:
            log.info("memory plan: %s per rank (%s)", human(p.peak),
                     ", ".join(f"{k} {human(v)}" for k, v in p.parts.items() if v))

    def on_train_end(self, run: Run) -> None:
        peak, what = measured_peak(run.world.device)
        planned = f", planned {mib(run.memory_plan.peak)}" if run.memory_plan is not None else ""
        log.info("peak memory (rank %d): %s %s%s", run.world.rank, mib(peak), what, planned)


def default_callbacks() -> list[Callback]:
    return [ScaleWarning(), MemoryReport(), HeldoutEval(), MetricsLog(), Progress(), Checkpoint()]


"""Distill's training step vs TRL's GKDTrainer: steps/s and peak RSS on the same work (issue 2).

Both sides: the default teacher (SmolLM2-135M-Instruct, fp32), the same fresh ≈11.8 M-parameter Llama student
(`distill.models.students.fresh_llama`, seed 0), the same 4 × 256-token Shakespeare sequences in the same order (the
rows `distill.training.loop` draws for steps 0..N-1), off-policy (TRL lmbda=0, no generation), temperature 1, the
generalized JSD with beta (0.5 = symmetric JS, 0 = forward KL; Distill `loss.kind=jsd`, same definition as
TRL's `generalized_jsd_loss`), 2 intra-op threads, fp32.

Each (framework, beta, allocator) runs in its own fresh subprocess, so peak RSS (`ru_maxrss` of the child) is
comparable; runs are interleaved (Distill, TRL, TRL, Distill, ...) so machine noise hits both sides alike.

- Distill runs the real code path: `distill.training.loop.train(cfg)` with N steps, progress off, no periodic
  evaluation; seconds per step come from the timestamps of its metrics rows (warm-up steps excluded).
- TRL runs `trl.experimental.gkd.GKDTrainer` (TRL 1.16) on a `datasets.Dataset` of pre-tokenized rows with a
  stacking collator and a sequential sampler (exactly 4 × 256 tokens per step), lmbda=0, seq_kd=False, no
  evaluation / saving / logging / reporting; seconds per step from `on_step_end` callback timestamps.

Allocators: 'glibc' = as shipped (Distill applies its own mallopt tuning in `train()`; TRL does nothing);
'jemalloc' = both sides under LD_PRELOAD=libjemalloc.so.2 with
MALLOC_CONF=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1.

Usage:  python -m benchmarks.engine.bench_vs_trl [--warmup 2] [--timed 8] [--betas 0.5 0] [--allocators glibc jemalloc]
                                          [--json benchmarks/results/engine/vs_trl.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    BATCH,
    JEMALLOC_CONF,
    RESULTS,
    SEQ_LEN,
    StepClock,
    allocator_in_use,
    distill_rows,
    gkd_args,
    peak_rss_mb,
    ratio_rows,
    write_result,
)
from benchmarks.common import run_child as run_script

THREADS = 2


def child_distill(beta: float, warmup: int, timed: int, extra: list[str]) -> dict:
    import torch

    from distill.config import load_config
    from distill.training.callbacks import StepTimer
    from distill.training.loop import train

    torch.set_num_threads(THREADS)
    steps = warmup + timed + 1  # the extra last step holds the final evaluation, outside the timed span
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, [
            "loss.kind=jsd", f"loss.beta={beta}", "loss.temperature=1.0", "loss.kd_weight=1", "loss.ce_weight=0",
            f"loss.chunk_size={os.environ.get('DISTILL_BENCH_CHUNK', 'auto')}",
            f"train.steps={steps}", f"train.batch_size={BATCH}", f"data.seq_len={SEQ_LEN}", "train.seed=0",
            f"train.threads={THREADS}", "train.progress=false", "train.eval_every=100000",
            "train.checkpoint_every=100000", "train.eval_sequences=4", f"output_dir={tmp}/student", *extra,
        ])
        t0 = time.perf_counter()
        result = train(cfg, callbacks=[timer])
        wall = time.perf_counter() - t0
    span = timer.seconds(warmup, warmup + timed)  # steps warmup … warmup+timed−1, with their callbacks
    return {"framework": "distill", "beta": beta, "steps_per_s": timed / span, "s_per_step": span / timed,
            "cpu_s_per_step": timer.seconds(warmup, warmup + timed, cpu=True) / timed,
            "peak_rss_mb": peak_rss_mb(), "allocator": allocator_in_use(), "wall_s": wall,
            "loss_first": result.history[0]["loss"], "loss_last": result.history[-1]["loss"]}


def child_trl(beta: float, warmup: int, timed: int, extra: list[str]) -> dict:
    import torch
    from datasets import Dataset
    from trl.experimental.gkd import GKDTrainer

    from distill.models.loading import load_model
    from distill.models.students import fresh_llama

    torch.set_num_threads(THREADS)
    steps = warmup + timed
    teacher = load_model("default")
    tok = teacher.tokenizer
    student = fresh_llama(tok, seed=0)
    dataset = Dataset.from_dict({"input_ids": distill_rows(steps, tok)})

    def collate(examples):
        x = torch.tensor([e["input_ids"] for e in examples], dtype=torch.long)
        return {"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x.clone()}

    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = GKDTrainer(model=student, teacher_model=teacher.model,
                             args=gkd_args(tmp, steps, lmbda=0.0, beta=beta, temperature=1.0),
                             train_dataset=dataset, processing_class=tok, data_collator=collate,
                             callbacks=[clock.callback()])
        t0 = time.perf_counter()
        out = trainer.train()
        wall = time.perf_counter() - t0
    s_per_step, cpu_per_step = clock.per_step(warmup, timed)
    return {"framework": "trl", "beta": beta, "steps_per_s": 1 / s_per_step, "s_per_step": s_per_step,
            "cpu_s_per_step": cpu_per_step, "peak_rss_mb": peak_rss_mb(), "allocator": allocator_in_use(),
            "wall_s": wall, "train_loss": float(out.training_loss)}


def run_child(framework: str, beta: float, allocator: str, warmup: int, timed: int, extra: list[str]) -> dict:
    args = ["--child", framework, "--beta", str(beta), "--warmup", str(warmup), "--timed", str(timed)]
    result = run_script(__file__, args + [x for kv in extra for x in ("--set", kv)], allocator, THREADS)
    print(f"  {framework:7s} beta={beta:<4} {allocator:8s} {result['s_per_step']:.3f} s/step "
          f"peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=["distill", "trl"])
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--betas", type=float, nargs="+", default=[0.5, 0.0])
    ap.add_argument("--allocators", nargs="+", default=["glibc", "jemalloc"])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--timed", type=int, default=8)
    ap.add_argument("--json", default=str(RESULTS / "engine" / "vs_trl.json"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Distill config overrides (e.g. teacher.precision=bf16): such rows are reported "
                         "apart from the exact ones; TRL is unchanged")
    a = ap.parse_args()
    if a.child:
        fn = child_distill if a.child == "distill" else child_trl
        print(json.dumps(fn(a.beta, a.warmup, a.timed, a.set)))
        return
    runs = []
    flip = False
    for allocator in a.allocators:
        for beta in a.betas:
            order = ["trl", "distill"] if flip else ["distill", "trl"]
            flip = not flip
            pair = {fw: run_child(fw, beta, allocator, a.warmup, a.timed, a.set) for fw in order}
            runs.append({"allocator": allocator, "beta": beta, **pair,
                         "speedup": pair["distill"]["steps_per_s"] / pair["trl"]["steps_per_s"],
                         "rss_ratio": pair["distill"]["peak_rss_mb"] / pair["trl"]["peak_rss_mb"]})
    import torch
    import transformers
    import trl

    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
            "threads": THREADS, "batch": BATCH, "seq_len": SEQ_LEN, "warmup": a.warmup, "timed": a.timed,
            "jemalloc_conf": JEMALLOC_CONF, "cpus": os.cpu_count(), "distill_overrides": a.set}
    print("\n| beta | allocator | Distill s/step | TRL s/step | steps/s Distill/TRL | Distill RSS MB | TRL RSS MB "
          "| peak RSS Distill/TRL |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(ratio_rows(runs, "beta")))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        write_result(a.json, {"meta": meta, "runs": runs})


if __name__ == "__main__":
    main()

"""FLOP utilization of a Distill training step, and loss.backward = fused vs recompute.

Builds what `distill.training.loop.train` builds (LiveTeacher on the default teacher, the fresh ≈11.8 M student,
`StudentLoss` with the chunked fused loss, AdamW with the trainer's betas, gradient clipping) and times full
optimizer steps on the trainer's own batches (4 × 256 Shakespeare tokens by default). Two students with the
same initial weights run side by side, one with loss.backward=fused and one with recompute, alternating
step by step; a plain fp32 matmul (2048×2048 @ 2048×2048) is timed between the steps, on the same threads,
as the machine's reference rate.

Model FLOPs per step (multiply-add = 2 FLOPs; elementwise loss work and the optimizer are not counted):
    teacher forward     2·P_t,body·B·T + 4·L_t·T·d_t·B·T (attention, non-causal count) + 2·V·d_t·N (head)
    student fwd + bwd   6·P_s,body·B·T + 12·L_s·T·d_s·B·T (attention)                  + 6·V·d_s·N (head)
where P_body = parameters of the decoder layers and final norm (embeddings are lookups), N = scored positions.
Utilization = (model FLOPs / step time) / matmul rate. Recomputed work in 'recompute' mode is not counted
as useful, so both modes are measured against the same FLOP count.

Usage:  python -m benchmarks.engine.bench_flops [--warmup 1] [--timed 4] [--seq-len 256] [--batch-size 4]
                                         [--loss forward_kl] [--json benchmarks/results/engine/flops.json]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, matmul_rate, write_result
from distill.config import load_config
from distill.data.corpus import collate, load_corpus
from distill.models.loading import load_model
from distill.models.students import fresh_llama
from distill.signals import LiveTeacher, scored_positions
from distill.training import allocator
from distill.training.module import StudentLoss
from distill.training.sampler import BatchSampler

THREADS = 2


def body_params(model: torch.nn.Module) -> int:
    base = model.base_model
    return sum(p.numel() for p in base.layers.parameters()) + sum(p.numel() for p in base.norm.parameters())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timed", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--loss", default="forward_kl")
    ap.add_argument("--json", default=str(RESULTS / "engine" / "flops.json"))
    a = ap.parse_args()
    torch.set_num_threads(THREADS)
    allocator.tune_glibc_malloc()
    cfg = load_config(None, [f"train.batch_size={a.batch_size}", f"data.seq_len={a.seq_len}",
                             f"loss.kind={a.loss}", "train.seed=0"])
    torch.manual_seed(0)
    teacher = load_model("default")
    tok = teacher.tokenizer
    corpus = load_corpus(cfg.data, tok)
    vocab = len(tok)
    source = LiveTeacher(teacher.model, vocab)
    base = fresh_llama(tok, seed=0).train()
    setups = {}
    for mode in ("fused", "recompute"):
        student = copy.deepcopy(base)
        spec = cfg.loss.model_copy(update={"backward": mode})
        opt = torch.optim.AdamW(student.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                                betas=(0.9, 0.95))
        setups[mode] = (StudentLoss(student, vocab, spec), opt)

    sampler = BatchSampler.for_config(cfg, len(corpus.train))

    def step(mode: str, s: int) -> float:
        module, opt = setups[mode]
        rows = sampler.rows(s, 0)
        t0 = time.perf_counter()
        batch = collate([corpus.train[i] for i in rows], tok.pad_token_id, rows)
        positions = scored_positions(batch)
        normalizer = float(positions.numel())
        signal = source.signal(batch, positions)
        loss, _ = module(batch, positions, signal, normalizer)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.student.parameters(), cfg.train.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"fused": [], "recompute": []}
    rates: list[float] = []
    for s in range(a.warmup + a.timed):
        rates.append(matmul_rate())
        order = ("fused", "recompute") if s % 2 == 0 else ("recompute", "fused")
        for mode in order:
            dt = step(mode, s)
            if s >= a.warmup:
                times[mode].append(dt)
            print(f"step {s} {mode:9s} {dt:.2f} s", flush=True)
    rates.append(matmul_rate())

    B, T = a.batch_size, a.seq_len
    tokens = B * T
    n_scored = int(sum(int(corpus.train[i]["loss_mask"].sum()) for i in range(B)))
    tc, sc = teacher.model.config, base.config
    d_t, L_t = tc.hidden_size, tc.num_hidden_layers
    d_s, L_s = sc.hidden_size, sc.num_hidden_layers
    teacher_flops = (2 * body_params(teacher.model) * tokens + 4 * L_t * T * d_t * tokens
                     + 2 * vocab * d_t * n_scored)
    student_flops = 6 * body_params(base) * tokens + 12 * L_s * T * d_s * tokens + 6 * vocab * d_s * n_scored
    flops = teacher_flops + student_flops
    rate = statistics.median(rates)
    out = {"batch": B, "seq_len": T, "loss": a.loss, "threads": THREADS, "warmup": a.warmup, "timed": a.timed,
           "teacher_gflop": teacher_flops / 1e9, "student_gflop": student_flops / 1e9, "step_gflop": flops / 1e9,
           "matmul_gflops_median": rate / 1e9, "matmul_gflops_all": [r / 1e9 for r in rates]}
    for mode, ts in times.items():
        t = statistics.median(ts)
        out[mode] = {"s_per_step_median": t, "s_per_step_all": ts, "achieved_gflops": flops / t / 1e9,
                     "utilization": flops / t / rate}
    out["fused_speedup_vs_recompute"] = out["recompute"]["s_per_step_median"] / out["fused"]["s_per_step_median"]
    print(f"\nstep FLOPs {flops / 1e9:.1f} GFLOP (teacher {teacher_flops / 1e9:.1f}, student fwd+bwd "
          f"{student_flops / 1e9:.1f}); fp32 2048³ matmul {rate / 1e9:.1f} GFLOP/s on {THREADS} threads")
    print("| backward | s/step (median) | achieved GFLOP/s | utilization of matmul rate |")
    print("|---|---|---|---|")
    for mode in times:
        m = out[mode]
        print(f"| {mode} | {m['s_per_step_median']:.2f} | {m['achieved_gflops']:.1f} | {m['utilization']:.1%} |")
    print(f"fused is {out['fused_speedup_vs_recompute']:.2f}× the speed of recompute "
          f"({1 - 1 / out['fused_speedup_vs_recompute']:.0%} less time per step)")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        write_result(a.json, out)


if __name__ == "__main__":
    main()

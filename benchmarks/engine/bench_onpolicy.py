"""On-policy (GKD, λ = 0.5) vs off-policy distillation: held-out KL at equal steps and at equal wall time,
and the share of step time spent sampling.

    .venv/bin/python -m benchmarks.engine.bench_onpolicy --steps 40

The off-policy run is given twice the steps and evaluated every `--eval-every` steps, so its held-out KL can
be read both at the on-policy run's step count and at the step where its elapsed time matches the on-policy
run's total time.

On-policy steps/s against TRL's `GKDTrainer` (`--vs-trl`, run with a Python that has trl, e.g. /tmp/benchvenv):

    python -m benchmarks.engine.bench_onpolicy --vs-trl [--warmup 2] [--timed 6] [--threads 2] [--allocators jemalloc]
                                        [--sample-fast true false]

Both sides: the default teacher (fp32), the same fresh ≈11.8 M student (seed 0), the same 4 × 256-token
Shakespeare rows per step, JSD β=0.5, temperature 1, λ = 0.5 with the *same* steps on-policy on both sides (TRL's
per-step `random.random() <= lmbda` is replaced by Distill's deterministic draw for that step), the prompt = the
first 256 − 64 tokens and 64 sampled tokens (Distill `train.sample_max_new_tokens=64`, TRL `max_new_tokens=64`;
TRL stops a row at EOS, which a fresh student all but never samples). Each side runs in a fresh subprocess; seconds
per step from step timestamps (warm-up steps excluded); peak RSS of the child.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from benchmarks.common import (
    BATCH,
    RESULTS,
    SEQ_LEN,
    StepClock,
    distill_rows,
    gkd_args,
    peak_rss_mb,
    run_child,
    write_result,
)
from distill.config import load_config
from distill.training.loop import train

NEW, LAMBDA = 64, 0.5


def distill_overrides(steps: int, threads: int, sample_fast: bool, tmp: str, precision: str = "fp32") -> list[str]:
    return ["loss.kind=jsd", "loss.beta=0.5", "loss.temperature=1.0", "loss.kd_weight=1", "loss.ce_weight=0",
            f"train.steps={steps}", f"train.batch_size={BATCH}", f"data.seq_len={SEQ_LEN}", "train.seed=0",
            f"train.threads={threads}", "train.progress=false", "train.eval_every=100000",
            "train.checkpoint_every=100000", "train.eval_sequences=4", f"train.on_policy_fraction={LAMBDA}",
            f"train.sample_max_new_tokens={NEW}", f"train.sample_fast={str(sample_fast).lower()}",
            f"teacher.precision={precision}", f"output_dir={tmp}/student"]


def on_policy_steps(n: int) -> list[bool]:
    from distill.training.onpolicy import is_on_policy

    return [is_on_policy(0, s, 0, LAMBDA) for s in range(n)]


def child_distill(warmup: int, timed: int, threads: int, sample_fast: bool, precision: str = "fp32") -> dict:
    import torch

    from distill.training.callbacks import StepTimer

    torch.set_num_threads(threads)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(load_config(None, distill_overrides(warmup + timed + 1, threads, sample_fast, tmp,
                                                           precision)), callbacks=[timer])
    span = timer.seconds(warmup, warmup + timed)
    last = result.history[warmup + timed - 1]
    return {"framework": "distill", "sample_fast": sample_fast, "precision": precision, "s_per_step": span / timed,
            "cpu_s_per_step": timer.seconds(warmup, warmup + timed, cpu=True) / timed, "peak_rss_mb": peak_rss_mb(),
            "sampling_share": last.get("sampling_share"), "sample_tokens_per_s": last.get("sample_tokens_per_s"),
            "on_policy_timed": sum(on_policy_steps(warmup + timed)[warmup:])}


def child_trl(warmup: int, timed: int, threads: int) -> dict:
    import torch
    from datasets import Dataset
    from trl.experimental.gkd import GKDTrainer

    from distill.models.loading import load_model
    from distill.models.students import fresh_llama

    torch.set_num_threads(threads)
    steps = warmup + timed
    teacher = load_model("default")
    tok = teacher.tokenizer
    student = fresh_llama(tok, seed=0)
    plan = on_policy_steps(steps)

    def collate(examples):
        x = torch.tensor([e["input_ids"] for e in examples], dtype=torch.long)
        prompts = x[:, : SEQ_LEN - NEW]
        return {"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x.clone(), "prompts": prompts,
                "prompt_attention_mask": torch.ones_like(prompts)}

    class SameSteps(GKDTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            self.lmbda = 1.0 if plan[self.state.global_step] else 0.0  # Distill's draw for this step
            return super().training_step(model, inputs, num_items_in_batch)

    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SameSteps(model=student, teacher_model=teacher.model,
                            args=gkd_args(tmp, steps, lmbda=LAMBDA, beta=0.5, temperature=1.0, max_new_tokens=NEW),
                            train_dataset=Dataset.from_dict({"input_ids": distill_rows(steps, tok)}),
                            processing_class=tok, data_collator=collate, callbacks=[clock.callback()])
        trainer.train()
    s_per_step, cpu_per_step = clock.per_step(warmup, timed)
    return {"framework": "trl", "s_per_step": s_per_step, "cpu_s_per_step": cpu_per_step,
            "peak_rss_mb": peak_rss_mb(), "on_policy_timed": sum(plan[warmup:])}


def run_side(args: list[str], allocator: str, threads: int) -> dict:
    out = run_child(__file__, args, allocator, threads)
    print(f"  {out['framework']:7s} {allocator:8s} {out['s_per_step']:.3f} s/step (cpu {out['cpu_s_per_step']:.3f}) "
          f"peak RSS {out['peak_rss_mb']:.0f} MB", flush=True)
    return out


def vs_trl(a: argparse.Namespace) -> None:
    common = ["--warmup", str(a.warmup), "--timed", str(a.timed), "--threads", str(a.threads)]
    runs = []
    for allocator in a.allocators:
        order = [["--child", "trl"]] + [["--child", "distill", "--fast", f, "--teacher-precision", p]
                                        for p in a.teacher_precision for f in a.sample_fast]
        for args in order if len(runs) % 2 == 0 else order[::-1]:
            runs.append(run_side(args + common, allocator, a.threads))
    print(f"\non-policy λ={LAMBDA}, {BATCH} × {SEQ_LEN} tokens, {NEW} new tokens, {a.threads} threads, "
          f"{runs[0]['on_policy_timed']} of {a.timed} timed steps on-policy on both sides; load {os.getloadavg()}")
    print("| allocator | side | s/step | CPU s/step | steps/s vs TRL | sampling share | sampled tokens/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for allocator in a.allocators:
        mine = [r for r in runs if r["allocator"] == allocator]
        trl = next(r for r in mine if r["framework"] == "trl")
        for r in mine:
            side = "TRL GKDTrainer" if r["framework"] == "trl" else \
                f"Distill (sample_fast {r['sample_fast']}, teacher {r.get('precision', 'fp32')})"
            share = f"{r['sampling_share']:.1%}" if r.get("sampling_share") is not None else "—"
            tps = f"{r['sample_tokens_per_s']:.0f}" if r.get("sample_tokens_per_s") else "—"
            print(f"| {allocator} | {side} | {r['s_per_step']:.2f} | {r['cpu_s_per_step']:.2f} | "
                  f"{trl['s_per_step'] / r['s_per_step']:.2f}× | {share} | {tps} | {r['peak_rss_mb']:.0f} |")
    if a.json:
        write_result(a.json, {"runs": runs, "threads": a.threads, "warmup": a.warmup, "timed": a.timed})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vs-trl", action="store_true", help="on-policy steps/s against TRL's GKDTrainer")
    ap.add_argument("--child", choices=["distill", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--fast", default="true", help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--timed", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (both modes)")
    ap.add_argument("--eval-sequences", type=int, default=16, help="held-out sequences per evaluation")
    ap.add_argument("--allocators", nargs="+", default=["jemalloc"])
    ap.add_argument("--sample-fast", nargs="+", default=["true", "false"])
    ap.add_argument("--teacher-precision", nargs="+", default=["fp32"], help="Distill's teacher.precision "
                    "(one child each; lower-precision rows are not the exact teacher)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--json", default=str(RESULTS / "engine" / "onpolicy.json"))
    a = ap.parse_args()
    if a.child == "distill":
        print(json.dumps(child_distill(a.warmup, a.timed, a.threads, a.fast == "true", a.teacher_precision[0])))
        return
    if a.child == "trl":
        print(json.dumps(child_trl(a.warmup, a.timed, a.threads)))
        return
    if a.vs_trl:
        a.json = a.json if a.json != str(RESULTS / "engine" / "onpolicy.json") else str(RESULTS / "engine" / "onpolicy_vs_trl.json")
        vs_trl(a)
        return
    common = ["train.batch_size=4", "data.seq_len=128", "train.progress=false", f"train.eval_every={a.eval_every}",
              f"train.eval_sequences={a.eval_sequences}", "train.lr=2e-3", "train.checkpoint_every=100000",
              f"train.threads={a.threads}",
              "loss.kind=forward_kl"]
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("on-policy", [f"train.steps={a.steps}", f"train.on_policy_fraction={a.fraction}",
                                           f"train.sample_max_new_tokens={a.new_tokens}"]),
                            ("off-policy", [f"train.steps={2 * a.steps}"])):
            result = train(load_config(None, common + extra + [f"output_dir={tmp}/{name}"]))
            t0 = result.history[0]["time"]
            runs[name] = [{"step": r["step"], "elapsed": r["time"] - t0, "heldout_kl": r.get("heldout_kl"),
                           "sampling_share": r.get("sampling_share")} for r in result.history]
    on, off = runs["on-policy"], runs["off-policy"]
    off_eval = [r for r in off if r["heldout_kl"] is not None]
    at_steps = min(off_eval, key=lambda r: abs(r["step"] - a.steps))
    at_time = min(off_eval, key=lambda r: abs(r["elapsed"] - on[-1]["elapsed"]))
    print(f"\nforward KL, batch 4 × 128, λ = {a.fraction}, {a.new_tokens} sampled tokens per sequence")
    print("| run | steps | elapsed s | held-out KL |")
    print("|---|---|---|---|")
    print(f"| on-policy | {on[-1]['step']} | {on[-1]['elapsed']:.0f} | {on[-1]['heldout_kl']:.3f} |")
    print(f"| off-policy, equal steps | {at_steps['step']} | {at_steps['elapsed']:.0f} | {at_steps['heldout_kl']:.3f} |")
    print(f"| off-policy, equal wall time | {at_time['step']} | {at_time['elapsed']:.0f} | {at_time['heldout_kl']:.3f} |")
    print(f"sampling share of on-policy step time: {on[-1]['sampling_share']:.1%}")
    write_result(a.json, {"runs": runs})


if __name__ == "__main__":
    main()

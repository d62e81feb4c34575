"""A short GPU check of the training path (bf16 autocast, fused chunked loss, real trainer under ddp and fsdp, peak
GPU memory beside `distill plan`'s).

Run on a CUDA machine (no weights needed: the teacher is a random model with SmolLM2-135M's shape and
tokenizer, built from a config directory):

    python -m benchmarks.engine.gpu_check --teacher-config DIR --text FILE --out OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.common import write_result


def fused_numerics() -> dict:
    """bf16-autocast fused loss vs an fp32 full-logits reference, on GPU."""
    from distill.config import LossConfig
    from distill.loss.divergences import divergence
    from distill.loss.fused import distill_loss
    from distill.signals import DenseSignal

    torch.manual_seed(0)
    N, d, V = 2048, 576, 49152
    h = (torch.randn(N, d, device="cuda") * 0.5).requires_grad_(True)
    W = (torch.randn(V, d, device="cuda") * 0.05).requires_grad_(True)
    th, tW = torch.randn(N, d, device="cuda") * 0.5, torch.randn(V, d, device="cuda") * 0.05
    tg = torch.randint(0, V, (N,), device="cuda")
    out = {}
    for kind in ("forward_kl", "jsd"):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = distill_loss(h.to(torch.bfloat16), W, DenseSignal(th.to(torch.bfloat16), tW.to(torch.bfloat16)),
                                   tg, LossConfig(kind=kind, chunk_size=1024, ce_weight=0.1))
        gh, gw = torch.autograd.grad(loss, [h, W])
        s = torch.log_softmax(h @ W.T, -1)
        t = torch.log_softmax(th @ tW.T, -1)
        ref = (divergence(kind)(t, s) + 0.1 * torch.nn.functional.cross_entropy(h @ W.T, tg, reduction="none")).mean()
        rh, rw = torch.autograd.grad(ref, [h, W])
        out[kind] = {"loss_rel_err": float((loss - ref).abs() / ref.abs()),
                     "grad_h_rel_err": float((gh - rh).norm() / rh.norm()),
                     "grad_w_rel_err": float((gw - rw).norm() / rw.norm())}
    return out


def train_run(teacher: Path, text: Path, out: Path, backward: str, steps: int, parallel: str = "ddp") -> dict:
    from distill.config import load_config
    from distill.training import memory
    from distill.training.loop import train

    name = f"student-{backward}-{parallel}"
    cfg = load_config(None, [f"teacher.model={teacher}", f"data.path={text}", "data.seq_len=512",
                             "train.batch_size=16", f"train.steps={steps}", "train.eval_every=1000",
                             "train.checkpoint_every=1000", "train.progress=false", "loss.chunk_size=2048",
                             f"loss.backward={backward}", f"train.parallel={parallel}", f"output_dir={out / name}"])
    planned = memory.plan(memory.workload(cfg, 1, "cuda")).peak
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = train(cfg, overwrite=True)
    wall = time.perf_counter() - t0
    times = [r["time"] for r in result.history]
    per_step = (times[-1] - times[2]) / (len(times) - 3)
    return {"backward": backward, "parallel": parallel, "planned_peak_gib": planned / 2**30, "steps": steps, "wall_s": wall, "s_per_step_after_warmup": per_step,
            "tokens_per_s": 16 * 512 / per_step, "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
            "final": {k: v for k, v in result.final_eval.items() if k != "time"},
            "first_loss": result.history[0]["loss"], "last_loss": result.history[-1]["loss"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher-config", required=True, type=Path)
    ap.add_argument("--text", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    teacher = args.out / "teacher"
    cfg = AutoConfig.from_pretrained(args.teacher_config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(teacher, safe_serialization=True)
    AutoTokenizer.from_pretrained(args.teacher_config).save_pretrained(teacher)
    (teacher / "README.md").write_text("---\nlicense: apache-2.0\n---\nrandom SmolLM2-shaped teacher\n")
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "fused_numerics": fused_numerics()}
    report["runs"] = [train_run(teacher, args.text, args.out, mode, args.steps, parallel)
                      for mode, parallel in (("fused", "ddp"), ("recompute", "ddp"), ("fused", "fsdp"))]
    print(json.dumps(report, indent=1))
    write_result(args.out / "gpu_check.json", report)


if __name__ == "__main__":
    main()

"""Where the time of a Distill training step goes: torch.profiler on the real loop, teacher and student apart.

Runs `distill.training.loop.train` (the default teacher, the fresh ≈11.8 M student, 4 × 256 Shakespeare tokens,
JSD β=0.5 by default, 2 threads) with one extra callback, `StepProfile`, that uses only the public hooks:
at `on_train_start` it labels the run's pieces with `torch.profiler.record_function` ranges — the teacher source's
`signal` ("teacher"), the student + fused loss forward ("student_forward_loss", a forward pre/post hook on
`run.model`) and the optimizer step ("optimizer", optimizer step hooks) — and it profiles steps
`warmup … warmup+profiled−1` (CPU activities, shapes and FLOPs recorded; one more step follows, so the final
held-out evaluation stays outside the profile). What is left of a step outside those
ranges is the backward pass, gradient clipping, collation and the loop itself.

Inside each range every operator's self time is put in one category: matmul (aten::mm/addmm/bmm, with its FLOPs
and GFLOP/s), attention (the SDPA kernel), elementwise (norms, activations, rotary, residual adds, softmaxes),
copies/layout (copy_, cat, index_select, embedding, views, allocation) and other; "framework overhead" is the time
inside the range not inside any operator (Python, hooks, dispatch between ops). The teacher's matmuls are also
listed per shape. The reference is an fp32 2048³ matmul timed in the same process before and after the profile.

    .venv/bin/python -m benchmarks.engine.bench_profile [--warmup 2] [--profiled 2] [--teacher-precision fp32]
                                                [--set key=value] [--json benchmarks/results/profile.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from torch.autograd.profiler import record_function

from benchmarks.common import RESULTS, matmul_rate, write_result
from distill.config import load_config
from distill.training.callbacks import Callback
from distill.training.loop import train

RANGES = ("teacher", "student_forward_loss", "optimizer")
MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addmv", "aten::mv", "aten::dot",
          "aten::_addmm_activation", "quantized::linear_dynamic", "quantized::linear_prepack",
          "aten::_weight_int8pack_mm", "mkldnn::_linear_pointwise"}
COPIES = {"aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to", "aten::index_select",
          "aten::embedding", "aten::cat", "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::zeros",
          "aten::zeros_like", "aten::ones_like", "aten::full", "aten::fill_", "aten::zero_", "aten::resize_",
          "aten::as_strided", "aten::view", "aten::reshape", "aten::_reshape_alias", "aten::transpose", "aten::t",
          "aten::expand", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::permute",
          "aten::detach", "aten::alias", "aten::lift_fresh", "aten::_unsafe_view", "aten::unbind",
          "aten::arange", "aten::new_empty", "aten::new_zeros", "aten::set_", "aten::split", "aten::narrow",
          "aten::stack", "aten::index", "aten::gather", "aten::scatter_", "aten::index_add_", "aten::masked_fill",
          "aten::flatten", "aten::_foreach_zero_", "aten::result_type", "aten::item", "aten::_local_scalar_dense"}


def category(name: str) -> str:
    if name in MATMUL or name.startswith("quantized::linear"):
        return "matmul"
    if "scaled_dot_product" in name or "flash_attention" in name:
        return "attention"
    if name in COPIES:
        return "copies/layout"
    if name.startswith("aten::_foreach") or name.startswith("Optimizer"):
        return "optimizer kernels"
    if name.startswith("aten::"):
        return "elementwise"
    return "other"


class StepProfile(Callback):
    """Profiles steps [start, start + count) of the real loop, with the teacher, the student forward + loss and
    the optimizer step as labelled ranges."""

    def __init__(self, start: int, count: int):
        self.start, self.count = start, count
        self.prof: torch.profiler.profile | None = None
        self.step_ctx = None

    def on_train_start(self, run) -> None:
        source = run.source
        signal = source.signal

        def labelled_signal(batch, positions):
            with record_function("teacher"):
                return signal(batch, positions)

        source.signal = labelled_signal  # the loop reads run.source.signal at each micro-batch
        state: dict[str, object] = {}

        def enter(name: str):
            def hook(*_args, **_kwargs):
                state[name] = record_function(name)
                state[name].__enter__()
            return hook

        def leave(name: str):
            def hook(*_args, **_kwargs):
                state.pop(name).__exit__(None, None, None)
            return hook

        run.model.register_forward_pre_hook(enter("student_forward_loss"))
        run.model.register_forward_hook(leave("student_forward_loss"))
        run.optimizer.register_step_pre_hook(enter("optimizer"))
        run.optimizer.register_step_post_hook(leave("optimizer"))

    def on_step_start(self, run, step: int) -> None:
        if step == self.start:
            self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                               record_shapes=True, with_flops=True)
            self.prof.__enter__()
        if self.prof is not None and step < self.start + self.count:
            self.step_ctx = record_function("step")
            self.step_ctx.__enter__()

    def on_step_end(self, run, row: dict) -> None:
        if self.step_ctx is not None:
            self.step_ctx.__exit__(None, None, None)
            self.step_ctx = None
        if self.prof is not None and row["step"] == self.start + self.count:
            self.prof.__exit__(None, None, None)


def analyse(prof: torch.profiler.profile, steps: int) -> dict:
    """Per range: wall time, time per category, framework overhead; matmul FLOPs and rate; teacher GEMM shapes."""
    events = list(prof.events())
    ranges: dict[str, list[tuple[float, float]]] = defaultdict(list)
    overhead: dict[str, float] = defaultdict(float)
    for e in events:
        if e.name in (*RANGES, "step"):
            ranges[e.name].append((e.time_range.start, e.time_range.end))
            overhead[e.name] += e.self_cpu_time_total

    def owner(e) -> str:
        for name in RANGES:
            if any(a <= e.time_range.start and e.time_range.end <= b for a, b in ranges[name]):
                return name
        if any(a <= e.time_range.start and e.time_range.end <= b for a, b in ranges["step"]):
            return "rest (backward, clip, collate, loop)"
        return "outside"

    cats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    flops: dict[str, float] = defaultdict(float)
    shapes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        if e.name in (*RANGES, "step"):
            continue
        where = owner(e)
        if where == "outside":
            continue
        c = category(e.name)
        cats[where][c] += e.self_cpu_time_total
        if c == "matmul":
            flops[where] += e.flops or 0
            if where == "teacher":
                key = f"{e.name} {e.input_shapes}"
                shapes[key]["us"] += e.self_cpu_time_total
                shapes[key]["flops"] += e.flops or 0
                shapes[key]["calls"] += 1
    step_us = sum(b - a for a, b in ranges["step"])
    out: dict = {"step_s": step_us / 1e6 / steps, "ranges": {}}
    rest = step_us
    for name in RANGES:
        wall = sum(b - a for a, b in ranges[name])
        rest -= wall
        out["ranges"][name] = {"s_per_step": wall / 1e6 / steps, "framework_overhead_s": overhead[name] / 1e6 / steps}
    rest_name = "rest (backward, clip, collate, loop)"
    out["ranges"][rest_name] = {"s_per_step": rest / 1e6 / steps,
                                "framework_overhead_s": overhead["step"] / 1e6 / steps}
    for name, r in out["ranges"].items():
        r["categories_s"] = {c: v / 1e6 / steps for c, v in sorted(cats[name].items(), key=lambda kv: -kv[1])}
        mm = cats[name].get("matmul", 0.0)
        r["matmul_gflop"] = flops[name] / 1e9 / steps
        r["matmul_gflops_rate"] = flops[name] / max(mm, 1e-9) / 1e3 if mm else None  # flop / us → GFLOP/s
    out["teacher_gemm_shapes"] = sorted(
        ({"op": k, "calls_per_step": v["calls"] / steps, "s_per_step": v["us"] / 1e6 / steps,
          "gflops_rate": v["flops"] / max(v["us"], 1e-9) / 1e3} for k, v in shapes.items()),
        key=lambda d: -d["s_per_step"])
    return out


def report(out: dict) -> str:
    lines = [f"step {out['step_s']:.3f} s (profiled; the profiler adds some overhead); fp32 2048³ matmul "
             f"{out['matmul_ref_gflops']:.1f} GFLOP/s (median of {len(out['matmul_ref_all'])}, same process)", ""]
    cols = ("matmul", "attention", "elementwise", "copies/layout", "optimizer kernels", "other")
    lines.append("| part | s/step | share | " + " | ".join(cols) + " | framework overhead | matmul GFLOP/s "
                 "(of ref) |")
    lines.append("|---" * (len(cols) + 5) + "|")
    for name, r in out["ranges"].items():
        c = r["categories_s"]
        rate = r["matmul_gflops_rate"]
        rate_s = f"{rate:.0f} ({rate / out['matmul_ref_gflops']:.0%})" if rate else "—"
        lines.append(f"| {name} | {r['s_per_step']:.3f} | {r['s_per_step'] / out['step_s']:.0%} | "
                     + " | ".join(f"{c.get(k, 0.0):.3f}" for k in cols)
                     + f" | {r['framework_overhead_s']:.3f} | {rate_s} |")
    lines += ["", "teacher GEMMs by shape (top 8):", "| op [shapes] | calls/step | s/step | GFLOP/s |",
              "|---|---|---|---|"]
    for g in out["teacher_gemm_shapes"][:8]:
        lines.append(f"| {g['op']} | {g['calls_per_step']:.0f} | {g['s_per_step']:.3f} | {g['gflops_rate']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--profiled", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--teacher-precision", default="fp32")
    ap.add_argument("--set", action="append", default=[], help="more config overrides (key=value)")
    ap.add_argument("--json", default=str(RESULTS / "engine" / "profile.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rates = [matmul_rate() for _ in range(3)]
    prof = StepProfile(a.warmup, a.profiled)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, [
            "loss.kind=jsd", f"loss.beta={a.beta}", "loss.kd_weight=1", "loss.ce_weight=0",
            f"train.steps={a.warmup + a.profiled + 1}", f"train.batch_size={a.batch_size}", f"data.seq_len={a.seq_len}",
            "train.seed=0", f"train.threads={a.threads}", "train.progress=false", "train.eval_every=100000",
            "train.checkpoint_every=100000", "train.eval_sequences=4", f"output_dir={tmp}/student",
            f"teacher.precision={a.teacher_precision}", *a.set])
        train(cfg, callbacks=[prof])
    rates += [matmul_rate() for _ in range(3)]
    out = analyse(prof.prof, a.profiled)
    out.update({"matmul_ref_gflops": statistics.median(rates) / 1e9, "matmul_ref_all": [r / 1e9 for r in rates],
                "batch": a.batch_size, "seq_len": a.seq_len, "beta": a.beta, "threads": a.threads,
                "teacher_precision": a.teacher_precision, "overrides": a.set})
    print(report(out))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        write_result(a.json, out)


if __name__ == "__main__":
    main()

"""Quality at equal steps and data: KD students (one per loss) vs the same student trained on cross-entropy only.

Every run is `distill.training.loop.train(cfg)` with the default teacher (SmolLM2-135M-Instruct), the same fresh
≈11.8 M-parameter student (seed 0), the same Shakespeare batches in the same order, the same steps and
schedule; only the loss differs. The final held-out figures come from the trainer's own evaluation
(`heldout_eval`: KL(teacher‖student) per token, top-1 agreement with the teacher, student perplexity).

Rows: forward_kl, reverse_kl, jsd (beta 0.5), skew_forward_kl (alpha 0.1), tvd, each with kd_weight=1,
ce_weight=0; and "ce_only" with kd_weight=0, ce_weight=1.

Usage:  python -m benchmarks.engine.bench_quality [--steps 60] [--batch-size 4] [--seq-len 128] [--eval-sequences 32]
                                           [--threads 2] [--json benchmarks/results/engine/quality.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, write_result
from distill.config import load_config
from distill.training.loop import train

RUNS = {
    "forward_kl": ["loss.kind=forward_kl"],
    "reverse_kl": ["loss.kind=reverse_kl"],
    "jsd(0.5)": ["loss.kind=jsd", "loss.beta=0.5"],
    "skew_forward_kl(0.1)": ["loss.kind=skew_forward_kl", "loss.alpha=0.1"],
    "tvd": ["loss.kind=tvd"],
    "ce_only": ["loss.kd_weight=0", "loss.ce_weight=1"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--eval-sequences", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--runs", nargs="+", default=list(RUNS))
    ap.add_argument("--json", default=str(RESULTS / "engine" / "quality.json"))
    a = ap.parse_args()
    common = [f"train.steps={a.steps}", f"train.batch_size={a.batch_size}", f"data.seq_len={a.seq_len}",
              f"train.eval_sequences={a.eval_sequences}", f"train.threads={a.threads}", "train.progress=false",
              f"train.eval_every={a.steps}", "train.checkpoint_every=100000", "train.seed=0",
              f"train.warmup_steps={max(1, a.steps // 10)}", "loss.temperature=1.0", f"train.lr={a.lr}"]
    rows = []
    for name in a.runs:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(None, common + RUNS[name] + [f"output_dir={tmp}/student"])
            t0 = time.perf_counter()
            result = train(cfg)
            wall = time.perf_counter() - t0
        f = result.final_eval
        row = {"loss": name, "heldout_kl": f["heldout_kl"], "top1_agreement": f["top1_agreement"],
               "heldout_ppl": f["heldout_ppl"], "final_train_loss": f["loss"], "wall_s": wall}
        rows.append(row)
        print(json.dumps(row), flush=True)
    ce = next((r for r in rows if r["loss"] == "ce_only"), None)
    print(f"\n{a.steps} steps × {a.batch_size} × {a.seq_len} tokens, {a.eval_sequences} held-out sequences")
    print("| loss | held-out KL(t‖s) | top-1 agreement | perplexity | KL vs CE-only |")
    print("|---|---|---|---|---|")
    for r in rows:
        rel = f"{r['heldout_kl'] / ce['heldout_kl']:.2f}×" if ce else "-"
        print(f"| {r['loss']} | {r['heldout_kl']:.3f} | {r['top1_agreement']:.3f} | {r['heldout_ppl']:.1f} | {rel} |")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        meta = {"lr": a.lr, "steps": a.steps, "batch_size": a.batch_size, "seq_len": a.seq_len,
                "eval_sequences": a.eval_sequences, "threads": a.threads}
        write_result(a.json, {"meta": meta, "rows": rows})


if __name__ == "__main__":
    main()

"""Student quality from the offline store vs the live teacher at equal steps (issue 4 target: held-out KL to
the teacher within 2% of live dense KD), with the time per step of each.

    .venv/bin/python -m benchmarks.store.bench_store_quality --steps 60

Captures the store for exactly the sequences training uses (data.max_sequences), then trains the same fresh
student from the store with each `teacher.store_tail` (prior: residual spread by the tail prior, dense loss;
bucket: residual as one outcome, sparse loss) and once from the live teacher (dense loss), and
reports the held-out KL(teacher‖student) of each, measured against the live teacher's full distribution.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, write_result
from distill.cli import main as cli
from distill.config import load_config
from distill.evaluation.report import evaluate
from distill.evaluation.settings import EvalSettings
from distill.training.loop import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--tails", type=lambda v: v.split(","), default=["prior", "bucket"],
                    help="store_tail settings to train from the same capture")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--eval-sequences", type=int, default=16, help="held-out sequences scored (in training and after)")
    ap.add_argument("--heldout-fraction", type=float, default=0.05, help="data.heldout_fraction (the default's "
                    "5%%); the capture scores every held-out sequence too, so this sets most of its time")
    ap.add_argument("--json", default=str(RESULTS / "store" / "store_quality.json"))
    a = ap.parse_args()
    sequences = a.steps * 4
    common = [f"train.steps={a.steps}", "train.batch_size=4", f"data.seq_len={a.seq_len}",
              f"data.heldout_fraction={a.heldout_fraction}",
              f"data.max_sequences={sequences}", "train.progress=false", f"train.eval_every={a.steps}",
              f"train.eval_sequences={a.eval_sequences}", "train.lr=2e-3",
              "train.checkpoint_every=100000", "train.threads=2"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "cfg.yaml"
        cfg_path.write_text(f"data: {{path: shakespeare, seq_len: {a.seq_len}, max_sequences: {sequences}, "
                            f"heldout_fraction: {a.heldout_fraction}}}\n")
        t0 = time.perf_counter()
        assert cli(["capture", "--config", str(cfg_path), "--out", f"{tmp}/store", "--top-k", str(a.top_k)]) == 0
        capture_s = time.perf_counter() - t0
        runs = [(f"store_{t}", [f"teacher.store={tmp}/store", f"teacher.store_tail={t}"]) for t in a.tails]
        for name, extra in runs + [("live", [])]:
            cfg = load_config(None, common + extra + [f"output_dir={tmp}/student-{name}"])
            result = train(cfg)
            times = [r["time"] for r in result.history]
            # both students measured the same way: against the live teacher's full distribution
            report = evaluate(EvalSettings(student=f"{tmp}/student-{name}", seq_len=a.seq_len,
                                           sequences=a.eval_sequences, gen_prompts=0))
            live_eval = {"heldout_kl": report["student"]["kl_teacher_student"],
                         "top1_agreement": report["student"]["top1_agreement"],
                         "heldout_ppl": report["student"]["heldout_ppl"]}
            rows.append({"source": name, "s_per_step": (times[-1] - times[1]) / max(len(times) - 2, 1),
                         **{k: live_eval[k] for k in ("heldout_kl", "top1_agreement", "heldout_ppl")}})
            print(json.dumps(rows[-1]), flush=True)
    live = rows[-1]
    print(f"\ncapture of {sequences} train sequences (+ held-out): {capture_s:.0f} s; k = {a.top_k}; {a.steps} steps")
    print("| teacher signal | s/step | held-out KL (vs full teacher) | top-1 | perplexity |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['s_per_step']:.2f} | {r['heldout_kl']:.3f} | {r['top1_agreement']:.3f} | "
              f"{r['heldout_ppl']:.1f} |")
    for store in rows[:-1]:
        print(f"{store['source']}: KL store / live {store['heldout_kl'] / live['heldout_kl']:.3f}; "
              f"speed store / live {live['s_per_step'] / store['s_per_step']:.2f}×")
    write_result(a.json, {"steps": a.steps, "top_k": a.top_k, "capture_s": capture_s, "rows": rows})


if __name__ == "__main__":
    main()

"""On-policy (GKD, λ = 0.5) vs off-policy distillation: held-out KL at equal steps and at equal wall time,
and the share of step time spent sampling.

    .venv/bin/python benchmarks/bench_onpolicy.py --steps 40

The off-policy run is given twice the steps and evaluated every `--eval-every` steps, so its held-out KL can
be read both at the on-policy run's step count and at the step where its elapsed time matches the on-policy
run's total time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from distill.config import load_config
from distill.training.loop import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--json", default="benchmarks/results/onpolicy.json")
    a = ap.parse_args()
    common = ["train.batch_size=4", "data.seq_len=128", "train.progress=false", f"train.eval_every={a.eval_every}",
              "train.eval_sequences=16", "train.lr=2e-3", "train.checkpoint_every=100000", "train.threads=2",
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
    Path(a.json).write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()

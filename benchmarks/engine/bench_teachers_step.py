"""Step time with two teachers against one: what a second teacher costs (issue 26).

The same fresh student, data, batch and tokens per step, trained a few steps by `distill.train` in three ways:
`one` (the default teacher alone), `routed` (two live teachers, every row naming one: Shakespeare passages to `a`,
chatterbot conversations to `b`) and `ensemble` (the same two teachers, no row naming one: every row needs both).
Both teachers are the default model (the cost, not the target, is measured). Beside them, the teacher's forward
alone (`LiveTeacher.signal` on a batch of the same rows). Rounds alternate the variants, so machine noise hits them
alike; each figure is the median over rounds of each run's median step (the first two steps left out).

What should hold: routing costs one teacher forward per row, so `routed / one` is about 1; an ensemble asks every
teacher about every row, so `ensemble - one` is about one teacher forward, and nothing else grows.

    .venv/bin/python -m benchmarks.engine.bench_teachers_step [--rounds 3] [--steps 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, write_result
from benchmarks.retention.bench_multi_teacher import domain_rows, write_jsonl
from distill.config import DataConfig, load_config
from distill.data.corpus import collate, load_corpus
from distill.models.loading import load_model
from distill.signals import LiveTeacher, scored_positions
from distill.training.loop import train

VARIANTS = ("one", "routed", "ensemble")


def run_step_s(variant: str, files: dict[str, str], out: Path, a: argparse.Namespace) -> float:
    """The median step seconds of one short training run of `variant` (steps after the first two)."""
    teacher = ["teacher.model=default"] if variant == "one" else ["teachers=[{name: a}, {name: b}]"]
    data = {"one": files["plain"], "routed": files["routed"], "ensemble": files["plain"]}[variant]
    cfg = load_config(None, teacher + [
        f"data.path={data}", f"data.seq_len={a.seq_len}", f"train.batch_size={a.batch_size}",
        f"train.threads={a.threads}", f"train.steps={a.steps}", "train.progress=false",
        "train.checkpoint_every=100000", f"train.eval_every={a.steps}", "train.eval_sequences=2", "train.seed=0",
        f"output_dir={out}"])
    history = train(cfg).history
    steps = [b["time"] - p["time"] for p, b in zip(history[1:-1], history[2:], strict=True)]
    return statistics.median(steps)


def forward_s(files: dict[str, str], a: argparse.Namespace, repeats: int = 5) -> float:
    """The median seconds of the default teacher's signal on one batch of the training rows."""
    t = load_model("default")
    corpus = load_corpus(DataConfig(path=files["plain"], seq_len=a.seq_len), t.tokenizer)
    batch = collate(corpus.train[: a.batch_size], t.tokenizer.pad_token_id, list(range(a.batch_size)))
    src, pos = LiveTeacher(t.model, len(t.tokenizer)), scored_positions(batch)
    src.signal(batch, pos)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        src.signal(batch, pos)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=str(RESULTS / "engine" / "teachers_step.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = domain_rows()
    texts = [(t, "a") for t in rows["poet"][:400]] + [(t, "b") for t in rows["chat"][:400]]
    texts = [texts[i] for i in torch.randperm(len(texts), generator=torch.Generator().manual_seed(0)).tolist()]
    times: dict[str, list[float]] = {v: [] for v in (*VARIANTS, "teacher_forward")}
    with tempfile.TemporaryDirectory(prefix="bench-teachers-step-") as tmp:
        d = Path(tmp)
        files = {"plain": write_jsonl(d / "plain.jsonl", [{"text": t} for t, _ in texts]),
                 "routed": write_jsonl(d / "routed.jsonl", [{"text": t, "teacher": k} for t, k in texts])}
        for r in range(a.rounds):
            order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
            for v in order:
                times[v].append(run_step_s(v, files, d / f"{v}_{r}", a))
            times["teacher_forward"].append(forward_s(files, a))
            print({k: round(v[-1], 3) for k, v in times.items()}, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    summary = {"routed_over_one": med["routed"] / med["one"], "ensemble_over_one": med["ensemble"] / med["one"],
               "ensemble_minus_one_over_teacher_forward": (med["ensemble"] - med["one"]) / med["teacher_forward"],
               "median_s": med}
    write_result(a.json, {"settings": vars(a), "rounds": times, "summary": summary})
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()

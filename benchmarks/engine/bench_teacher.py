"""The teacher pass as the trainer runs it, exact and lower precision, interleaved in one process.

Each variant is the default teacher prepared by `distill.models.fast.scoring_teacher` (what `distill train`,
held-out evaluation and `distill eval` run) and timed through `LiveTeacher.signal` on the trainer's own batches
(4 × 256 Shakespeare tokens): fp32 (exact, the default), fp32 + `teacher.compile`, bf16, int8. Rounds alternate the
variants so machine noise hits them alike; wall and CPU seconds are medians over the timed rounds. Fidelity is
`distill.models.precision.fidelity` on the first held-out sequences (KL(fp32 ‖ variant) per token, top-1
agreement); for the compiled teacher also the largest absolute difference of its hidden states from eager fp32.

    .venv/bin/python -m benchmarks.engine.bench_teacher [--rounds 4] [--threads 2] [--variants fp32 bf16 int8 compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, write_result
from distill.config import load_config
from distill.data.corpus import collate, load_corpus
from distill.models.fast import scoring_teacher
from distill.models.loading import load_model
from distill.models.precision import fidelity
from distill.signals import LiveTeacher, scored_positions
from distill.training.sampler import BatchSampler


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=["fp32", "bf16", "int8"])
    ap.add_argument("--fidelity-sequences", type=int, default=16)
    ap.add_argument("--json", default=str(RESULTS / "engine" / "teacher.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(None, ["train.batch_size=4", "data.seq_len=256", "train.seed=0"])
    loaded = load_model("default")
    tok = loaded.tokenizer
    corpus = load_corpus(cfg.data, tok)
    vocab = len(tok)
    exact = LiveTeacher(loaded.model, vocab)
    sources = {}
    for v in a.variants:
        model = scoring_teacher(loaded.model, precision="fp32" if v == "compile" else v, compile=v == "compile")
        sources[v] = exact if v == "fp32" else LiveTeacher(model, vocab)
    sampler = BatchSampler.for_config(cfg, len(corpus.train))
    batches = []
    for s in range(a.rounds + 1):
        rows = sampler.rows(s, 0)
        batch = collate([corpus.train[i] for i in rows], tok.pad_token_id, rows)
        batches.append((batch, scored_positions(batch)))
    out: dict = {"threads": a.threads, "rounds": a.rounds, "variants": {}}
    t0 = time.perf_counter()
    for v, src in sources.items():  # warm-up (and, for compile, the compilation itself)
        src.signal(*batches[0])
        out["variants"][v] = {"first_call_s": time.perf_counter() - t0, "wall": [], "cpu": []}
        t0 = time.perf_counter()
    names = list(sources)
    for r in range(1, a.rounds + 1):
        for v in names if r % 2 else names[::-1]:
            c0, w0 = time.process_time(), time.perf_counter()
            sources[v].signal(*batches[r])
            out["variants"][v]["wall"].append(time.perf_counter() - w0)
            out["variants"][v]["cpu"].append(time.process_time() - c0)
    heldout = corpus.heldout[: a.fidelity_sequences]
    for v, src in sources.items():
        d = out["variants"][v]
        d["wall_s"], d["cpu_s"] = statistics.median(d["wall"]), statistics.median(d["cpu"])
        if v != "fp32":
            d["fidelity"] = fidelity(exact, src, heldout, tok.pad_token_id, v).to_dict()
        if v == "compile":
            batch, positions = batches[0]
            d["max_abs_hidden_diff"] = float((src.signal(batch, positions).hidden
                                              - exact.signal(batch, positions).hidden).abs().max())
    out["load"] = os.getloadavg()
    base = out["variants"].get("fp32")
    print(f"teacher pass, 4 × 256 tokens, {a.threads} threads, median of {a.rounds} interleaved rounds; "
          f"load average {out['load'][0]:.1f}")
    print("| variant | wall s | CPU s | speed vs fp32 (wall / CPU) | KL(fp32 ‖ variant)/token | top-1 agreement |")
    print("|---|---|---|---|---|---|")
    for v, d in out["variants"].items():
        f = d.get("fidelity")
        speed = f"{base['wall_s'] / d['wall_s']:.2f}× / {base['cpu_s'] / d['cpu_s']:.2f}×" if base else "—"
        kl = f"{f['kl_per_token']:.5f}" if f else "0 (exact)"
        agree = f"{f['top1_agreement']:.2%}" if f else "100%"
        print(f"| {v} | {d['wall_s']:.3f} | {d['cpu_s']:.3f} | {speed} | {kl} | {agree} |")
    if "compile" in out["variants"]:
        c = out["variants"]["compile"]
        print(f"compile: first call {c['first_call_s']:.0f} s (compilation), max |hidden − eager fp32| "
              f"{c['max_abs_hidden_diff']:.2e}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        write_result(a.json, out)


if __name__ == "__main__":
    main()

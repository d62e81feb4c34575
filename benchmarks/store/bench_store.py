"""Benchmark of the offline teacher store: bytes per token, probability mass kept, capture and read speed.

Runs the real default teacher (SmolLM2-135M-Instruct) over a slice of the bundled Shakespeare corpus, captures
its top-k into a temporary store and reports:

    bytes/token       whole store size (records, indexes, headers) / captured positions
    record bytes      the fixed size of one position's record (100 at k = 32 with a vocabulary ≤ 65536)
    mass kept         mean and min over positions of Σ top-k p (the rest goes into the residual bucket)
    max error         largest |decoded − exact| top-k log-probability, in nats
    max mass error    largest |Σ decoded top-k p − Σ exact top-k p| (what the residual bucket sees)
    capture tok/s     captured positions per second (teacher forward + head/top-k + encoding + writing)
    read batch ms     StoreTeacher.signal for a 4 × seq_len batch (mmap read + decode)

Usage:  python -m benchmarks.store.bench_store [--sequences 32] [--seq-len 256] [--top-k 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import corpus_slice, write_result
from distill.config import DataConfig
from distill.data.corpus import collate, load_corpus
from distill.models.loading import load_model
from distill.store import CaptureSettings, StoreTeacher, expected_identity, run_capture


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=32, help="sequences of the corpus slice (train + held-out)")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--shard-size", type=int, default=32)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    t0 = time.perf_counter()
    loaded = load_model("default")
    with tempfile.TemporaryDirectory() as tmp:
        data = corpus_slice(loaded.tokenizer, args.sequences, args.seq_len, Path(tmp))
        data_cfg = DataConfig(path=str(data), seq_len=args.seq_len)
        settings = CaptureSettings(data=data_cfg, out=str(Path(tmp) / "store"), top_k=args.top_k,
                                   shard_size=args.shard_size, batch_size=args.batch_size, device="cpu")
        result = run_capture(settings, loaded=loaded)
        m = result.manifest
        assert m is not None
        corpus = load_corpus(data_cfg, loaded.tokenizer)
        st = StoreTeacher(settings.out, expect=expected_identity(teacher=loaded.info, tokenizer=loaded.tokenizer,
                                                                 corpus=corpus))
        rows = list(range(min(4, len(corpus.train))))
        batch = collate([corpus.train[i] for i in rows], loaded.tokenizer.pad_token_id, example_ids=rows)
        positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(1)
        st.signal(batch, positions)
        reps = 50
        t = time.perf_counter()
        for _ in range(reps):
            st.signal(batch, positions)
        read_ms = (time.perf_counter() - t) / reps * 1000
    figures = {
        "teacher": loaded.info.name, "k": args.top_k, "seq_len": args.seq_len,
        "sequences": m["corpus"]["train_sequences"] + m["corpus"]["heldout_sequences"],
        "positions": m["positions"],
        "record_bytes": m["settings"]["bytes_per_position"],
        "bytes_per_token": round(m["bytes"] / m["positions"], 2),
        "mass_kept_mean": round(m["mass_kept"]["mean"], 4), "mass_kept_min": round(m["mass_kept"]["min"], 4),
        "max_logprob_error_nats": round(m["max_logprob_error"], 5),
        "max_mass_error": round(m["max_mass_error"], 6),
        "capture_tokens_per_s": round(result.positions / result.seconds, 1),
        "capture_seconds": round(result.seconds, 1),
        "read_batch_ms": round(read_ms, 3), "read_batch_positions": int(len(positions)),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2), "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    if args.json:
        write_result(args.json, figures)


if __name__ == "__main__":
    main()

"""Training steps fed by the offline store vs the live teacher (same student, same batches, same loss).

Captures the first sequences of a Shakespeare slice with the real default teacher (k = 32), then times N
optimizer steps of an ≈11 M-parameter fresh Llama student (`distill.models.students.fresh_llama`) on batches of
4 × 256 tokens, with `distill.loss.fused.distill_loss` (forward KL) fed by `StoreTeacher` (top-k with the tail
prior, and top-k + residual bucket) or by `LiveTeacher` (dense, the teacher runs every step). Reports seconds per step for both,
and the time spent obtaining the teacher signal alone.

Usage:  python -m benchmarks.store.bench_store_training [--steps 4] [--batch-size 4] [--seq-len 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import announce, corpus_slice
from distill.config import DataConfig, LossConfig
from distill.data.corpus import collate, load_corpus
from distill.loss.fused import distill_loss
from distill.models.loading import load_model
from distill.models.students import fresh_llama
from distill.signals import LiveTeacher
from distill.store import CaptureSettings, StoreTeacher, expected_identity, run_capture


def time_steps(source, student, batches, vocab: int, spec: LossConfig) -> tuple[float, float]:
    """(seconds per optimizer step, seconds per step spent in source.signal)."""
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    total = signal_time = 0.0
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(1)
        ts = time.perf_counter()
        signal = source.signal(batch, positions)
        ts = time.perf_counter() - ts
        h = student.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden = h.reshape(-1, h.shape[-1]).index_select(0, positions)
        weight = student.get_output_embeddings().weight[:vocab]
        loss, _ = distill_loss(hidden, weight, signal, batch["targets"].reshape(-1)[positions], spec)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i > 0:  # the first step warms up allocators and kernels
            total += time.perf_counter() - t0
            signal_time += ts
    n = max(len(batches) - 1, 1)
    return total / n, signal_time / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="timed steps (one more is run as warm-up)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    args = ap.parse_args()
    announce()
    loaded = load_model("default")
    tok, vocab = loaded.tokenizer, len(loaded.tokenizer)
    n_batches = args.steps + 1
    with tempfile.TemporaryDirectory() as tmp:
        need = n_batches * args.batch_size
        data = corpus_slice(tok, need * 2, args.seq_len, Path(tmp))
        data_cfg = DataConfig(path=str(data), seq_len=args.seq_len, max_sequences=need)
        settings = CaptureSettings(data=data_cfg, out=str(Path(tmp) / "store"), top_k=32, shard_size=64,
                                   device="cpu")
        t = time.perf_counter()
        run_capture(settings, loaded=loaded)
        capture_s = time.perf_counter() - t
        corpus = load_corpus(data_cfg, tok)
        expect = expected_identity(teacher=loaded.info, tokenizer=tok, corpus=corpus)
        stores = {f"store_{tail}": StoreTeacher(settings.out, expect=expect, tail=tail) for tail in ("prior", "bucket")}
        batches = [collate(corpus.train[i:i + args.batch_size], tok.pad_token_id,
                           example_ids=list(range(i, i + args.batch_size)))
                   for i in range(0, need, args.batch_size)]
        spec = LossConfig(kind="forward_kl")
        results = {}
        for name, source in [*stores.items(), ("live", LiveTeacher(loaded.model, vocab))]:
            student = fresh_llama(tok, seed=0)
            results[name] = time_steps(source, student, batches, vocab, spec)
    n_params = sum(p.numel() for p in fresh_llama(tok, seed=0).parameters())
    print(f"student parameters: {n_params / 1e6:.1f} M; batch {args.batch_size}×{args.seq_len}; "
          f"{args.steps} timed steps; torch threads {torch.get_num_threads()}")
    print(f"capture of {need} sequences (+ held-out): {capture_s:.1f} s")
    for name, (step, sig) in results.items():
        print(f"{name:>12}: {step:.2f} s/step, of which teacher signal {sig:.3f} s")
    for name in stores:
        print(f"speed-up from {name}: {results['live'][0] / results[name][0]:.2f}×")


if __name__ == "__main__":
    main()

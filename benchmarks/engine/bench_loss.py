"""The fused chunked loss alone, at the shapes of the default step: seconds per forward + backward.

The default teacher's and the fresh student's shapes (N = 1020 scored positions of a 4 × 256 batch, V = 49 152,
student width 192, teacher width 576), random hidden states and heads (seed 0; the loss's cost does not depend on
the values), `distill.loss.fused.distill_loss` with a `DenseSignal` — the public API, so the same script times any
checkout: run it with `PYTHONPATH=<checkout>/src` alternately for two versions (an A/B in one shell loop). With one
thread the figure is the thread's CPU time (`time.thread_time`, far less sensitive to other work on the machine than
wall time); with more, wall time. Also times the chunk's four GEMMs alone (student logits, teacher logits, the two
gradients) so "loss minus GEMMs" is the elementwise work.

Usage:  python -m benchmarks.engine.bench_loss [--threads 1] [--repeat 5] [--chunks 64 auto] [--kinds jsd forward_kl]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from benchmarks.common import announce
from distill.config import LossConfig
from distill.loss.fused import distill_loss
from distill.signals import DenseSignal
from distill.training import allocator

N, V, D_STUDENT, D_TEACHER = 1020, 49152, 192, 576


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunks", nargs="+", default=["64", "auto"])
    ap.add_argument("--kinds", nargs="+", default=["jsd", "forward_kl"])
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    announce()
    allocator.tune_glibc_malloc()  # as `train()` does
    torch.set_num_threads(a.threads)
    clock = time.thread_time if a.threads == 1 else time.perf_counter
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(N, D_STUDENT, generator=g).requires_grad_(True)
    ws = (torch.randn(V, D_STUDENT, generator=g) * 0.05).requires_grad_(True)
    signal = DenseSignal(hidden=torch.randn(N, D_TEACHER, generator=g),
                         head=torch.randn(V, D_TEACHER, generator=g) * 0.05)
    targets = torch.randint(0, V, (N,), generator=g)

    def timed(fn) -> float:
        fn()
        times = []
        for _ in range(a.repeat):
            t0 = clock()
            fn()
            times.append(clock() - t0)
        return statistics.median(times)

    def step(loss: LossConfig) -> None:
        value, _ = distill_loss(hs, ws, signal, targets, loss)
        value.backward()
        hs.grad = ws.grad = None

    def gemms(rows: int) -> None:
        gw = torch.zeros_like(ws)
        h_all, w = hs.detach(), ws.detach()
        for start in range(0, N, rows):
            h = h_all[start:start + rows]
            s = h @ w.T
            signal.hidden[start:start + rows] @ signal.head.T
            s @ w
            gw.addmm_(s.T, h)

    out = {"label": a.label, "threads": a.threads, "clock": clock.__name__, "seconds": {}}
    for kind in a.kinds:
        for chunk in a.chunks:
            try:
                cfg = LossConfig(kind=kind, beta=0.5, chunk_size=int(chunk) if chunk.isdigit() else chunk)
            except ValueError as e:  # an older checkout without chunk_size 'auto'
                out["seconds"][f"{kind}/{chunk}"] = f"n/a ({type(e).__name__})"
                continue
            out["seconds"][f"{kind}/{chunk}"] = timed(lambda cfg=cfg: step(cfg))
    for chunk in a.chunks:
        if chunk.isdigit():
            out["seconds"][f"gemms/{chunk}"] = timed(lambda r=int(chunk): gemms(r))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Whole-vocabulary green list per decoding step: the row-cached `green_mask` against the direct
`green_values` computation, for the default self-hash h 4 key and left-hash h 1, 10 rows × 49,152 candidates.

    .venv/bin/python -m benchmarks.watermark.bench_greenlist [--rows 10] [--steps 30]

Each step shifts every row's window by one new token drawn from the 2,000 most frequent-looking ids (ids < 2000),
as decoding does; the cache is warm after the first steps. Prints ms per step and the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import announce
from distill.keys.watermark import new_key
from distill.models.loading import load_tokenizer
from distill.protection.watermark.greenlist import green_mask, green_values, threshold


def per_step(fn, windows: torch.Tensor, steps: int, g: torch.Generator) -> float:
    w = windows.clone()
    t0 = time.perf_counter()
    for _ in range(steps):
        w = torch.cat([w[:, 1:], torch.randint(0, 2000, (w.shape[0], 1), generator=g)], 1)
        fn(w)
    return (time.perf_counter() - t0) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    announce()
    torch.set_num_threads(2)
    tok = load_tokenizer("default")
    print("| key | direct ms/step | row-cached ms/step | speed-up |\n|---|---|---|---|")
    for name, h, self_hash in (("self-hash h 4 (default)", 4, True), ("left-hash h 1", 1, False)):
        key = new_key(tok, context_width=h, self_hash=self_hash)
        v = key.vocab_size
        cands = torch.arange(v)[None]
        windows = torch.randint(0, 2000, (args.rows, h), generator=torch.Generator().manual_seed(0))
        assert torch.equal(green_mask(key, windows, v), green_values(key, windows, cands)[0] < threshold(key.gamma))
        direct = per_step(lambda w, k=key, c=cands: green_values(k, w, c)[0] < threshold(k.gamma), windows, args.steps,
                          torch.Generator().manual_seed(1))
        cached = per_step(lambda w, k=key, n=v: green_mask(k, w, n), windows, args.steps, torch.Generator().manual_seed(1))
        print(f"| {name} | {direct:.1f} | {cached:.1f} | {direct / cached:.1f}× |", flush=True)


if __name__ == "__main__":
    main()

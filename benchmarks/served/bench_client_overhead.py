"""Requests/s of the `distill generate` client vs a minimal httpx loop against the same local server.

Starts `distill serve` on a tiny random Llama (subprocess, 127.0.0.1, free port), then alternates: a plain
httpx.AsyncClient loop with the same concurrency (the server's capacity as seen by a client that does
nothing) and `run_generation` (rate-limit checks, retries, parsing, fsync'd store, accounting). Prints both
rates and their ratio (target >= 95%).

    .venv/bin/python -m benchmarks.served.bench_client_overhead [--requests 120] [--concurrency 8] [--max-tokens 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import DISTILL, Server, announce


def _prompts(n: int, offset: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Benchmark prompt {offset + i}: say something."}] for i in range(n)]


async def _plain(url: str, prompts, concurrency: int, max_tokens: int) -> float:
    q: asyncio.Queue = asyncio.Queue()
    for p in prompts:
        q.put_nowait(p)
    async with httpx.AsyncClient(timeout=60) as client:
        async def worker():
            while not q.empty():
                p = q.get_nowait()
                r = await client.post(url, json={"model": "tiny", "messages": p, "max_tokens": max_tokens,
                                                 "temperature": 1.0, "top_p": 1.0, "n": 1, "logprobs": True,
                                                 "top_logprobs": 5})
                r.raise_for_status()
                r.json()
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(prompts) / (time.perf_counter() - t)


def _client(base: str, prompts, concurrency: int, max_tokens: int, out: Path) -> float:
    from distill.generate.client import run_generation
    from distill.generate.settings import GenerateSettings

    settings = GenerateSettings(endpoint=base, model="tiny", out=str(out), prompts=prompts, concurrency=concurrency,
                                max_tokens=max_tokens, top_logprobs=5, progress=False)
    t = time.perf_counter()
    acct = run_generation(settings)
    assert acct.succeeded == len(prompts), acct.summary()
    return len(prompts) / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=120, help="requests per measurement")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight, both clients")
    ap.add_argument("--max-tokens", type=int, default=8, help="new tokens per request")
    ap.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds")
    args = ap.parse_args()
    announce()

    from distill.models.loading import load_tokenizer
    from distill.models.students import fresh_llama

    tmp = Path(tempfile.mkdtemp(prefix="bench-client-"))
    tok = load_tokenizer("default")
    fresh_llama(tok, hidden_size=32, num_layers=2, num_heads=2, seed=0).save_pretrained(tmp / "tiny")
    tok.save_pretrained(tmp / "tiny")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    server = Server([*DISTILL, "serve", str(tmp / "tiny"), "--served-name", "tiny", "--log-level", "warning",
                     "--max-batch", "16"], tmp / "serve.log", timeout=120, env=env).start()
    base = server.api
    try:
        asyncio.run(_plain(base + "/chat/completions", _prompts(16, 10**6), args.concurrency, args.max_tokens))
        plain, ours = [], []
        for r in range(args.rounds):
            off = r * 2 * args.requests
            plain.append(asyncio.run(_plain(base + "/chat/completions", _prompts(args.requests, off),
                                            args.concurrency, args.max_tokens)))
            ours.append(_client(base, _prompts(args.requests, off + args.requests), args.concurrency,
                                args.max_tokens, tmp / f"out{r}"))
            print(f"round {r + 1}: plain httpx {plain[-1]:.1f} req/s, distill generate {ours[-1]:.1f} req/s "
                  f"({100 * ours[-1] / plain[-1]:.1f}%)")
        p, o = sum(plain) / len(plain), sum(ours) / len(ours)
        print(f"server capacity (plain httpx, concurrency {args.concurrency}): {p:.1f} req/s")
        print(f"distill generate client: {o:.1f} req/s")
        print(f"ratio: {100 * o / p:.1f}% (target >= 95%)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

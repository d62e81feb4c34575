"""A teacher behind a server vs the same teacher live: quality at equal steps, and what prefetch buys.

`distill serve` serves the default teacher (SmolLM2-135M-Instruct) in a subprocess on 127.0.0.1. Quality runs train
the same fresh ≈11.8 M student (seed 0, same batches, same schedule) from: the live teacher (dense forward KL), and
the served teacher's top-k (k = 20, vLLM's default cap) with the rest as one bucket, spread by the data's token
frequencies, or spread by the teacher's own average tail asked of the server once (k = 200 on 32 sequences). Every student is then scored by `distill.evaluate` against the full live teacher on the same held-out
sequences (KL(teacher‖student), top-1, perplexity). Timing runs measure seconds per step with and without prefetch,
behind a local proxy that replays the teacher's recorded answers after a fixed latency (a teacher on another
machine: its compute no longer competes with the trainer for the same cores), through the public `StepTimer`
callback.

Usage:  python -m benchmarks.served.bench_served [--steps 40] [--seq-len 128] [--lr 1e-3] [--timing-steps 8]
                                          [--latency-ms 50 500] [--parts quality,timing]
                                          [--json benchmarks/results/served.json]

The quality figures are deterministic (the same on a loaded machine); the timing ones are not: run `--parts timing`
alone on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from benchmarks.common import DISTILL, RESULTS, Server, write_result
from distill.config import load_config
from distill.evaluation.report import evaluate
from distill.evaluation.settings import EvalSettings
from distill.training.callbacks import StepTimer
from distill.training.loop import train


class LatencyProxy:
    """A stand-in for a teacher on another machine: a local HTTP proxy that answers every request after `seconds`
    (stdlib server, one thread per connection, so concurrent requests overlap as over a network).

    With `answers` (a dict shared between proxies), an answer already seen for the same request (method, path,
    body) is replayed instead of forwarded: the teacher's compute then happens *elsewhere* - as it does for a remote
    teacher - instead of on the trainer's own cores, where the server and the trainer would fight for the same two
    cores and make any overlap look like a loss. Requests seen for the first time are forwarded to `target` and
    recorded (`misses` counts them)."""

    def __init__(self, target: str, seconds: float, answers: dict | None = None):
        client = httpx.Client(timeout=600)
        proxy = self
        self.misses = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(seconds)
                key = (self.command, self.path, body)
                if answers is not None and key in answers:
                    status, ctype, content = answers[key]
                else:
                    proxy.misses += 1
                    resp = client.request(self.command, target + self.path, content=body,
                                          headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                    status, ctype, content = resp.status_code, resp.headers.get("content-type", "application/json"), \
                        resp.content
                    if answers is not None and status == 200:
                        answers[key] = (status, ctype, content)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _forward

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--eval-sequences", type=int, default=32)
    ap.add_argument("--timing-steps", type=int, default=8)
    ap.add_argument("--latency-ms", type=float, nargs="+", default=[50.0, 500.0],
                    help="added latency per request, one timing pair per value (besides 0)")
    ap.add_argument("--parts", default="quality,timing", help="comma-separated: quality, timing")
    ap.add_argument("--runs", default="", help="comma-separated quality runs to do (default all): live, "
                    "served_bucket, served_data_prior, served_server_prior")
    ap.add_argument("--json", default=str(RESULTS / "served" / "served.json"))
    a = ap.parse_args()
    server = Server([*DISTILL, "serve", "default", "--log-level", "warning", "--max-logprobs", "256"]).start()
    url = server.api
    common = [f"train.batch_size={a.batch_size}", f"data.seq_len={a.seq_len}", "train.threads=2",
              "train.progress=false", "train.checkpoint_every=100000", "train.seed=0", f"train.lr={a.lr}",
              "train.eval_sequences=4", "loss.kind=forward_kl", "loss.temperature=1.0"]
    served = [f"teacher.endpoint={url}", "teacher.model=default", "teacher.tokenizer=default",
              f"teacher.top_k={a.top_k}"]
    out: dict = {"meta": vars(a), "quality": [], "timing": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            quality = [("live", []), ("served_bucket", served + ["teacher.endpoint_tail=bucket"]),
                       ("served_data_prior", served + ["teacher.endpoint_tail=data_prior"]),
                       ("served_server_prior", served + ["teacher.endpoint_tail=server_prior", "teacher.tail_k=200"])]
            for name, extra in quality if "quality" in a.parts else []:
                if a.runs and name not in a.runs.split(","):
                    continue
                cfg = load_config(None, common + extra + [
                    f"train.steps={a.steps}", f"train.eval_every={a.steps}", f"train.warmup_steps={max(1, a.steps // 10)}",
                    f"output_dir={tmp}/{name}"])
                timer = StepTimer()
                train(cfg, callbacks=[timer])
                rep = evaluate(EvalSettings(student=f"{tmp}/{name}", seq_len=a.seq_len, sequences=a.eval_sequences,
                                            gen_prompts=0))
                row = {"run": name, "heldout_kl": rep["student"]["kl_teacher_student"],
                       "top1_agreement": rep["student"]["top1_agreement"], "heldout_ppl": rep["student"]["heldout_ppl"],
                       "s_per_step": timer.seconds(1, a.steps - 1) / (a.steps - 2)}
                out["quality"].append(row)
                print(json.dumps(row), flush=True)
            n = a.timing_steps
            answers: dict = {}  # the teacher's answers, recorded once from the real server, then replayed
            runs = [(None, 0)] + [(lat, pf) for lat in (0.0, *[x / 1000 for x in a.latency_ms]) for pf in (2, 0)]
            for latency, prefetch in runs if "timing" in a.parts else ():
                proxy = LatencyProxy(server.url, latency or 0.0, answers)
                cfg = load_config(None, common + served + [
                    f"teacher.endpoint={proxy.url}/v1", f"teacher.prefetch={prefetch}", f"train.steps={n + 2}",
                    "train.eval_every=100000", f"output_dir={tmp}/t{latency}-{prefetch}"])
                timer = StepTimer()
                train(cfg, callbacks=[timer])
                proxy.close()
                if latency is None:  # the recording run (the teacher computing on these cores): not timed
                    continue
                row = {"latency_ms": latency * 1000, "prefetch": prefetch, "s_per_step": timer.seconds(1, n + 1) / n,
                       "forwarded": proxy.misses}
                out["timing"].append(row)
                print(json.dumps(row), flush=True)
    finally:
        server.stop()
    if out["quality"]:
        print_quality(out, a)
    if out["timing"]:
        print_timing(out)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        write_result(a.json, out)


def print_quality(out: dict, a) -> None:
    live = next((r for r in out["quality"] if r["run"] == "live"), out["quality"][0])
    print(f"\n{a.steps} steps × {a.batch_size} × {a.seq_len} tokens; k = {a.top_k}; scored against the full teacher "
          f"on {a.eval_sequences} held-out sequences")
    print("| teacher signal | held-out KL | KL vs live | top-1 | perplexity | s/step |")
    print("|---|---|---|---|---|---|")
    for r in out["quality"]:
        print(f"| {r['run']} | {r['heldout_kl']:.3f} | {r['heldout_kl'] / live['heldout_kl']:.3f} | "
              f"{r['top1_agreement']:.3f} | {r['heldout_ppl']:.1f} | {r['s_per_step']:.2f} |")


def print_timing(out: dict) -> None:
    print("\n| added latency per request | s/step, prefetch 2 | s/step, no prefetch | no prefetch / prefetch |")
    print("|---|---|---|---|")
    for latency in sorted({r["latency_ms"] for r in out["timing"]}):
        p2, p0 = (next(r["s_per_step"] for r in out["timing"] if r["latency_ms"] == latency and r["prefetch"] == p)
                  for p in (2, 0))
        print(f"| {latency:.0f} ms | {p2:.2f} | {p0:.2f} | {p0 / p2:.2f}× |")


if __name__ == "__main__":
    main()

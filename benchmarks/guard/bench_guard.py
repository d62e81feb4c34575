"""Guard benchmark (issue 17): fit on simulated training traffic, judge on held-out traffic it never saw.

    python -m benchmarks.guard.bench_guard [--no-server] [--speed 150] [--engine recorded|tiny] [--server-repeats 3]

1. fit, on the "train" profile, seeds 0 and 1 only: the scorer (capped non-negative weights), the reading
   threshold (99th percentile of the benign per-key maximum score), and the server's rules (throttle half a logit,
   block one logit above the highest benign score, with and without the actions applied in-process);
2. held-out, in-process: the "heldout" profile (other settings: pacing, key counts, paraphrase and CoT wordings,
   answer regimes, benign mix), seeds 11 and 12: per campaign kind, TPR at the fitted threshold and at the
   operating point where held-out benign FPR <= 1%; again with every answer cut to 1 token; and with the rules
   applied (gate, then observe, per request: served after the first block/throttle, benign accounts acted on);
3. held-out, through the real server: `distill guard simulate --profile heldout --seed 21 --repeats 3` written to
   a trace, `distill serve`'s app on RecordedLengthEngine (answers of the recorded length, no decoding; `--engine
   tiny`: `distill serve` on a tiny random model, answers capped at --max-tokens) with one API key per account and
   the rules, and `distill guard replay --recorded-lengths` sending the trace, time-compressed, each row with its
   own key. Per kind TPR from the server's guard state; share of a flagged account's requests served after its
   first block and after its first throttle; benign accounts acted on; scoring overhead per request (observe +
   gate, timed inside the server process).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from benchmarks.common import Server, announce, tiny_model
from distill.protection.guard import FEATURES, Guard, GuardConfig, Rule, fit_logistic, simulate
from distill.protection.guard.scoring import DEFAULT, LogisticScorer
from distill.protection.guard.simulate import Event
from distill.serve.engine import Choice, Completion, Engine, SamplingParams, TokenInfo

MIN_REQUESTS = 20


def run_trace(events, scorer: LogisticScorer, every: int = 3):
    """Per key: its label and kind, its max score once it has min_requests in the window; and training rows. Every
    request is served; the guard's default rules apply, so an account reaching watermark or block leaves the
    shared word counts, as it would in a server (KeyWindow.detach)."""
    g = Guard(GuardConfig(min_requests=MIN_REQUESTS), scorer)
    best: dict[str, float] = {}
    kinds, rows = {}, []
    for i, e in enumerate(events):
        g.observe(e.key, e.request, e.response, e.ts)
        kinds[e.key] = e.kind
        st = g.state[e.key]
        best[e.key] = st["max_score"]  # over the requests it had evidence for (keys without any: 0, never flagged)
        if st["requests_in_window"] >= MIN_REQUESTS or st["max_score"] > 0:
            if i % every == 0:
                rows.append(([st["features"][f] for f in FEATURES], int(e.label != "benign"), e.key))
    return best, kinds, rows


def per_key_rows(rows):
    """Rows with weights that make every key weigh the same (a harvester's 10 000 rows would swamp a person's 30)."""
    count = defaultdict(int)
    for _, _, k in rows:
        count[k] += 1
    return [r[0] for r in rows], [r[1] for r in rows], [1.0 / count[r[2]] for r in rows]


BENIGN_KINDS = ("chat", "developer", "tutorial", "app")


def report(best: dict[str, float], kinds: dict[str, str], thr: float, title: str) -> dict:
    benign = {k: v for k, v in best.items() if kinds[k] in BENIGN_KINDS}
    vals = np.array(sorted(benign.values()))
    # the operating point where held-out benign FPR <= 1%: the smallest threshold flagging at most 1% of them
    allowed = int(math.floor(0.01 * len(vals)))
    op = float(vals[len(vals) - 1 - allowed]) + 1e-9 if len(vals) else 1.0
    print(f"\n== {title}")
    fpr = np.mean([v >= thr for v in benign.values()])
    print(f"benign keys {len(benign)}: FPR at the fitted threshold {thr:.4f}: {fpr:.4f}; held-out operating point "
          f"(FPR <= 1%): score > {op:.4f}")
    for bk in BENIGN_KINDS:
        b = [v for k, v in benign.items() if kinds[k] == bk]
        if b:
            print(f"  benign {bk:<10} keys {len(b):>4}  flagged at fitted thr {sum(v >= thr for v in b):>3}  "
                  f"at operating point {sum(v >= op for v in b):>3}  max score {max(b):.3f}")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for k, v in best.items():
        if kinds[k] not in BENIGN_KINDS:
            by_kind[kinds[k]].append(v)
    out = {"threshold": thr, "operating_point": op, "fpr_at_threshold": float(fpr), "kinds": {},
           "benign_max": float(vals[-1]) if len(vals) else 0.0}
    for kind, vals_k in sorted(by_kind.items()):
        t1, t2 = np.mean([v >= thr for v in vals_k]), np.mean([v >= op for v in vals_k])
        out["kinds"][kind] = {"keys": len(vals_k), "tpr_fitted": float(t1), "tpr_op": float(t2)}
        print(f"  {kind:<12} keys {len(vals_k):>3}  TPR at fitted threshold {t1:.3f}  at held-out FPR<=1% {t2:.3f}  "
              f"lowest score {min(vals_k):.3f}")
    return out


def fit(args):
    train = []
    for seed in (0, 1):
        train += simulate(seed=seed, n_benign=args.train_benign, repeats=2, profile="train")
    _, _, rows = run_trace(sorted(train, key=lambda e: e.ts), DEFAULT)
    x, y, w = per_key_rows(rows)
    scorer = fit_logistic(x, y, sample_weight=w)
    r = lambda v: tuple(round(a, 4) for a in v)  # noqa: E731
    print(f"fitted on {len(x)} rows ({sum(y)} campaign):\nLogisticScorer(mean={r(scorer.mean)}, "
          f"scale={r(scorer.scale)}, weight={r(scorer.weight)}, bias={round(scorer.bias, 4)})")
    total = sum(scorer.weight)
    print("weights: " + ", ".join(f"{f} {w:.2f}" for f, w in zip(FEATURES, scorer.weight, strict=True))
          + f"; largest share of the summed weights {max(scorer.weight) / total:.2f}")
    bests, kinds = {}, {}
    for seed in (0, 1):
        b, k, _ = run_trace(simulate(seed=seed, n_benign=args.train_benign, repeats=2, profile="train"), scorer)
        bests.update(b)
        kinds.update(k)
    benign = sorted(v for k, v in bests.items() if kinds[k] in BENIGN_KINDS)
    thr = float(np.quantile(benign, 0.99))
    print(f"threshold (99th percentile of benign per-key max score on the training traces): {thr:.4f}; "
          f"highest benign score there {benign[-1]:.4f}")
    report(bests, kinds, thr, "training traces (profile train, seeds 0-1)")
    # actions change what the guard sees (a throttled key's window thins out, blocked sweeps stop making topics
    # common): the benign maximum under the actions, on the training traces, also bounds the rules
    top = benign[-1]
    for seed in (0, 1):
        print(f"\n== actions in-process on the training traces (seed {seed}; rules from the benign maximum "
              f"{top:.4f} so far)")
        res = enforce(simulate(seed=seed, n_benign=args.train_benign, repeats=2, profile="train"), scorer, thr, top,
                      args.throttle_interval)
        top = max(top, res["benign_max"])
    print(f"highest benign score on the training traces, with and without actions: {top:.4f}; rules: throttle at "
          f"{rule_thresholds(thr, top)[0]:.4f}, block at {rule_thresholds(thr, top)[1]:.4f}")
    return scorer, thr, top


def capped(events, tokens: int):
    """The events with every answer cut to at most `tokens` tokens (max_tokens too), as a server capping them."""
    out = []
    for e in events:
        req = dict(e.request, max_tokens=min(e.request.get("max_tokens") or tokens, tokens))
        usage = dict(e.response["usage"], completion_tokens=min(tokens, e.response["usage"]["completion_tokens"]))
        out.append(Event(e.key, e.ts, req, dict(e.response, usage=usage), e.label, e.kind))
    return out


def heldout(args, scorer, thr, cap: int | None = None):
    bests, kinds = {}, {}
    for seed in (11, 12):
        events = simulate(seed=seed, n_benign=args.heldout_benign, repeats=3, profile="heldout")
        b, k, _ = run_trace(capped(events, cap) if cap else events, scorer)
        bests.update(b)
        kinds.update(k)
    what = f", every answer cut to {cap} token(s)" if cap else ""
    return report(bests, kinds, thr, f"held-out traces, in-process (profile heldout, seeds 11-12{what})")


def rule_thresholds(thr: float, top: float) -> tuple[float, float]:
    """The server's throttle and block rules, from the training traces only (`top`: the highest benign score there,
    see `fit`): throttle half a logit above it, block one logit above it (benign accounts are never to be acted
    on; the fitted threshold `thr` is where the FPR figures are read, not an action)."""
    logit = math.log(top / (1 - top))
    return 1 / (1 + math.exp(-(logit + 0.5))), 1 / (1 + math.exp(-(logit + 1.0)))


class RecordedLengthEngine(Engine):
    """`distill serve`'s engine with the decoding replaced: every choice is exactly `max_tokens` copies of one token,
    with `top_logprobs` alternatives, and no forward pass (logits processors are not applied: the benchmark's
    rules only throttle and block). The replay asks each row for the answer length its trace recorded
    (`--recorded-lengths`), so the guard sees real answer lengths at a rate 2 CPU cores can serve."""

    def __init__(self, model, tokenizer, **kw):
        super().__init__(model, tokenizer, **kw)
        self.filler = tokenizer.encode(" the", add_special_tokens=False)[0]

    def submit(self, prompt_ids, params: SamplingParams, logits_processors=None, on_delta=None) -> Future:
        self.check(prompt_ids, params)
        raw = self.bytes_of[self.filler]
        text = raw.decode("utf-8", errors="replace")
        top = [(self.filler, -0.1)] + [(i, -5.0 - i) for i in range(max(0, params.top_logprobs - 1))]
        choices = []
        for c in range(params.n):
            toks = [TokenInfo(self.filler, text, raw, -0.1, top, j * len(text)) for j in range(params.max_tokens)]
            choices.append(Choice(c, text * params.max_tokens, toks, "length"))
            if on_delta is not None:
                on_delta(c, text * params.max_tokens, toks, "length")
        fut: Future = Future()
        fut.set_result(Completion(choices, len(prompt_ids)))
        return fut


def exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)  # uvicorn shuts down, then the guard's state is saved (the `finally` of serve_recorded)


def serve_recorded(args) -> None:
    """The server of the replay: `distill serve`'s app (keys, gate, observer, guard config, HTTP protocol) on
    RecordedLengthEngine."""
    import signal
    import socket

    import uvicorn

    from distill.keys.api import load_api_keys
    from distill.models.loading import load_model
    from distill.serve.app import Limits, create_app
    from distill.serve.httpserver import JsonErrorH11Protocol
    from distill.serve.protection import load_protection

    loaded = load_model(args.serve_recorded)
    engine = RecordedLengthEngine(loaded.model, loaded.tokenizer)
    protection = load_protection(None, args.guard_config, loaded.tokenizer)
    app = create_app(engine, "m", api_keys=load_api_keys(args.api_key_file), limits=Limits(), **protection.hooks())
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))  # bound here, so --port 0 reports the port it got (as `distill serve`)
    print(f"bench_guard: listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning", http=JsonErrorH11Protocol)).run(sockets=[sock])
    finally:
        engine.close()
        protection.close()


def server(args, scorer, thr, top):
    """Replay a held-out trace through `distill serve` and read the figures from its guard state."""
    work = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    py = [sys.executable, "-m", "distill.cli"]
    trace, keys, state = work / "trace.jsonl", work / "keys.txt", work / "state.json"
    subprocess.run(py + ["guard", "simulate", "--profile", "heldout", "--seed", "21", "--n-benign",
                         str(args.server_benign), "--days", str(args.days), "--repeats", str(args.server_repeats),
                         "--out", str(trace), "--keys-out", str(keys)], check=True)
    (work / "scorer.json").write_text(json.dumps(scorer.to_dict()))
    throttle, block = rule_thresholds(thr, top)
    (work / "guard.yaml").write_text(
        f"min_requests: {MIN_REQUESTS}\nstate_file: {state}\nscorer: {work / 'scorer.json'}\n"
        f"time_scale: {args.speed}\ncooldown_seconds: 3600\nthrottle_interval_seconds: {args.throttle_interval}\n"
        "persist_every_seconds: 600\n"
        f"rules:\n  - {{min_score: {throttle:.6f}, action: throttle}}\n  - {{min_score: {block:.6f}, action: block}}\n")
    model = tiny_model(work / "tiny")
    if args.engine == "recorded":
        cmd = [sys.executable, "-m", "benchmarks.guard.bench_guard", "--serve-recorded", str(model), "--api-key-file",
               str(keys), "--guard-config", str(work / "guard.yaml")]
    else:
        cmd = py + ["serve", str(model), "--served-name", "m", "--api-key-file", str(keys),
                    "--guard-config", str(work / "guard.yaml"), "--max-batch", "16", "--log-level", "warning"]
    print("\n$ " + " ".join(cmd[1:]).replace(str(work), "$WORK") + " --port 0", flush=True)
    with Server(cmd, work / "serve.log") as srv:
        t0 = time.time()
        cmd = py + ["guard", "replay", str(trace), "--url", srv.url, "--keys", str(keys),
                    "--speed", str(args.speed), "--out", str(work / "replayed.jsonl"), "--concurrency", "16",
                    "--wait-ready", "600"]
        if args.engine == "recorded":
            cmd += ["--recorded-lengths", "--max-tokens", "1024"]
        elif args.max_tokens:
            cmd += ["--max-tokens", str(args.max_tokens)]
        print("\n$ " + " ".join(cmd[2:]).replace(str(work), "$WORK"), flush=True)
        subprocess.run(cmd, check=True)
        print(f"replay took {time.time() - t0:.0f} s", flush=True)
    st = json.loads(state.read_text())
    rows = [json.loads(line) for line in (work / "replayed.jsonl").read_text().splitlines()]
    kinds = {r["key"]: r["kind"] for r in rows}
    best = {k: 0.0 for k in kinds}
    for name, acc in st["accounts"].items():
        if name in best:
            best[name] = acc.get("max_score", 0.0)
    out = report(best, kinds, thr, f"held-out trace replayed through distill serve (profile heldout, seed 21, "
                                   f"{len(rows)} requests, time compressed x{args.speed})")
    by_key = defaultdict(list)
    for r in rows:
        by_key[r["key"]].append((r["status"], r["sent_s"] * args.speed))
    out.update(served_after(by_key, kinds, args.throttle_interval))
    oh = st.get("overhead") or {}
    print(f"scoring overhead inside the server: {oh.get('ms_per_request')} ms per request (observe + gate, "
          f"{oh.get('requests')} requests)")
    out["overhead_ms"] = oh.get("ms_per_request")
    print(f"(work folder: {work})")
    return out


def served_after(by_key: dict[str, list[tuple[int, float]]], kinds: dict[str, str], interval: float) -> dict:
    """Per flagged account, its requests after its first refusal (429 throttle, 403 block) and how many of those
    were served; `by_key`: per key its (HTTP status, guard time sent) in order. Also the served requests that came
    sooner than half a throttle interval after the previous served one of the same account (the rate, broken)."""
    after = {"block": [0, 0], "throttle": [0, 0]}
    excess, benign_acted = 0, []
    for key, rs in by_key.items():
        if kinds[key] in BENIGN_KINDS and any(code != 200 for code, _ in rs):
            benign_acted.append(key)
        for action, refusal in (("block", 403), ("throttle", 429)):
            first = next((i for i, (code, _) in enumerate(rs) if code == refusal), None)
            if first is None:
                continue
            later = rs[first + 1:]
            after[action][0] += sum(code == 200 for code, _ in later)
            after[action][1] += len(later)
            if action == "throttle":
                served = [t for code, t in later if code == 200]
                excess += sum(b - a < 0.5 * interval for a, b in zip(served, served[1:], strict=False))
    out = {}
    for action, (served, total) in after.items():
        print(f"requests served after an account's first {action}: {served} of {total} "
              f"({served / total if total else 0.0:.4f})")
        out[f"served_after_{action}"] = [served, total]
    print(f"throttle: {excess} requests served less than half an interval ({interval:g} guard s) after the previous "
          f"served one of the same account (the rate, broken)")
    print(f"benign accounts acted on (any request refused): {len(benign_acted)}" +
          (f" ({', '.join(sorted(benign_acted)[:5])})" if benign_acted else ""))
    out["throttle_excess"], out["benign_acted_on"] = excess, len(benign_acted)
    return out


def enforce(events, scorer: LogisticScorer, thr: float, top: float, interval: float) -> dict:
    """The server's decisions in-process: each event asks the gate first (a refused one is observed as the
    refusal the server sends), as `distill serve` does, with the benchmark's throttle and block rules."""
    throttle, block = rule_thresholds(thr, top)
    g = Guard(GuardConfig(min_requests=MIN_REQUESTS, cooldown_seconds=3600, throttle_interval_seconds=interval,
                          rules=[Rule(throttle, "throttle"), Rule(block, "block")]), scorer)
    by_key, kinds = defaultdict(list), {}
    for e in events:
        kinds[e.key] = e.kind
        a = g.gate(e.key, e.ts)
        if a is None:
            g.observe(e.key, e.request, e.response, e.ts)
        else:
            code = "blocked" if a == "block" else "throttled"
            g.observe(e.key, e.request, {"error": {"code": code}}, e.ts)
        by_key[e.key].append((200 if a is None else 403 if a == "block" else 429, e.ts))
    out = report({k: st["max_score"] for k, st in g.state.items()}, kinds, thr, "the same, scores under these actions")
    return out | served_after(by_key, kinds, interval)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-server", action="store_true", help="skip the replay through distill serve")
    ap.add_argument("--train-benign", type=int, default=100)
    ap.add_argument("--heldout-benign", type=int, default=150)
    ap.add_argument("--server-benign", type=int, default=100)
    ap.add_argument("--server-repeats", type=int, default=3, help="instances of each campaign kind in the replay")
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--speed", type=float, default=300.0, help="time compression of the replay")
    ap.add_argument("--engine", choices=("recorded", "tiny"), default="recorded",
                    help="recorded: distill serve's app answering each row with the answer length its trace "
                         "recorded (RecordedLengthEngine); tiny: `distill serve` on the tiny random model, every "
                         "answer capped at --max-tokens")
    ap.add_argument("--max-tokens", type=int, default=1,
                    help="--engine tiny: cap on each replayed request's max_tokens (the tiny model's decode steps "
                         "are slow on 2 cores: 1 token is ~127 requests/s, 8 tokens ~5)")
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)  # --serve-recorded: 0 = a free port
    ap.add_argument("--throttle-interval", type=float, default=3600.0, help="guard seconds per throttled request")
    ap.add_argument("--serve-recorded", metavar="MODEL", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--api-key-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--guard-config", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    announce()
    if args.serve_recorded:
        serve_recorded(args)
        return
    scorer, thr, top = fit(args)
    heldout(args, scorer, thr)
    heldout(args, scorer, thr, cap=1)
    for seed in (11, 12):
        print(f"\n== actions in-process (profile heldout, seed {seed}; gate then observe per request, throttle at "
              f"{rule_thresholds(thr, top)[0]:.4f}, block at {rule_thresholds(thr, top)[1]:.4f}, one request per "
              f"{args.throttle_interval:g} s when throttled)")
        enforce(simulate(seed=seed, n_benign=args.heldout_benign, repeats=3, profile="heldout"), scorer, thr, top,
                args.throttle_interval)
    g = Guard(GuardConfig(), scorer)
    test = simulate(seed=13, n_benign=args.heldout_benign, profile="heldout")
    t0 = time.perf_counter()
    for e in test:
        g.observe(e.key, e.request, e.response, e.ts)
        g.gate(e.key, e.ts)
    dt = (time.perf_counter() - t0) / len(test)
    print(f"\nscoring overhead in-process: {dt * 1e3:.3f} ms per request (observe + gate, {len(test)} requests)")
    if not args.no_server:
        server(args, scorer, thr, top)


if __name__ == "__main__":
    main()

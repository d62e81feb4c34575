"""`distill guard`: the distillation-traffic guard's accounts and evidence (report), simulated traffic (simulate),
and the replay of a trace against a running `distill serve` (replay)."""

from __future__ import annotations

import argparse
import json
import sys

from distill.commands import add_actions
from distill.errors import DistillError

NAME = "guard"
HELP = ("distillation-traffic guard: accounts with scores and evidence (report), the benign reference (calibrate), "
        "simulated traffic (simulate, replay)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    rp, cp, sp, pp = add_actions(
        parser, "guard_action",
        ("report", "list accounts with their scores, actions and evidence", None),
        ("calibrate", "fit the benign reference from the owner's own traffic (a traffic log or a trace)", None),
        ("simulate", "write a simulated traffic trace (benign accounts and extraction campaigns) as JSONL", None),
        ("replay", "send a trace to a running `distill serve`, each row with its account's key, time-compressed",
         None), required=False)
    rp.add_argument("--state", default="guard_state.json", help="guard state file (default guard_state.json)")
    rp.add_argument("--min-score", type=float, default=0.0, help="only accounts scoring at least this")
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    cp.add_argument("--traffic", required=True, action="append",
                    help="the guard's traffic_log (JSONL, written by `distill serve` with `traffic_log:` in its guard "
                         "config), or a trace; repeat for several files. Ordinary traffic only: accounts the owner "
                         "knows to be abusive should be left out (rows of a trace labelled other than benign are)")
    cp.add_argument("--out", required=True, help="calibration JSON to write (the guard config's `calibration:`)")
    cp.add_argument("--guard-config", default=None,
                    help="the serving guard's config: its window settings are the calibration's (default: 1 day, "
                         "2000 requests)")
    cp.add_argument("--leave-out", default="actor", choices=("actor", "account"),
                    help="how each logged account is judged as a newcomer: without every account linked to it by "
                         "shared prompt frames ('actor', the default: the rate held on fresh traffic) or without its "
                         "own records only ('account': more power, but measured to act on about twice the stated "
                         "rate of fresh benign account-days). docs/protect.md")
    sp.add_argument("--out", required=True, help="trace file to write (JSONL, one request per line, in time order)")
    sp.add_argument("--keys-out", default=None,
                    help="also write a fresh random key for every account (name:key lines, mode 0600), the "
                         "--api-key-file of `distill serve` and the --keys of `distill guard replay`")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--profile", default="heldout", choices=("train", "heldout"),
                    help="simulator settings (the default scorer was fitted on 'train')")
    sp.add_argument("--n-benign", type=int, default=60, help="benign accounts (plus a tutorial group and apps)")
    sp.add_argument("--days", type=float, default=2.0)
    sp.add_argument("--campaigns", default=None, help="comma-separated campaign kinds (default: all)")
    sp.add_argument("--repeats", type=int, default=1, help="instances of each campaign kind")
    pp.add_argument("trace", help="trace file from `distill guard simulate`")
    pp.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    pp.add_argument("--keys", required=True, help="name:key file with a key for every account of the trace")
    pp.add_argument("--speed", type=float, default=1.0,
                    help="time compression: a row at ts is sent (ts - ts0) / SPEED s after the start (run the "
                         "server's guard with time_scale: SPEED)")
    pp.add_argument("--model", default="m", help="model name sent in every request (the server's --served-name)")
    pp.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    pp.add_argument("--max-tokens", type=int, default=None,
                    help="cap every request's max_tokens (and set it where a row has none)")
    pp.add_argument("--recorded-lengths", action="store_true",
                    help="ask each row for the answer length its trace recorded (max_tokens = the row's "
                         "completion_tokens; --max-tokens still caps it), so the guard sees the trace's answer lengths")
    pp.add_argument("--out", default=None, help="JSONL with each row's HTTP status and error code (no keys)")
    pp.add_argument("--wait-ready", type=float, default=0.0, help="wait up to this many seconds for the server")


def _simulate(args: argparse.Namespace) -> int:
    from distill.protection.guard.replay import write_keys, write_trace
    from distill.protection.guard.simulate import CAMPAIGNS, simulate

    kinds = tuple(CAMPAIGNS if args.campaigns is None else [c.strip() for c in args.campaigns.split(",") if c.strip()])
    unknown = [k for k in kinds if k not in CAMPAIGNS]
    if unknown:
        raise DistillError(f"unknown campaign kind {unknown[0]!r}", where="--campaigns",
                           fix="choose among " + ", ".join(CAMPAIGNS))
    if args.n_benign < 0 or args.days <= 0 or args.repeats < 0:
        raise DistillError("--n-benign and --repeats must be non-negative and --days positive",
                           where="distill guard simulate")
    events = simulate(seed=args.seed, n_benign=args.n_benign, campaigns=kinds, days=args.days,
                      repeats=args.repeats, profile=args.profile)
    if args.keys_out:
        write_keys([e.key for e in events], args.keys_out)
    n = write_trace(events, args.out)
    accounts = {e.key: e.kind for e in events}
    by_kind: dict[str, int] = {}
    for kind in accounts.values():
        by_kind[kind] = by_kind.get(kind, 0) + 1
    print(f"wrote {n} requests of {len(accounts)} accounts to {args.out} (" +
          ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) + ")" +
          (f"; keys in {args.keys_out}" if args.keys_out else ""))
    return 0


def _wait_ready(url: str, key: str, seconds: float) -> None:
    import time

    import httpx

    base = url.rstrip("/")
    base = base[:-3] if base.endswith("/v1") else base
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(base + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise DistillError(f"the server did not answer within {seconds:g} s", where=url,
                               fix="start `distill serve` first, or raise --wait-ready")
        time.sleep(0.5)


def _replay(args: argparse.Namespace) -> int:
    from distill.keys.api import load_api_keys
    from distill.protection.guard.replay import read_trace, replay

    rows = read_trace(args.trace)
    keys = {name: key for key, name in load_api_keys(args.keys).items()}
    if args.wait_ready > 0 and keys:
        _wait_ready(args.url, next(iter(keys.values())), args.wait_ready)

    def progress(i: int, n: int) -> None:
        print(f"  {i}/{n} rows sent", file=sys.stderr, flush=True)

    summary = replay(rows, args.url, keys, speed=args.speed, model=args.model, concurrency=args.concurrency,
                     max_tokens=args.max_tokens, recorded_lengths=args.recorded_lengths, out=args.out,
                     progress=progress)
    print(json.dumps(summary))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from distill.protection.guard.actions import GuardConfig, load_config
    from distill.protection.guard.calibration import fit_calibration, save_calibration
    from distill.protection.guard.calibration import summary as calibration_summary
    from distill.protection.guard.traffic import benign_records, read_traffic

    cfg = load_config(args.guard_config) if args.guard_config else GuardConfig()
    rows = [r for path in args.traffic for r in read_traffic(path) if r.get("label", "benign") == "benign"]
    rows.sort(key=lambda r: r["entry"]["ts"] if "entry" in r else r["ts"])
    records, pool, links = benign_records(rows, cfg.window_seconds, cfg.max_window_requests)
    meta = {"window_seconds": cfg.window_seconds, "max_window_requests": cfg.max_window_requests,
            "sources": [str(p) for p in args.traffic]}
    cal = fit_calibration(records, meta, pool=pool, links=links, leave_out=args.leave_out)
    save_calibration(cal, args.out)
    print(f"wrote {args.out}: " + calibration_summary(cal))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.guard_action == "calibrate":
        return _calibrate(args)
    if args.guard_action == "simulate":
        return _simulate(args)
    if args.guard_action == "replay":
        return _replay(args)
    if args.guard_action != "report":
        raise DistillError("choose an action: `distill guard report`, `calibrate`, `simulate` or `replay`",
                           fix="see `distill guard --help`")
    from distill.protection.guard.report import format_table, load_state, rows

    state = load_state(args.state)
    state["accounts"] = {k: v for k, v in state.get("accounts", {}).items()
                         if v.get("score", 0.0) >= args.min_score}
    if args.json:
        print(json.dumps({"accounts": rows(state), "rules": state.get("rules", [])}))
    else:
        print(format_table(state))
    return 0

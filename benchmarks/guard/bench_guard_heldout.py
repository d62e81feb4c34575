"""The calibrated guard judged on traffic it never saw, written independently of it (issue 24).

    python -m benchmarks.guard.bench_guard_heldout [--sources A,B,sim] [--server A] [--out results/guard/guard_heldout.json]

Nothing here is fitted on attacks: per traffic source, the guard is calibrated (`distill guard calibrate`'s
`benign_records` + `fit_calibration`) on that owner's *benign* history only (a benign-only trace, seed 100, 14 days),
then judged on a fresh trace of the same source (seed 200: fresh benign accounts and every campaign kind) with its
rules applied in-process (gate, then observe, per request, in time order), and its benign rate measured on two more
fresh benign-only traces (seeds 300, 301). Every campaign kind is thus held out by construction: leave-one-kind-out
is the only mode there is (the shipped logistic score, fitted on the old simulator's "train" kinds, is no longer
compared). `--leave-out actor,account` runs each source under both of the calibration's jackknife units (tags
`SOURCE` and `SOURCE-account`).

Sources: `A` and `B` are `benchmarks/guard/guard_traffic.py`, `C` and `D` `benchmarks/guard/guard_traffic_c.py`, `E` and `F`
`benchmarks/guard/guard_traffic_e.py`, `G` and `H`
`benchmarks/guard/guard_traffic_g.py` (each written by a helper who never read the guard's code nor the generators before
it; nine shared campaign kinds, two more per generator from C on, invented against a guard of this design; hard
benign kinds of their own); `sim` is `distill guard simulate --profile heldout`. The guard was developed on `sim` and
on `A` with seeds 7-9; B was run once on an earlier design (`results/guard/guard_heldout_first_design_B.txt`: nothing
caught), C-F never before the figures reported; A's reported seeds are not the development seeds. Rules: throttle at score
>= 1 - RATE (at most RATE of benign account-days), block at >= 1 - RATE / 5 where the calibration can state it.
`--server SOURCE` also replays that source's evaluation trace through `distill serve` (its app on
bench_guard's RecordedLengthEngine, one API key per account) and reads the figures from the server's guard state.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import RESULTS, Server, tiny_model, write_result
from distill.protection.guard import Guard, GuardConfig, Rule
from distill.protection.guard.calibration import fit_calibration, save_calibration
from distill.protection.guard.core import UNACTED
from distill.protection.guard.traffic import benign_records

RATE = 0.005  # throttle: at most 1 in 200 benign account-days (1% of accounts over a 2-day trace)
CAL_SEED, EVAL_SEED, FRESH_SEEDS = 100, 200, (300, 301)
CAL_DAYS = 14.0  # the owner's benign history the guard is calibrated on
EVAL_DAYS, WARMUP = 3.0, 86400.0  # judged traces: 3 days, the guard acting from the second


def traffic(source: str, seed: int, days: float, benign_only: bool) -> list[dict]:
    """Trace rows of a source, in time order."""
    if source == "sim":
        from distill.protection.guard.simulate import CAMPAIGNS, simulate

        events = simulate(seed=seed, n_benign=150, campaigns=() if benign_only else CAMPAIGNS, days=days, repeats=2,
                          profile="heldout")
        rows = [e.row() for e in events]
        for r in rows:
            r["campaign"] = r["key"] if r["label"] == "benign" else f"{r['kind']}-{r['key'].rsplit('-', 1)[0]}"
        return rows
    name = {"C": "guard_traffic_c", "D": "guard_traffic_c", "E": "guard_traffic_e", "F": "guard_traffic_e",
            "G": "guard_traffic_g", "H": "guard_traffic_g"}.get(
        source, "guard_traffic")
    mod = importlib.import_module(f"benchmarks.guard.{name}")
    return mod.generate(source, seed, days=days, benign_only=benign_only)


def response(row: dict) -> dict:
    return {"usage": {"prompt_tokens": 0, "completion_tokens": int(row.get("completion_tokens") or 1)}}


def rules(cal) -> list[Rule]:
    out = [Rule(1 - RATE, "throttle")]
    if RATE / 5 >= cal.smallest_rate:
        out.append(Rule(1 - RATE / 5, "block"))
    return out


def enforce(rows: list[dict], cal_path: Path, cal) -> dict:
    """Apply the guard in-process, request by request, its rules from the second day on (the first is its warm-up:
    windows and shared word counts fill up, as in the calibration, whose first day is left out); per account:
    label, kind, campaign, first action, requests before it, requests served after it."""
    g = Guard(GuardConfig(calibration=str(cal_path), rules=rules(cal), cooldown_seconds=3600,
                          throttle_interval_seconds=3600, warmup_seconds=WARMUP), restore=False)
    acc: dict[str, dict] = {}
    t_start: dict[str, float] = {}
    for r in rows:
        k, ts = r["key"], float(r["ts"])
        a = acc.setdefault(k, {"label": r["label"], "kind": r["kind"], "campaign": r.get("campaign", k),
                               "requests": 0, "served": 0, "first": None, "before": 0, "served_after": 0,
                               "action": "none"})
        t_start.setdefault(r.get("campaign", k), ts)
        a["requests"] += 1
        refused = g.gate(k, ts)
        resp = {"error": {"code": "blocked" if refused == "block" else "throttled"}} if refused else response(r)
        action = g.observe(k, r["request"], resp, ts)
        if not refused:
            a["served"] += 1
            if a["first"] is not None:
                a["served_after"] += 1
        if action not in UNACTED and a["first"] is None:
            a["first"] = ts - t_start[a["campaign"]]
            a["before"] = a["requests"]
        a["action"] = action if action not in UNACTED else a["action"]
    return acc


def summarise(acc: dict[str, dict]) -> dict:
    """Per campaign kind: instances and keys acted on, hours and requests to the first action, share of the
    campaign's requests served after it; per benign kind: accounts acted on."""
    out: dict = {"campaigns": {}, "benign": {}}
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for a in acc.values():
        by_kind[(a["label"], a["kind"])].append(a)
    for (label, kind), accs in sorted(by_kind.items()):
        acted = [a for a in accs if a["first"] is not None]
        if label == "benign":
            out["benign"][kind] = {"accounts": len(accs), "acted_on": len(acted)}
            continue
        camps: dict[str, list[dict]] = defaultdict(list)
        for a in accs:
            camps[a["campaign"]].append(a)
        caught = [c for c in camps.values() if any(a["first"] is not None for a in c)]
        served = sum(a["served"] for a in accs)
        after = sum(a["served_after"] for a in accs)
        firsts = [min(a["first"] for a in c if a["first"] is not None) for c in caught]
        out["campaigns"][kind] = {
            "instances": len(camps), "instances_acted_on": len(caught), "keys": len(accs), "keys_acted_on": len(acted),
            "tpr_keys": round(len(acted) / len(accs), 3), "requests": sum(a["requests"] for a in accs),
            "served": served, "served_after_first_action": after,
            "hours_to_first_action": [round(f / 3600, 2) for f in firsts],
            "requests_before_first_action": sorted(a["before"] for a in acted)[:3]}
    n_b = sum(v["accounts"] for v in out["benign"].values())
    out["benign_acted_on"] = sum(v["acted_on"] for v in out["benign"].values())
    out["benign_accounts"] = n_b
    return out


def benign_rate(rows_list: list[list[dict]], cal_path: Path) -> dict:
    """Fresh benign traffic (3 days each), observed without actions: the share of account-days after the first
    (the warm-up) whose highest score reaches each rule's min_score, against the rate it states (with a 95%
    binomial interval)."""
    from scipy.stats import beta

    out = {}
    worst: dict[tuple[int, str, int], float] = {}
    for i, rows in enumerate(rows_list):
        g = Guard(GuardConfig(calibration=str(cal_path), rules=[]), restore=False)
        t0 = rows[0]["ts"]
        for r in rows:
            g.observe(r["key"], r["request"], response(r), r["ts"])
            st = g.state[r["key"]]
            day = (i, r["key"], int((r["ts"] - t0) // 86400))
            if st["requests_in_window"] >= 3 and day[2] >= 1:
                worst[day] = max(worst.get(day, 0.0), st["score"])
    n = len(worst)
    for rate in (0.01, RATE):
        k = sum(1 for v in worst.values() if v >= 1 - rate - 1e-12)
        lo = beta.ppf(0.025, k, n - k + 1) if k else 0.0
        hi = beta.ppf(0.975, k + 1, n - k)
        by_day = defaultdict(int)
        for (_, _, day), v in worst.items():
            by_day[day] += v >= 1 - rate - 1e-12
        out[f"rate_{rate:g}"] = {"account_days": n, "acted": k, "measured": round(k / n, 4),
                                 "ci95": [round(float(lo), 4), round(float(hi), 4)], "target": rate,
                                 "acted_by_day": dict(sorted(by_day.items()))}
    return out


def run_source(source: str, work: Path, leave_out: str = "actor") -> tuple[dict, Path, list[dict]]:
    t = time.time()
    cal_rows = traffic(source, CAL_SEED, CAL_DAYS, True)
    records, pool, links = benign_records(cal_rows)
    cal = fit_calibration(records, {"source": source, "seed": CAL_SEED, "days": CAL_DAYS}, pool=pool, links=links,
                          leave_out=leave_out)
    tag = source + ("" if leave_out == "actor" else f"-{leave_out}")
    cal_path = save_calibration(cal, work / f"cal-{tag}.json")
    ev_rows = traffic(source, EVAL_SEED, EVAL_DAYS, False)
    res = summarise(enforce(ev_rows, cal_path, cal))
    res["benign_rate_fresh"] = benign_rate([traffic(source, s, EVAL_DAYS, True) for s in FRESH_SEEDS], cal_path)
    res["calibration"] = cal.meta
    res["seconds"] = round(time.time() - t, 1)
    return res, cal_path, ev_rows


def print_table(tag: str, res: dict) -> None:
    print(f"\n== {tag}: benign accounts acted on {res['benign_acted_on']}/{res['benign_accounts']}; calibration "
          f"{res['calibration']['calibration_account_days']} account-days ({res['seconds']} s)")
    for kind, c in res["campaigns"].items():
        print(f"  {kind:<22} instances {c['instances_acted_on']}/{c['instances']}  keys {c['keys_acted_on']}/"
              f"{c['keys']}  served after first action {c['served_after_first_action']}/{c['served']}  "
              f"hours to first {c['hours_to_first_action']}")
    for kind, b in res["benign"].items():
        if b["acted_on"]:
            print(f"  benign {kind}: {b['acted_on']}/{b['accounts']} acted on")
    for k, v in res["benign_rate_fresh"].items():
        print(f"  fresh benign {k}: {v['acted']}/{v['account_days']} = {v['measured']} (95% CI {v['ci95']}, "
              f"target {v['target']}; by day {v['acted_by_day']})")


def through_server(source: str, rows: list[dict], cal_path: Path, cal, work: Path, speed: float) -> dict:
    """Replay the evaluation trace through `distill serve` (RecordedLengthEngine) and read its guard state."""
    from distill.protection.guard.replay import write_keys

    trace, keys, state = work / f"trace-{source}.jsonl", work / f"keys-{source}.txt", work / f"state-{source}.json"
    trace.write_text("".join(json.dumps({k: r[k] for k in ("key", "ts", "label", "kind", "request",
                                                           "completion_tokens")}) + "\n" for r in rows))
    write_keys([r["key"] for r in rows], keys)
    rl = "".join(f"  - {{min_score: {r.min_score:.6f}, action: {r.action}}}\n" for r in rules(cal))
    (work / "guard.yaml").write_text(
        f"state_file: {state}\ncalibration: {cal_path}\ntime_scale: {speed}\ncooldown_seconds: 3600\n"
        f"throttle_interval_seconds: 3600\npersist_every_seconds: 600\nwarmup_seconds: {WARMUP}\nrules:\n{rl}")
    model = tiny_model(work / "tiny")
    with Server([sys.executable, "-m", "benchmarks.guard.bench_guard", "--serve-recorded", str(model),
                 "--api-key-file", str(keys), "--guard-config", str(work / "guard.yaml")], work / "serve.log") as srv:
        subprocess.run([sys.executable, "-m", "distill.cli", "guard", "replay", str(trace), "--url",
                        srv.url, "--keys", str(keys), "--speed", str(speed), "--out",
                        str(work / "replayed.jsonl"), "--concurrency", "16", "--wait-ready", "600",
                        "--recorded-lengths", "--max-tokens", "1024"], check=True)
    st = json.loads(state.read_text())["accounts"]
    replayed = [json.loads(x) for x in (work / "replayed.jsonl").read_text().splitlines()]
    acc: dict[str, dict] = {}
    for r in rows:
        a = acc.setdefault(r["key"], {"label": r["label"], "kind": r["kind"], "campaign": r.get("campaign", r["key"]),
                                      "requests": 0, "served": 0, "first": None, "before": 0, "served_after": 0})
        a["requests"] += 1
    first_refused: dict[str, int] = {}
    for x in replayed:
        a = acc[x["key"]]
        if x["status"] == 200:
            a["served"] += 1
            if x["key"] in first_refused:
                a["served_after"] += 1
        elif x["code"] in ("throttled", "blocked"):
            first_refused.setdefault(x["key"], x["i"])
    start = {}
    for r in rows:
        start.setdefault(r.get("campaign", r["key"]), r["ts"])
    for name, a in acc.items():
        changes = (st.get(name) or {}).get("changes") or []
        if any(c["to"] not in UNACTED for c in changes) and name in first_refused:
            # time to the first refusal: the trace time of the first refused row, from the campaign's first row
            a["first"] = rows[first_refused[name]]["ts"] - start[a["campaign"]]
        elif any(c["to"] not in UNACTED for c in changes):
            a["first"] = 0.0  # acted on, never refused after it (it sent nothing more)
    out = summarise(acc)
    out["overhead_ms"] = None
    return out


def markdown(results: dict) -> str:
    """The results as docs/benchmarks.md's tables: instances / keys acted on per campaign kind and source, then
    benign accounts acted on and the fresh benign rate against its target."""
    tags = [t for t in results["sources"] if not t.endswith("-server")]
    kinds = sorted({k for t in tags for k in results["sources"][t]["campaigns"]})
    out = ["| campaign kind | " + " | ".join(tags) + " |", "|---|" + "---|" * len(tags)]
    for kind in kinds:
        cells = []
        for t in tags:
            c = results["sources"][t]["campaigns"].get(kind)
            cells.append("–" if c is None else f"{c['instances_acted_on']}/{c['instances']}" +
                         (f" ({c['keys_acted_on']}/{c['keys']} keys)" if c["keys"] > c["instances"] else ""))
        out.append(f"| {kind} | " + " | ".join(cells) + " |")
    out.append("| **benign accounts acted on** | " + " | ".join(
        f"{results['sources'][t]['benign_acted_on']}/{results['sources'][t]['benign_accounts']}" for t in tags) + " |")
    for rate in ("0.01", f"{RATE:g}"):
        cells = []
        for t in tags:
            r = results["sources"][t]["benign_rate_fresh"][f"rate_{rate}"]
            cells.append(f"{r['acted']}/{r['account_days']} = {100 * r['measured']:.2f}% "
                         f"[{100 * r['ci95'][0]:.2f}, {100 * r['ci95'][1]:.2f}]")
        out.append(f"| fresh benign account-days at rate {rate} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", default="C,D,E,F,B,A,sim")
    ap.add_argument("--server", default=None, help="also replay this source's evaluation trace through distill serve")
    ap.add_argument("--speed", type=float, default=400.0)
    ap.add_argument("--out", default=str(RESULTS / "guard" / "guard_heldout.json"))
    ap.add_argument("--markdown", default=None, help="print the tables of a results JSON and exit")
    ap.add_argument("--leave-out", default="actor",
                    help="the calibration's jackknife unit(s), comma-separated: actor (the default), account")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="added to every seed (calibration, judged and fresh traces): new draws of each source")
    args = ap.parse_args()
    global CAL_SEED, EVAL_SEED, FRESH_SEEDS
    CAL_SEED, EVAL_SEED = CAL_SEED + args.seed_offset, EVAL_SEED + args.seed_offset
    FRESH_SEEDS = tuple(s + args.seed_offset for s in FRESH_SEEDS)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-guard-heldout-"))
    results: dict = {"rate": RATE, "seeds": {"calibration": CAL_SEED, "judged": EVAL_SEED, "fresh": list(FRESH_SEEDS)},
                     "sources": {}}
    for source in args.sources.split(","):
        for leave_out in args.leave_out.split(","):
            tag = source + ("" if leave_out == "actor" else f"-{leave_out}")
            res, cal_path, ev_rows = run_source(source, work, leave_out)
            print_table(tag, res)
            results["sources"][tag] = res
            if args.server == source and leave_out == "actor":
                from distill.protection.guard.calibration import load_calibration

                srv = through_server(source, ev_rows, cal_path, load_calibration(cal_path), work, args.speed)
                print_table(f"{tag} through distill serve", {**srv, "calibration": res["calibration"],
                                                            "seconds": "-", "benign_rate_fresh": {}})
                results["sources"][tag + "-server"] = srv
    write_result(args.out, results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

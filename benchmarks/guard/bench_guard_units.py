"""How the calibration's design choices trade power for the rate, on the development sources (issue 24).

    python -m benchmarks.guard.bench_guard_units [--sources sim,A,C,E] [--seed-offset 1000]

Two choices of `fit_calibration` are compared, each over the same observe-only records: the jackknife's unit
(`leave_out`: an account's whole actor, or the account alone) and whether the relational statistics
(`cross_key`, and the fitted logistic score that carries it) are compared. Per source: the calibration (14 days of
benign traffic), the fresh benign account-days acted on at the stated rate (two fresh 3-day traces, the first day
of each left out as the guard's warm-up) and the campaign instances of a judged trace whose any key's largest
departure after the first day reaches the rule. Unlike `bench_guard_heldout` (the figures that count), nothing here
acts, so a throttled key's window does not thin out: it is the fast loop for choosing a design, run on the sources
and seeds the design is chosen on (offset 1000), never on those it is judged on.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from benchmarks.common import RESULTS, write_result
from benchmarks.guard.bench_guard_heldout import (
    CAL_DAYS,
    CAL_SEED,
    EVAL_DAYS,
    EVAL_SEED,
    FRESH_SEEDS,
    RATE,
    traffic,
)
from distill.protection.guard.calibration import (
    BANDS,
    COMPARED,
    DAY,
    RELATIONAL,
    Calibration,
    band_of,
    fit_calibration,
)
from distill.protection.guard.traffic import benign_records

VARIANTS = {  # name -> (leave_out, compared statistics)
    "actor": ("actor", COMPARED),
    "account": ("account", COMPARED),
    "actor+relational": ("actor", COMPARED + RELATIONAL + ("logistic",)),
    "account+relational": ("account", COMPARED + RELATIONAL + ("logistic",)),
}


def departures(cal: Calibration, records: list[tuple[str, float, dict[str, float]]]) -> np.ndarray:
    """D of every record against the whole calibration (as `Calibration.assess`, vectorised per band; 0 below the
    first band)."""
    X = np.array([cal.vector(st) for _, _, st in records])
    band = np.array([-1 if band_of(int(st.get("requests", 0))) is None else band_of(int(st.get("requests", 0)))
                     for _, _, st in records])
    D = np.zeros(len(records))
    for b in range(len(BANDS)):
        rows = np.flatnonzero(band == b)
        i = next((i for i in range(b, -1, -1) if cal.bands[i] is not None), None)
        if not len(rows) or i is None:
            continue
        S, R = cal.bands[i].surprise(X[rows]), cal.bands[i].surprises
        for c in range(0, len(rows), 256):
            s = S[c:c + 256]
            D[rows[c:c + 256]] = np.square(np.maximum(0.0, s[:, None, :] - R[None])).sum(axis=2).min(axis=1)
    return D


def acted(cal: Calibration, d: float) -> bool:
    return d > 0 and cal.p_value(d) <= RATE + 1e-12


def judge(cal: Calibration, judged: list, fresh: list) -> dict:
    out: dict = {}
    n = k = 0
    for records in fresh:
        t0, worst = records[0][1], defaultdict(float)
        for (a, ts, st), d in zip(records, departures(cal, records), strict=True):
            if ts >= t0 + DAY and band_of(int(st.get("requests", 0))) is not None:
                worst[(a, int((ts - t0) // DAY))] = max(worst[(a, int((ts - t0) // DAY))], d)
        n, k = n + len(worst), k + sum(acted(cal, d) for d in worst.values())
    out["fresh_benign_account_days"] = {"acted": k, "of": n, "rate": round(k / max(1, n), 4), "target": RATE}
    records, labels = judged
    t0, best = records[0][1], defaultdict(float)
    for (a, ts, _), d in zip(records, departures(cal, records), strict=True):
        if ts >= t0 + DAY:
            best[a] = max(best[a], d)
    kinds: dict = defaultdict(lambda: defaultdict(bool))
    benign = [0, 0]
    for key, (label, kind, campaign) in labels.items():
        hit = acted(cal, best.get(key, 0.0))
        if label == "benign":
            benign = [benign[0] + hit, benign[1] + 1]
        else:
            kinds[kind][campaign] |= hit
    out["campaigns"] = {kind: {"instances_acted_on": sum(c.values()), "instances": len(c)}
                        for kind, c in sorted(kinds.items())}
    out["caught"] = [sum(v["instances_acted_on"] for v in out["campaigns"].values()),
                     sum(v["instances"] for v in out["campaigns"].values())]
    out["benign_accounts_acted_on"] = benign
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", default="sim,A,C,E")
    ap.add_argument("--seed-offset", type=int, default=1000, help="development seeds (never the judged ones)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=str(RESULTS / "guard" / "guard_units.json"))
    args = ap.parse_args()
    off = args.seed_offset
    results: dict = {"rate": RATE, "seed_offset": off, "sources": {}}
    for source in args.sources.split(","):
        cal_records, pool, links = benign_records(traffic(source, CAL_SEED + off, CAL_DAYS, True))
        rows = traffic(source, EVAL_SEED + off, EVAL_DAYS, False)
        labels = {r["key"]: (r["label"], r["kind"], r.get("campaign", r["key"])) for r in rows}
        judged = (benign_records(rows)[0], labels)
        fresh = [benign_records(traffic(source, s + off, EVAL_DAYS, True))[0] for s in FRESH_SEEDS]
        for name in args.variants.split(","):
            leave_out, stats = VARIANTS[name]
            t = time.time()
            cal = fit_calibration(cal_records, {"source": source}, statistics=stats, pool=pool, links=links,
                                  leave_out=leave_out)
            res = judge(cal, judged, fresh)
            f = res["fresh_benign_account_days"]
            print(f"{source:<4} {name:<19} fresh benign {f['acted']}/{f['of']} = {100 * f['rate']:.2f}%  campaigns "
                  f"{res['caught'][0]}/{res['caught'][1]}  benign accounts {res['benign_accounts_acted_on'][0]}/"
                  f"{res['benign_accounts_acted_on'][1]}  ({time.time() - t:.0f} s)", flush=True)
            results["sources"].setdefault(source, {})[name] = res
    totals = {}
    for name in args.variants.split(","):
        per = [results["sources"][s][name] for s in results["sources"]]
        k = sum(r["fresh_benign_account_days"]["acted"] for r in per)
        n = sum(r["fresh_benign_account_days"]["of"] for r in per)
        totals[name] = {"fresh_acted": k, "fresh_of": n, "caught": [sum(r["caught"][0] for r in per),
                                                                     sum(r["caught"][1] for r in per)]}
        print(f"all  {name:<19} fresh benign {k}/{n} = {100 * k / max(1, n):.2f}%  campaigns "
              f"{totals[name]['caught'][0]}/{totals[name]['caught'][1]}")
    results["totals"] = totals
    write_result(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

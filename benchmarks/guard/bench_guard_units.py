"""How the calibration's design choices trade power for the rate, on the development sources (issue 24).

    python -m benchmarks.guard.bench_guard_units [--sources sim,A,C,E] [--seed-offset 1000]

Three choices are compared, each over the same observe-only records: the jackknife's unit of `fit_calibration`
(`leave_out`: an account's whole actor, or the account alone), whether the relational statistics (`cross_key`,
and the fitted logistic score that carries it) are compared (`--variants`), and which departures may act: the
guard's rule (D, "does more than any benign account", or N, "like no benign account", each at half the rate), or
either alone at the whole rate. Per source: the calibration (14 days of
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
    COMPARED,
    DAY,
    RELATIONAL,
    Calibration,
    band_of,
    conformal_p,
    fit_calibration,
)
from distill.protection.guard.traffic import benign_records

VARIANTS = {  # name -> (leave_out, compared statistics)
    "actor": ("actor", COMPARED),
    "actor-without-novel": ("actor", tuple(s for s in COMPARED if s != "novel")),  # the design before `novel`
    "account": ("account", COMPARED),
    "actor+relational": ("actor", COMPARED + RELATIONAL + ("logistic",)),
    "account+relational": ("account", COMPARED + RELATIONAL + ("logistic",)),
}


RULES = {  # name -> which departures may act ("D or N" is the guard's rule; the others ablate it, at the same rate)
    "D or N": lambda cal, d, n: cal.p_value(d, n),
    "D only": lambda cal, d, n: conformal_p(cal.extremes, d),
    "N only": lambda cal, d, n: conformal_p(cal.near_extremes, n),
}


def acted(cal: Calibration, rule: str, d: float, n: float) -> bool:
    return RULES[rule](cal, d, n) <= RATE + 1e-12


def judge(cal: Calibration, judged: list, fresh: list, rule: str) -> dict:
    out: dict = {}
    n = k = 0
    for records in fresh:
        t0, worst = records[0][1], {}
        D, N = cal.departures([st for _, _, st in records])
        for (a, ts, st), d, near in zip(records, D, N, strict=True):
            if ts >= t0 + DAY and band_of(int(st.get("requests", 0))) is not None:
                w = worst.setdefault((a, int((ts - t0) // DAY)), [0.0, 0.0])
                w[0], w[1] = max(w[0], d), max(w[1], near)
        n, k = n + len(worst), k + sum(acted(cal, rule, *w) for w in worst.values())
    out["fresh_benign_account_days"] = {"acted": k, "of": n, "rate": round(k / max(1, n), 4), "target": RATE}
    records, labels = judged
    t0, best = records[0][1], {}
    D, N = cal.departures([st for _, _, st in records])
    for (a, ts, _), d, near in zip(records, D, N, strict=True):
        if ts >= t0 + DAY:
            w = best.setdefault(a, [0.0, 0.0])
            w[0], w[1] = max(w[0], d), max(w[1], near)
    kinds: dict = defaultdict(lambda: defaultdict(bool))
    benign = [0, 0]
    for key, (label, kind, campaign) in labels.items():
        hit = acted(cal, rule, *best.get(key, (0.0, 0.0)))
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
    ap.add_argument("--variants", default="actor,account", help=f"any of {', '.join(VARIANTS)}")
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
        for variant in args.variants.split(","):
            leave_out, stats = VARIANTS[variant]
            t = time.time()
            cal = fit_calibration(cal_records, {"source": source}, statistics=stats, pool=pool, links=links,
                                  leave_out=leave_out)
            for rule in RULES:
                name = f"{variant} / {rule}"
                res = judge(cal, judged, fresh, rule)
                f = res["fresh_benign_account_days"]
                print(f"{source:<4} {name:<30} fresh benign {f['acted']}/{f['of']} = {100 * f['rate']:.2f}%  "
                      f"campaigns {res['caught'][0]}/{res['caught'][1]}  benign accounts "
                      f"{res['benign_accounts_acted_on'][0]}/{res['benign_accounts_acted_on'][1]}  missed: "
                      f"{', '.join(k for k, v in res['campaigns'].items() if v['instances_acted_on'] < v['instances'])}"
                      f"  ({time.time() - t:.0f} s)", flush=True)
                results["sources"].setdefault(source, {})[name] = res
    totals = {}
    for name in next(iter(results["sources"].values()), {}):
        per = [results["sources"][s][name] for s in results["sources"]]
        k = sum(r["fresh_benign_account_days"]["acted"] for r in per)
        n = sum(r["fresh_benign_account_days"]["of"] for r in per)
        totals[name] = {"fresh_acted": k, "fresh_of": n, "caught": [sum(r["caught"][0] for r in per),
                                                                     sum(r["caught"][1] for r in per)]}
        print(f"all  {name:<30} fresh benign {k}/{n} = {100 * k / max(1, n):.2f}%  campaigns "
              f"{totals[name]['caught'][0]}/{totals[name]['caught'][1]}")
    results["totals"] = totals
    write_result(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

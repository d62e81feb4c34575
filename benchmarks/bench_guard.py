"""Guard benchmark: fit the scorer and threshold on training traces, report held-out TPR at 1% FPR per campaign
type, and the scoring overhead per request.

    python benchmarks/bench_guard.py [--print-weights]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from distill.protection.guard import FEATURES, Guard, GuardConfig, fit_logistic, simulate
from distill.protection.guard.scoring import DEFAULT, LogisticScorer


def run_trace(events, scorer: LogisticScorer, min_requests: int = 20):
    """Per key: label and max score after min_requests; plus training rows (features, label)."""
    g = Guard(GuardConfig(min_requests=min_requests), scorer)
    best: dict[str, float] = defaultdict(float)
    labels, rows = {}, []
    for i, e in enumerate(events):
        g.observe(e.key, e.request, e.response, e.ts)
        labels[e.key] = e.label
        best.setdefault(e.key, 0.0)  # keys that never reach min_requests are never flagged
        st = g.state[e.key]
        if st["requests_in_window"] >= min_requests:
            best[e.key] = max(best[e.key], st["score"])
            if i % 3 == 0:
                rows.append(([st["features"][f] for f in FEATURES], int(e.label != "benign")))
    return best, labels, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--print-weights", action="store_true")
    args = ap.parse_args()
    train = simulate(seed=0, n_benign=150, repeats=3)
    _, _, rows = run_trace(train, DEFAULT)
    scorer = fit_logistic([r[0] for r in rows], [r[1] for r in rows])
    if args.print_weights:
        r = lambda v: tuple(round(x, 4) for x in v)  # noqa: E731
        print(f"LogisticScorer(mean={r(scorer.mean)}, scale={r(scorer.scale)}, weight={r(scorer.weight)}, "
              f"bias={round(scorer.bias, 4)})")
    best, labels, _ = run_trace(train, scorer)
    benign = sorted(v for k, v in best.items() if labels[k] == "benign")
    thr = float(np.quantile(benign, 0.99))
    print(f"threshold (99th percentile of benign per-key max score on training traces): {thr:.4f}")
    test = simulate(seed=1, n_benign=300, repeats=5)
    best, labels, _ = run_trace(test, scorer)
    t_benign = [v for k, v in best.items() if labels[k] == "benign"]
    print(f"held-out benign keys: {len(t_benign)}, FPR at threshold: {np.mean([v >= thr for v in t_benign]):.3f}")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for k, v in best.items():
        if labels[k] != "benign":
            by_kind[labels[k]].append(v)
    for kind, vals in sorted(by_kind.items()):
        print(f"  {kind:<12} keys {len(vals):>3}  TPR {np.mean([v >= thr for v in vals]):.3f}")
    # scoring overhead per request
    g = Guard(GuardConfig(), scorer)
    t0 = time.perf_counter()
    for e in test:
        g.observe(e.key, e.request, e.response, e.ts)
        g.decision(e.key)
    dt = (time.perf_counter() - t0) / len(test)
    print(f"scoring overhead: {dt * 1e3:.3f} ms per request (observe + decision, {len(test)} requests)")


if __name__ == "__main__":
    main()

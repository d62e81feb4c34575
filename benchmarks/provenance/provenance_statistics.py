"""Two provenance statistics compared on bench_provenance.py's cached open-mode outputs (no model is run again).

* **suspect-centred** (what `distill derivation` computes, after Nikolić et al. 2025): per query,
  d = agree(suspect, parent) − agree(suspect, r); "does the suspect side with the parent more than with each
  reference?"
* **parent-centred** (a control-suspect test): per query, d = agree(suspect, parent) − agree(r, parent); "does the
  suspect agree with the parent more than each reference — a model known not to be derived from it — does?"

Both use the exact one-sided sign test over queries and the intersection-union rule (p = max over references).
For each: the main table against the teacher (references ce_s11, ce_s12, oth_s21), precision/recall at p < 0.01,
queries needed for p < 1e-5, and the null tests of bench_provenance.py (parent and references drawn from the
exchangeable pool {ce_same, ce_s11, ce_s12}, every suspect not derived from the parent, roles reshuffled; disjoint
blocks of queries, and the whole query set), with the null triples that were flagged.

    .venv/bin/python -m benchmarks.provenance.provenance_statistics --work /tmp/provbench --queries 300 --seq-len 32

Writes benchmarks/results/provenance_statistics.json.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS, write_result
from benchmarks.provenance.bench_provenance import DERIVED, POOL_SAME, REFS, UNDERIVED, wilson
from distill.protection.derivation import sign_test

POOL = ["ce_same", *POOL_SAME]
MODELS = ["teacher", *DERIVED, *UNDERIVED, *REFS]


def diffs(ag: dict, kind: str, s: str, p: str, r: str) -> np.ndarray:
    return ag[s, p] - (ag[s, r] if kind == "suspect" else ag[r, p])


def p_value(ag: dict, kind: str, s: str, p: str, refs: list[str], lo: int = 0, hi: int | None = None) -> float:
    return max(sign_test(list(diffs(ag, kind, s, p, r)[lo:hi]))[0] for r in refs)


def main_table(ag: dict, kind: str, n: int) -> dict:
    rows = {}
    for s in DERIVED + UNDERIVED:
        p = p_value(ag, kind, s, "teacher", REFS)
        need = next((k for k in range(17, n + 1) if p_value(ag, kind, s, "teacher", REFS, 0, k) < 1e-5), None)
        rows[s] = {"derived_truth": s in DERIVED, "p": p, "flagged": p < 0.01, "queries_for_1e-5": need,
                   "mean_gap": {r: round(float(diffs(ag, kind, s, "teacher", r).mean()), 4) for r in REFS}}
    tp = sum(r["flagged"] and r["derived_truth"] for r in rows.values())
    fp = sum(r["flagged"] and not r["derived_truth"] for r in rows.values())
    return {"rows": rows, "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / len(DERIVED)}


def soundness(ag: dict, kind: str, n: int, block: int) -> dict:
    blocks = [(i, i + block) for i in range(0, n - block + 1, block)] + [(0, n)]
    out: dict = {}
    for refs_per_test in ("one_reference", "all_references"):
        for span in ("blocks", "whole"):
            ps, flagged = [], []
            for s in [m for m in MODELS]:
                cand = [m for m in POOL if m != s]
                for parent in cand:
                    others = [r for r in cand if r != parent]
                    groups = [[r] for r in others] if refs_per_test == "one_reference" else (
                        [others] if len(others) > 1 else [])
                    for refs in groups:
                        for lo, hi in (blocks[:-1] if span == "blocks" else blocks[-1:]):
                            p = p_value(ag, kind, s, parent, refs, lo, hi)
                            ps.append(p)
                            if span == "whole" and p <= 0.01:
                                flagged.append(f"{s} | parent {parent} | refs {','.join(refs)}: p={p:.2g}")
            v = np.array(ps)
            key = f"{refs_per_test}/{span}"
            out[key] = {"tests": len(v), **{f"fpr@{p0:g}": round(float((v <= p0).mean()), 4)
                                             for p0 in (0.05, 0.01, 0.001)},
                        **{f"ci95@{p0:g}": [round(x, 4) for x in wilson(int((v <= p0).sum()), len(v))]
                           for p0 in (0.05, 0.01, 0.001)}}
            if span == "whole":
                out[key]["flagged_at_0.01"] = flagged
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/provbench")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--block", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(1)
    preds = {m: [t[:, 0] for t in torch.load(Path(args.work) / "open" / f"{m}-{args.queries}x{args.seq_len}.pt")]
             for m in MODELS}
    ag = {(a, b): np.array([float((x == y).float().mean()) for x, y in zip(preds[a], preds[b], strict=True)])
          for a, b in itertools.permutations(MODELS, 2)}
    res: dict = {"args": vars(args), "mean_agreement": {f"{a}|{b}": round(float(v.mean()), 4)
                                                        for (a, b), v in ag.items() if a < b}}
    for kind in ("suspect", "parent"):
        t = main_table(ag, kind, args.queries)
        t["soundness"] = soundness(ag, kind, args.queries, args.block)
        res[f"{kind}_centred"] = t
        print(f"\n## {kind}-centred: precision {t['precision']}, recall {t['recall']} at p < 0.01")
        print("| suspect | derived? | mean gap vs ce_s11 / ce_s12 / oth_s21 | p | flagged | queries for p<1e-5 |")
        print("|---|---|---|---|---|---|")
        for s, r in t["rows"].items():
            g = r["mean_gap"]
            print(f"| {s} | {'yes' if r['derived_truth'] else 'no'} | {g['ce_s11']:+.3f} / {g['ce_s12']:+.3f} / "
                  f"{g['oth_s21']:+.3f} | {r['p']:.2g} | {'yes' if r['flagged'] else 'no'} | "
                  f"{r['queries_for_1e-5'] or '-'} |")
        for k, v in t["soundness"].items():
            print(f"null {k}: {v['tests']} tests, FPR@0.05 {v['fpr@0.05']}, @0.01 {v['fpr@0.01']} "
                  f"(95% CI {v['ci95@0.01']}), @0.001 {v['fpr@0.001']}")
            for f in v.get("flagged_at_0.01", []):
                print("   flagged:", f)
    write_result(RESULTS / "provenance" / "provenance_statistics.json", res)


if __name__ == "__main__":
    main()

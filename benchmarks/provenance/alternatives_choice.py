"""How the alternatives statistic was chosen (issue 25), on the development models only: -KL or rank correlation?

Reads a `bench_provenance_soundness.py --power` work folder's cached outputs (every model's log-probabilities of
the parent's 20 alternatives on every query) and prints, per corpus and budget, each KD / pruned-KD student's
standardised distance (z, in the CE students' standard deviations) from the CE students of its budget under four
measures: top-1 fit, departure agreement, -KL over the alternatives and Spearman's rank correlation over them; then
each CE student at a shorter budget against the 4-epoch CE students (the null with references trained longer than
the suspect: a positive z there is a false lean towards 'derived').

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.provenance.alternatives_choice /tmp/p26dev/outputs.pt

Measured on the development corpora A and B at seed offset 0 (docs/benchmarks.md, "the alternatives statistic"):
-KL separates KD students well but leans towards 'derived' for under-trained CE suspects (z up to +17: flatter
models look nearer); rank correlation separates them as well or better and leans the other way. Rank correlation
was chosen from this, before any run on the reported corpora.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from distill.protection.derivation import alternatives_agreement, departure_agreement, fit_to_text

BUDGETS = ("0.25", "0.5", "1", "2", "4")


def neg_kl(model: list[torch.Tensor], parent: list[torch.Tensor]) -> float:
    """Mean over queries of -KL(parent || model), both renormalised over the parent's alternatives."""
    out = []
    for m, p in zip(model, parent, strict=True):
        pi, rho = torch.log_softmax(p.float(), -1), torch.log_softmax(m.float(), -1)
        out.append(float(-(pi.exp() * (pi - rho)).sum(-1).mean()))
    return float(np.mean(out))


def measures(d: dict, label: str, c: str) -> np.ndarray:
    alts, par = d["alternatives"][label][c], d["alternatives"]["parent"][c]
    return np.array([fit_to_text(d["preds"][label][c], d["targets"][c]),
                     departure_agreement(d["preds"][label][c], d["preds"]["parent"][c], d["targets"][c]),
                     neg_kl(alts, par), float(np.mean(alternatives_agreement(alts, par)))])


def main() -> None:
    d = torch.load(sys.argv[1])
    names = ("fit", "departure", "-KL", "rank")
    for c in sorted({k for v in d["alternatives"].values() for k in v}):
        rows = {label: measures(d, label, c) for label in d["alternatives"] if label.startswith(c + "/")}
        print(f"== corpus {c}: z = (model - mean of the CE students of its budget) / their sd")
        for e in BUDGETS:
            ce = np.array([v for k, v in rows.items() if "/ce" in k and k.endswith("@" + e)])
            if len(ce) < 2:
                continue
            m, s = ce.mean(0), np.where(ce.std(0, ddof=1) > 1e-9, ce.std(0, ddof=1), np.nan)  # nan: no spread
            print(f" {e} epochs, {len(ce)} CE: " + ", ".join(f"{n} {a:.4f}±{b:.4f}" for n, a, b in zip(names, m, s,
                                                                                                       strict=True)))
            for k, v in rows.items():
                if ("/kd" in k or "/pr" in k) and k.endswith("@" + e):
                    print(f"   {k}: " + ", ".join(f"{n} z {z:+.1f}" for n, z in zip(names, (v - m) / s, strict=True)))
        ce4 = np.array([v for k, v in rows.items() if "/ce" in k and k.endswith("@4")])
        m4, s4 = ce4.mean(0), np.where(ce4.std(0, ddof=1) > 1e-9, ce4.std(0, ddof=1), np.nan)
        print(" the null with longer-trained references: each shorter CE student against the 4-epoch CE students")
        for e in BUDGETS[:-1]:
            for k, v in rows.items():
                if "/ce" in k and k.endswith("@" + e):
                    print(f"   {k}: " + ", ".join(f"{n} z {z:+.1f}" for n, z in zip(names, (v - m4) / s4,
                                                                                       strict=True)))


if __name__ == "__main__":
    main()

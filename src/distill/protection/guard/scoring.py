"""Combining features into one score: a logistic model on bounded features with capped, non-negative weights.

Every feature lies in [0, 1] and points the same way (higher = more like a campaign), so each weight is fitted
within [0, cap]: a feature's contribution to the logit, weight * (x - reference), then lies within
[-cap, +cap] whatever the traffic, no single feature can carry a key past a rule alone, and no fit can give a
feature the opposite sign to the one docs/protect.md explains. `reference` is the benign mean of each feature in
the training traces, so a contribution reads as "this much more campaign-like than a typical user".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.errors import DistillError
from distill.protection.guard.features import FEATURES

CAP = 3.0  # the largest weight a feature may get (features are in [0, 1], so its largest contribution)


@dataclass
class LogisticScorer:
    """score = sigmoid(bias + sum_i clip(weight_i * (x_i - mean_i) / scale_i, -cap, cap)), in [0, 1]."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weight: tuple[float, ...]
    bias: float
    cap: float = CAP

    def terms(self, feats: dict[str, float]) -> dict[str, float]:
        """Each feature's additive share of the logit, capped at +-cap."""
        return {n: max(-self.cap, min(self.cap, w * (feats[n] - m) / s))
                for n, m, s, w in zip(FEATURES, self.mean, self.scale, self.weight, strict=True)}

    def score(self, feats: dict[str, float]) -> float:
        z = self.bias + sum(self.terms(feats).values())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def contributions(self, feats: dict[str, float]) -> dict[str, float]:
        """Each feature's additive share of the logit (the evidence behind a score)."""
        return {n: round(v, 3) for n, v in self.terms(feats).items()}

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": list(self.mean), "scale": list(self.scale),
                "weight": list(self.weight), "bias": self.bias, "cap": self.cap}


def fit_logistic(x: Sequence[Sequence[float]], y: Sequence[int], cap: float = CAP, l2: float = 1e-3,
                 iters: int = 4000, sample_weight: Sequence[float] | None = None) -> LogisticScorer:
    """Class-balanced logistic regression with every weight in [0, cap] (projected gradient descent with a
    backtracking step), on features in [0, 1]; the reference of each feature is its (weighted) mean over the
    benign rows. `sample_weight`: each row's weight within its class (e.g. 1 / rows of its key)."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rw = np.ones(len(ya)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    neg = ya == 0
    ref = np.average(xa[neg], axis=0, weights=rw[neg]) if neg.any() else np.zeros(xa.shape[1])
    z = xa - ref
    pos_w, neg_w = rw[~neg].sum(), rw[neg].sum()
    sw = np.where(neg, 0.5 * rw / max(neg_w, 1e-12), 0.5 * rw / max(pos_w, 1e-12))  # each class weighs 1/2

    def loss(w: np.ndarray, b: float) -> float:
        t = z @ w + b
        return float(np.sum(sw * (np.logaddexp(0, t) - ya * t)) + l2 * w @ w)

    w, b, step = np.zeros(xa.shape[1]), 0.0, 1.0
    cur = loss(w, b)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(z @ w + b, -50, 50)))
        r = sw * (p - ya)
        gw, gb = z.T @ r + 2 * l2 * w, float(r.sum())
        while True:
            nw, nb = np.clip(w - step * gw, 0.0, cap), b - step * gb
            new = loss(nw, nb)
            if new <= cur or step < 1e-8:
                break
            step *= 0.5
        if cur - new < 1e-12:
            break
        w, b, cur, step = nw, nb, new, step * 2
    return LogisticScorer(tuple(np.round(ref, 4).tolist()), (1.0,) * xa.shape[1], tuple(np.round(w, 4).tolist()),
                          round(float(b), 4), cap)


# Fitted by `python -m benchmarks.guard.bench_guard` on the training traces (profile "train", seeds 0-1,
# 100 benign accounts each); DEFAULT_THRESHOLD is the 99th percentile of the benign per-key maximum score there.
DEFAULT = LogisticScorer(
    mean=(0.4617, 0.0919, 0.4192, 0.3047, 0.33, 0.0055, 0.0434, 0.1421, 0.0086, 0.1922, 0.0898),
    scale=(1.0,) * 11,
    weight=(0.0, 0.4783, 1.1637, 0.0, 2.703, 3.0, 0.5469, 1.2197, 2.1394, 3.0, 3.0),
    bias=-3.1924,
)
DEFAULT_THRESHOLD = 0.2498


def load_scorer(path: str | Path) -> LogisticScorer:
    """A scorer saved as `LogisticScorer.to_dict()` JSON; its features must be this guard's, in order."""
    from distill.fileio import read_json_object

    fix = ('pass the JSON of a fitted scorer: {"features": [...], "mean": [...], "scale": [...], "weight": [...], '
           '"bias": NUMBER} (benchmarks/guard/bench_guard.py writes one)')
    raw = read_json_object(path, "guard scorer file", fix)
    if raw.get("features") != list(FEATURES):
        raise DistillError("the scorer was fitted on other features", where=str(path),
                           fix=f"refit it on this guard's features ({', '.join(FEATURES)})")
    try:
        vec = {k: tuple(float(v) for v in raw[k]) for k in ("mean", "scale", "weight")}
        bias, cap = float(raw["bias"]), float(raw.get("cap", CAP))
    except (KeyError, TypeError, ValueError):
        raise DistillError("the scorer file lacks mean, scale, weight or bias", where=str(path), fix=fix) from None
    if any(len(v) != len(FEATURES) for v in vec.values()) or min(vec["scale"]) <= 0 or cap <= 0:
        raise DistillError("the scorer's vectors do not match its features (or a scale or the cap is not positive)",
                           where=str(path), fix=fix)
    return LogisticScorer(vec["mean"], vec["scale"], vec["weight"], bias, cap)

"""Combining features into one score: a logistic model on standardized features, fitted on training traces."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distill.protection.guard.features import FEATURES


@dataclass
class LogisticScorer:
    """score = sigmoid(bias + sum_i weight_i * (x_i - mean_i) / scale_i), in [0, 1]."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weight: tuple[float, ...]
    bias: float

    def score(self, feats: dict[str, float]) -> float:
        z = self.bias
        for name, m, s, w in zip(FEATURES, self.mean, self.scale, self.weight, strict=True):
            z += w * (feats[name] - m) / s
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def contributions(self, feats: dict[str, float]) -> dict[str, float]:
        """Each feature's additive share of the logit (the evidence behind a score)."""
        return {n: round(w * (feats[n] - m) / s, 3)
                for n, m, s, w in zip(FEATURES, self.mean, self.scale, self.weight, strict=True)}

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": list(self.mean), "scale": list(self.scale),
                "weight": list(self.weight), "bias": self.bias}


def fit_logistic(x: Sequence[Sequence[float]], y: Sequence[int], l2: float = 1e-2, iters: int = 50) -> LogisticScorer:
    """Fit by Newton's method (IRLS) with an L2 penalty; classes are reweighted to equal total weight."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mean, scale = xa.mean(0), xa.std(0) + 1e-6
    z = np.hstack([np.ones((len(xa), 1)), (xa - mean) / scale])
    pos = ya.sum()
    sw = np.where(ya > 0, len(ya) / (2 * max(pos, 1)), len(ya) / (2 * max(len(ya) - pos, 1)))
    beta = np.zeros(z.shape[1])
    reg = l2 * np.eye(z.shape[1])
    reg[0, 0] = 0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(z @ beta, -50, 50)))
        grad = z.T @ (sw * (p - ya)) + reg @ beta * len(ya)
        hess = (z * (sw * p * (1 - p))[:, None]).T @ z + reg * len(ya)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticScorer(tuple(mean.tolist()), tuple(scale.tolist()), tuple(beta[1:].tolist()), float(beta[0]))


# Fitted by `python benchmarks/bench_guard.py --print-weights` on the seed-0 training traces.
DEFAULT = LogisticScorer(
    mean=(4.0653, 0.2063, 0.4376, 0.3998, 0.1062, 2.5196, 1.8566, 0.7594),
    scale=(0.8267, 0.1018, 0.3683, 0.4361, 0.2348, 0.559, 1.9519, 0.2126),
    weight=(0.1373, -0.8403, 0.9995, 0.8445, 0.2428, 1.3044, -1.0786, -0.1567),
    bias=0.1589,
)

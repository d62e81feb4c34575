"""Exact detection statistics: the one-sided binomial tail, in log space, and the z-score.

Under the null hypothesis (the text was written without the key) each scored unit is green independently with
probability gamma, so the green count G of T units is Binomial(T, gamma) and the p-value is
P(X >= G) = sum_{k=G}^{T} C(T, k) gamma^k (1-gamma)^(T-k) (= betainc(G, T-G+1, gamma)). It is summed exactly in
log space (log-sum-exp of log-pmf terms), so p-values far below 1e-308 keep their exponent. No normal
approximation is used anywhere; z is reported for reading only.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import betaln, gammaln, logsumexp


def binom_log_sf(green: int, total: int, gamma: float) -> float:
    """Natural log of P(X >= green) for X ~ Binomial(total, gamma)."""
    if total < 0 or not 0 <= green <= max(total, 0):
        raise ValueError(f"need 0 <= green <= total (got green={green}, total={total})")
    if green == 0:
        return 0.0
    k = np.arange(green, total + 1, dtype=np.float64)
    logpmf = (gammaln(total + 1.0) - gammaln(k + 1.0) - gammaln(total - k + 1.0)
              + k * math.log(gamma) + (total - k) * math.log1p(-gamma))
    return float(min(0.0, logsumexp(logpmf)))


def betabinom_log_sf(green: int, total: int, mean: float, rho: float) -> float:
    """Natural log of P(X >= green) for X ~ BetaBinomial(total, a, b) with mean a/(a+b) = `mean` and intra-text
    correlation 1/(a+b+1) = `rho` (Var X = total m (1-m) (1 + (total-1) rho)); rho = 0 is Binomial(total, mean).

    Summed exactly in log space like `binom_log_sf`: log pmf(k) = log C(total, k) + betaln(k+a, total-k+b) - betaln(a, b).
    """
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"need 0 <= rho < 1 (got {rho})")
    if rho == 0.0:
        return binom_log_sf(green, total, mean)
    if total < 0 or not 0 <= green <= max(total, 0):
        raise ValueError(f"need 0 <= green <= total (got green={green}, total={total})")
    if green == 0:
        return 0.0
    a, b = mean * (1 - rho) / rho, (1 - mean) * (1 - rho) / rho
    k = np.arange(green, total + 1, dtype=np.float64)
    logpmf = (gammaln(total + 1.0) - gammaln(k + 1.0) - gammaln(total - k + 1.0)
              + betaln(k + a, total - k + b) - betaln(a, b))
    return float(min(0.0, logsumexp(logpmf)))


def p_value(green: int, total: int, gamma: float) -> float:
    """P(X >= green) for X ~ Binomial(total, gamma) (0.0 only when below the smallest double)."""
    return math.exp(binom_log_sf(green, total, gamma))


def log10_p_value(green: int, total: int, gamma: float) -> float:
    return binom_log_sf(green, total, gamma) / math.log(10)


def z_score(green: int, total: int, gamma: float) -> float:
    """(G - gamma T) / sqrt(T gamma (1 - gamma)); 0 when nothing was scored."""
    if total == 0:
        return 0.0
    return (green - gamma * total) / math.sqrt(total * gamma * (1 - gamma))


def min_tokens_needed(alpha: float, gamma: float, n_keys: int = 1) -> int:
    """Fewest scored units with which any p-value (after a Bonferroni factor n_keys) can fall below alpha.

    Even an all-green text of T units has p = gamma^T, so T must satisfy n_keys * gamma^T <= alpha.
    """
    return max(1, math.ceil(math.log(alpha / n_keys) / math.log(gamma) - 1e-12))


def bonferroni(p: float, n_keys: int) -> float:
    """Family-wise corrected p-value for the best of n_keys tests: min(1, n_keys * p)."""
    return min(1.0, p * n_keys)

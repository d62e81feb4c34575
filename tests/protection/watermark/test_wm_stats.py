"""The exact binomial tail against independent computations (fractions and mpmath)."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import pytest

from distill.protection.watermark.stats import binom_log_sf, min_tokens_needed, p_value, z_score


def exact_tail(g: int, t: int, gamma: Fraction) -> Fraction:
    return sum((math.comb(t, k) * gamma**k * (1 - gamma) ** (t - k) for k in range(g, t + 1)), Fraction(0))


@pytest.mark.parametrize("g,t", [(0, 10), (1, 1), (3, 10), (10, 10), (30, 100), (60, 100), (100, 200), (7, 9)])
def test_p_value_matches_exact_fraction_sum(g, t):
    ref = float(exact_tail(g, t, Fraction(1, 4)))
    assert p_value(g, t, 0.25) == pytest.approx(ref, rel=1e-10, abs=1e-300)


def test_tiny_p_values_keep_their_exponent():
    mpmath.mp.dps = 50
    g, t = 900, 1000
    ref = mpmath.fsum(mpmath.binomial(t, k) * mpmath.mpf(1) / 4**k * (mpmath.mpf(3) / 4) ** (t - k)
                      for k in range(g, t + 1))
    assert binom_log_sf(g, t, 0.25) == pytest.approx(float(mpmath.log(ref)), rel=1e-9)
    assert binom_log_sf(g, t, 0.25) < -746  # below the smallest double: only the log survives


def test_min_tokens_needed_is_the_smallest_possible_length():
    for alpha, n in [(1e-5, 1), (1e-3, 1), (1e-3, 10), (0.05, 1)]:
        need = min_tokens_needed(alpha, 0.25, n)
        assert n * p_value(need, need, 0.25) <= alpha < n * p_value(need - 1, need - 1, 0.25)


def test_z_score():
    assert z_score(50, 100, 0.25) == pytest.approx(25 / math.sqrt(100 * 0.25 * 0.75))
    assert z_score(0, 0, 0.25) == 0.0

"""The batch sampler: each epoch a seeded permutation of the training rows (or of a pool of them), as a pure
function of the step."""

from __future__ import annotations

from collections import Counter

from distill.training.sampler import BatchSampler


def _epoch(s: BatchSampler, n: int) -> list[int]:
    steps = n // (s.batch_size * s.grad_accum)
    return [r for step in range(steps) for rows in s.step_rows(step) for r in rows]


def test_each_epoch_is_a_permutation_of_the_rows_and_a_pure_function_of_the_step():
    s = BatchSampler(12, batch_size=2, grad_accum=3, seed=5)
    first, second = _epoch(s, 12), [r for step in range(2, 4) for rows in s.step_rows(step) for r in rows]
    assert sorted(first) == list(range(12)) and sorted(second) == list(range(12)) and first != second
    assert BatchSampler(12, 2, 3, 5).rows(3, 1) == s.rows(3, 1)  # a new sampler (a resumed run) agrees


def test_a_pool_is_drawn_with_its_repeats_once_per_epoch():
    pool = [0, 1, 2, 3, 3, 3, 4, 4, 4, 4]
    s = BatchSampler(5, batch_size=5, grad_accum=1, seed=0, pool=pool)
    assert s.n_train == len(pool)
    for step in (0, 2):  # epochs 0 and 1
        assert Counter(s.rows(step, 0) + s.rows(step + 1, 0)) == Counter(pool)

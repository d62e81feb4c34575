"""Which data rows each micro-batch holds: a pure function of the step, so resume is exact for free."""

from __future__ import annotations

import torch
from torch import Tensor


class BatchSampler:
    """Global row indices per (step, micro-batch): a fresh seeded permutation of the training rows per epoch.

    Every process computes the same rows; under torchrun rank r takes `rows[r::world]`. With a `pool` (the
    examples of one epoch, some repeated: `data.teacher_shares`), the permutation runs over the pool."""

    def __init__(self, n_train: int, batch_size: int, grad_accum: int, seed: int, pool: list[int] | None = None):
        self.batch_size, self.grad_accum, self.seed = batch_size, grad_accum, seed
        self.pool = pool
        self.n_train = len(pool) if pool is not None else n_train  # rows per epoch
        self._perms: dict[int, Tensor] = {}

    def rows(self, step: int, micro: int) -> list[int]:
        out = []
        start = (step * self.grad_accum + micro) * self.batch_size
        for g in range(start, start + self.batch_size):
            epoch, pos = divmod(g, self.n_train)
            i = int(self.permutation(epoch)[pos])
            out.append(self.pool[i] if self.pool is not None else i)
        return out

    def step_rows(self, step: int) -> list[list[int]]:
        """The rows of every micro-batch of one optimizer step."""
        return [self.rows(step, m) for m in range(self.grad_accum)]

    def permutation(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
            self._perms[epoch] = torch.randperm(self.n_train, generator=gen)
        return self._perms[epoch]

    @classmethod
    def for_config(cls, cfg, n_train: int, pool: list[int] | None = None) -> BatchSampler:
        t = cfg.train
        return cls(n_train, t.batch_size, t.grad_accum, t.seed, pool)

"""Which data rows each micro-batch holds: a pure function of the step, so resume is exact for free."""

from __future__ import annotations

import torch
from torch import Tensor


class BatchSampler:
    """Global row indices per (step, micro-batch): a fresh seeded permutation of the training rows per epoch.

    Every process computes the same rows; under torchrun rank r takes `rows[r::world]`."""

    def __init__(self, n_train: int, batch_size: int, grad_accum: int, seed: int):
        self.n_train, self.batch_size, self.grad_accum, self.seed = n_train, batch_size, grad_accum, seed
        self._perms: dict[int, Tensor] = {}

    def rows(self, step: int, micro: int) -> list[int]:
        out = []
        start = (step * self.grad_accum + micro) * self.batch_size
        for g in range(start, start + self.batch_size):
            epoch, pos = divmod(g, self.n_train)
            out.append(int(self.permutation(epoch)[pos]))
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
    def for_config(cls, cfg, n_train: int) -> BatchSampler:
        t = cfg.train
        return cls(n_train, t.batch_size, t.grad_accum, t.seed)

"""Data parallelism: the same command under `torchrun --nproc_per_node N` runs DDP (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def sum(self, value: int) -> int:
        """`value` summed over every process (itself in a world of one)."""
        if self.size == 1:
            return value
        total = torch.tensor(value, dtype=torch.long, device=self.device)
        dist.all_reduce(total)
        return int(total)


    def sum_all(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over every process (one all-reduce), e.g. a step's loss terms for its logged row."""
        if self.size == 1:
            return values
        keys = sorted(values)
        total = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return dict(zip(keys, total.tolist(), strict=True))


def setup() -> World:
    """Join the process group when launched by torchrun; otherwise a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if size > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return World(rank, size, device)


def teardown(world: World) -> None:
    """Leave the process group: torchrun's, or the private one-process group `train.parallel: fsdp` made."""
    if dist.is_initialized():
        dist.destroy_process_group()

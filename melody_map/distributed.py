"""Data-parallel training under ``torchrun``: torch.distributed's process group and DistributedDataParallel.

    torchrun --nproc-per-node 2 train_gnn.py ...                      # one machine, 2 processes
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29400 train_gnn.py ...              # on each of two machines

Every rank reads the data and builds the same split, graph and start (same seed); each
step every rank draws the same group of users, takes its share, and DDP averages the
gradients. Rank 0 validates (and tells the others, so that all stop together), tests and
writes the checkpoint; the other ranks never write. Gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks: rank 0 of 1 outside ``torchrun``."""

    rank: int = 0
    size: int = 1
    local_size: int = 1  # ranks on this machine, which share its memory
    device: torch.device = torch.device("cpu")  # where collective tensors live (NCCL: this rank's GPU)

    @classmethod
    def current(cls) -> Ranks:
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_WORLD_SIZE", 1)), device)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any."""
        if self.size == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` under DistributedDataParallel (gradients averaged over the ranks), or as it is."""
        if self.size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)


def init_from_env(device: str) -> Ranks:
    """Join the process group that ``torchrun``'s environment describes (nothing without it).

    Args:
        device: the run's ``--device``; CUDA ranks each take their LOCAL_RANK's GPU and NCCL.
    """
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or dist.is_initialized():
        return Ranks.current()
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Ranks.current()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

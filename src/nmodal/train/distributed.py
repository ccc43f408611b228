"""Multi-GPU / multi-node training with ``torchrun`` (DDP).

Run ``nmodal train``'s arguments under torchrun::

    torchrun --nproc-per-node 4 -m nmodal train store/ --out models/m1 ...
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --nproc-per-node 8 \\
        -m nmodal train store/ --out models/m1 ...

How it works (see :func:`nmodal.train.train_model`, which detects the process group):

* every process loads the feature store and draws the same seeded batch order; each global
  batch of ``--batch-size`` posts is cut into ``world_size`` contiguous shards and process
  ``r`` embeds shard ``r`` (so ``--batch-size`` is the global batch);
* the embeddings are gathered with gradients (:func:`nmodal.losses.distributed.
  all_gather_with_grad`) and every process evaluates the loss on the whole global batch,
  so the loss (negatives, masks, mining) is exactly the single-process loss on the
  concatenated batch;
* the model is wrapped in ``DistributedDataParallel``, which averages the gradients, so
  every rank keeps identical weights; validation losses are averaged over ranks so that
  best-epoch and early-stopping decisions agree;
* only rank 0 shows progress and writes the model directory.

Backend: NCCL when CUDA is available (each process on ``cuda:LOCAL_RANK``), gloo on CPU.
Dropout draws differ per rank (and from a single-process run); everything else matches.

Example:
    >>> ctx = DistContext(rank=1, world_size=2)
    >>> ctx.shard(torch.arange(5)).tolist(), ctx.shard_sizes(5)
    ([3, 4], [3, 2])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from nmodal.losses.distributed import all_gather_with_grad


@dataclass(frozen=True)
class DistContext:
    """This process's place in the process group, and the few collectives training needs."""

    rank: int
    world_size: int
    device: torch.device | None = None  # the device for ``device="auto"`` (cuda:LOCAL_RANK)
    group: Any = None

    @classmethod
    def from_process_group(cls, group: Any = None) -> DistContext | None:
        """The context of an initialised process group with > 1 process, else None."""
        if not (dist.is_available() and dist.is_initialized()):
            return None
        world = dist.get_world_size(group)
        if world < 2:
            return None
        device = None
        if torch.cuda.is_available() and dist.get_backend(group) == "nccl":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return cls(rank=dist.get_rank(group), world_size=world, device=device, group=group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard_sizes(self, total: int) -> list[int]:
        """Sizes of the ``world_size`` contiguous shards of ``total`` items."""
        base, extra = divmod(total, self.world_size)
        return [base + (r < extra) for r in range(self.world_size)]

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous shard of a global batch ``index``."""
        return torch.tensor_split(index, self.world_size)[self.rank]

    def gather(self, x: torch.Tensor, total: int) -> torch.Tensor:
        """All ranks' shards of a global batch of ``total`` items, with gradients."""
        return all_gather_with_grad(x, self.shard_sizes(total), group=self.group)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel (gradients averaged over ranks)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, process_group=self.group)

    def mean(self, value: float, device: torch.device) -> float:
        """The mean of ``value`` over ranks (the same float on every rank)."""
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, group=self.group)
        return float(t) / self.world_size


def is_main_process() -> bool:
    """False only on ranks other than 0 of an initialised process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def init_from_env(backend: str | None = None) -> DistContext | None:
    """Initialise the default process group from torchrun's environment variables
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"))
    return DistContext.from_process_group()


@contextlib.contextmanager
def torchrun_session(backend: str | None = None) -> Iterator[DistContext | None]:
    """The process group of one ``torchrun`` launch, around a whole command.

    Initialises it from torchrun's environment (nothing outside torchrun), and at the end
    waits for every rank before destroying it, so no rank tears the group down while
    another still uses it (rank 0 saves and evaluates after training; a gloo rank exiting
    early once aborted with "terminate called without an active exception"). A group that
    was already initialised by the caller is left alone."""
    started = not dist.is_initialized()
    ctx = init_from_env(backend)
    ok = False
    try:
        yield ctx
        ok = True
    finally:
        if started and dist.is_initialized():
            try:
                if ok:
                    dist.barrier()
            finally:
                dist.destroy_process_group()

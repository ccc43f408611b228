"""Gathering embeddings across processes with gradients, for contrastive losses under DDP.

Every process embeds its shard of the global batch; :func:`all_gather_with_grad`
concatenates the shards of all processes (in rank order) so that each process can compute
the loss on the whole global batch, negatives from every shard included. The loss is then
the single-process loss on the concatenated batch, identical on every rank.

Backward: every rank holds the same loss ``L`` and the same gradient ``g = dL/dZ`` for the
gathered ``Z``. Rank ``r``'s parameters only produced its own rows, so it needs
``g_r = dL/dZ_r``; the backward all-reduces (sums) ``g`` over ranks and returns rank ``r``'s
slice, i.e. ``world_size * g_r``. DDP then *averages* the parameter gradients over ranks:
``(1 / world) * sum_r world * J_r^T g_r = sum_r J_r^T g_r``, exactly the single-process
gradient. (Summing rather than reading ``g_r`` directly also keeps the result right when
ranks disagree in the last bits, and is what ``torch.distributed.nn.all_gather`` does.)

Shards may have different sizes (``sizes``, known on every rank); they are padded to the
largest for the collective and trimmed afterwards.

Example:
    >>> z = all_gather_with_grad(torch.randn(4, 8))  # no process group: returned as is
    >>> z.shape
    torch.Size([4, 8])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from nmodal.errors import InputError


class _AllGather(torch.autograd.Function):
    """Forward: all_gather of the (padded) shards; backward: all_reduce, own slice."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, sizes: Sequence[int], rank: int, group: Any
    ) -> torch.Tensor:
        ctx.sizes, ctx.rank, ctx.group = list(sizes), rank, group
        padded = F.pad(x, (0, 0, 0, max(sizes) - x.shape[0])).contiguous()
        buckets = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(buckets, padded, group=group)
        return torch.cat([b[:n] for b, n in zip(buckets, sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return total[start : start + ctx.sizes[ctx.rank]], None, None, None


def all_gather_with_grad(
    x: torch.Tensor, sizes: Sequence[int] | None = None, group: Any = None
) -> torch.Tensor:
    """Concatenate the ``(n_r, D)`` tensors of all ranks along dim 0, differentiably.

    ``sizes``: every rank's ``n_r`` (exchanged with one extra collective when omitted).
    Without an initialised process group (or with one process) ``x`` is returned as is.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return x
    world = dist.get_world_size(group)
    if world == 1:
        return x
    rank = dist.get_rank(group)
    if sizes is None:
        mine = torch.tensor([x.shape[0]], device=x.device)
        counts = [torch.zeros_like(mine) for _ in range(world)]
        dist.all_gather(counts, mine, group=group)
        sizes = [int(c) for c in counts]
    if len(sizes) != world or sizes[rank] != x.shape[0]:
        raise InputError(
            f"rank {rank}: shard sizes {list(sizes)} do not match {world} ranks and "
            f"this rank's {x.shape[0]} rows"
        )
    result: torch.Tensor = _AllGather.apply(x, list(sizes), rank, group)
    return result

"""Input checks shared by the N-modal losses.

Every loss takes ``embeddings``: a list or tuple of ``M >= 2`` tensors of shape ``(B, D)``,
one per modality, row ``i`` of each belonging to item ``i``. :func:`stack_embeddings`
checks that contract and returns one ``(M, B, D)`` tensor, so the losses can work on all
modalities at once. Each failure raises :class:`~nmodal.errors.InputError` saying which
modality is wrong and how.

Example:
    >>> z = stack_embeddings([torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 4)])
    >>> z.shape
    torch.Size([3, 8, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nmodal.errors import InputError

MIN_BATCH = 2


def stack_embeddings(
    embeddings: Sequence[torch.Tensor], *, min_batch: int = MIN_BATCH
) -> torch.Tensor:
    """Check a list of ``(B, D)`` modality embeddings and stack it into ``(M, B, D)``.

    Raises InputError for: not a list/tuple, fewer than 2 modalities, a non-tensor, a
    tensor that is not 2-D or not floating point, differing batch sizes, dimensions,
    or devices, a batch smaller than ``min_batch``, and NaN or infinite values.
    Mixed floating dtypes are promoted to a common dtype.
    """
    if torch.is_tensor(embeddings) or not isinstance(embeddings, (list, tuple)):
        hint = (
            " (for an (M, B, D) tensor z pass list(z.unbind(0)))"
            if torch.is_tensor(embeddings)
            else ""
        )
        raise InputError(
            f"embeddings must be a list or tuple of (batch, dim) tensors, one per modality; "
            f"got {type(embeddings).__name__}{hint}"
        )
    if len(embeddings) < 2:
        raise InputError(f"need at least 2 modalities, got {len(embeddings)}")
    for m, z in enumerate(embeddings):
        if not torch.is_tensor(z):
            raise InputError(f"modality {m} is a {type(z).__name__}, expected a torch.Tensor")
        if z.ndim != 2:
            raise InputError(
                f"modality {m} has shape {tuple(z.shape)}; expected a 2-D (batch, dim) tensor"
            )
        if not z.is_floating_point():
            raise InputError(f"modality {m} has dtype {z.dtype}; expected a floating-point tensor")
    first = embeddings[0]
    for m, z in enumerate(embeddings[1:], start=1):
        if z.shape[0] != first.shape[0]:
            raise InputError(
                f"modality {m} has batch {z.shape[0]}, modality 0 has {first.shape[0]}"
            )
        if z.shape[1] != first.shape[1]:
            raise InputError(
                f"modality {m} has dimension {z.shape[1]}, modality 0 has {first.shape[1]}"
            )
        if z.device != first.device:
            raise InputError(f"modality {m} is on {z.device}, modality 0 on {first.device}")
    batch = first.shape[0]
    if batch < min_batch:
        raise InputError(
            f"batch of {batch} item(s); these losses need at least {min_batch} items per batch "
            "(the other items are the negatives)"
        )
    if first.shape[1] == 0:
        raise InputError("embeddings have dimension 0")
    dtype = first.dtype
    for z in embeddings[1:]:
        dtype = torch.promote_types(dtype, z.dtype)
    stacked = torch.stack([z.to(dtype) for z in embeddings])
    if not bool(torch.isfinite(stacked).all()):
        bad = (~torch.isfinite(stacked.detach())).flatten(1).sum(dim=1)
        m = int(torch.nonzero(bad)[0, 0])
        raise InputError(f"modality {m} contains {int(bad[m])} non-finite value(s) (NaN or inf)")
    return stacked

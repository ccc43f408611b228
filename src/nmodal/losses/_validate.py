"""Input checks shared by the N-modal losses.

Every loss takes ``embeddings``: a list or tuple of ``M >= 2`` tensors of shape ``(B, D)``,
one per modality, row ``i`` of each belonging to item ``i``. :func:`stack_embeddings`
checks that contract and returns one ``(M, B, D)`` tensor, so the losses can work on all
modalities at once. Each failure raises :class:`~nmodal.errors.InputError` saying which
modality is wrong and how.

Missing modalities: a loss may also take ``masks``, one ``(B,)`` boolean tensor per modality
(``True``: item ``i`` has that artifact). :func:`stack_masks` checks them and returns an
``(M, B)`` tensor, or ``None`` when every artifact is present (the losses then take their
unmasked path, so all-True masks give exactly the unmasked value).
``stack_embeddings(..., present=...)`` replaces absent rows by zeros with ``torch.where``,
so their values (even NaN) can never reach the loss or receive a gradient.

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
    embeddings: Sequence[torch.Tensor],
    *,
    min_batch: int = MIN_BATCH,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """Check a list of ``(B, D)`` modality embeddings and stack it into ``(M, B, D)``.

    Raises InputError for: not a list/tuple, fewer than 2 modalities, a non-tensor, a
    tensor that is not 2-D or not floating point, differing batch sizes, dimensions,
    or devices, a batch smaller than ``min_batch``, and NaN or infinite values.
    Mixed floating dtypes are promoted to a common dtype. With ``present`` (an ``(M, B)``
    bool tensor from :func:`stack_masks`) only present rows are checked and absent rows
    are returned as zeros.
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
    if present is not None:
        stacked = torch.where(present[..., None], stacked, torch.zeros((), dtype=dtype))
    # one sum is ~10x cheaper than an elementwise check; only a non-finite sum (NaN/inf
    # values, or finite ones overflowing) needs the full check
    if not bool(torch.isfinite(stacked.detach().sum())) and not bool(
        torch.isfinite(stacked.detach()).all()
    ):
        bad = (~torch.isfinite(stacked.detach())).flatten(1).sum(dim=1)
        m = int(torch.nonzero(bad)[0, 0])
        raise InputError(f"modality {m} contains {int(bad[m])} non-finite value(s) (NaN or inf)")
    return stacked


def stack_masks(
    masks: Sequence[torch.Tensor] | torch.Tensor | None,
    num_modalities: int,
    batch: int,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Check per-modality presence masks and stack them into ``(M, B)`` bool on ``device``;
    ``None`` when ``masks`` is None or every artifact is present.

    Example:
        >>> stack_masks([torch.tensor([True, False]), torch.ones(2, dtype=torch.bool)], 2, 2)
        tensor([[ True, False],
                [ True,  True]])
    """
    if masks is None:
        return None
    if torch.is_tensor(masks):
        masks = list(masks.unbind(0)) if masks.ndim == 2 else [masks]
    if not isinstance(masks, (list, tuple)) or len(masks) != num_modalities:
        got = len(masks) if isinstance(masks, (list, tuple)) else type(masks).__name__
        raise InputError(
            f"masks must hold one (batch,) bool tensor per modality: "
            f"{num_modalities} expected, got {got}"
        )
    for m, mask in enumerate(masks):
        if not torch.is_tensor(mask) or mask.shape != (batch,):
            shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
            raise InputError(f"mask of modality {m} is {shape}; expected a ({batch},) tensor")
        if mask.dtype != torch.bool:
            raise InputError(f"mask of modality {m} has dtype {mask.dtype}; expected torch.bool")
    stacked = torch.stack([mask.to(device) for mask in masks])
    if bool(stacked.all()):
        return None
    return stacked


def stack_inputs(
    embeddings: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor] | torch.Tensor | None = None,
    *,
    min_batch: int = MIN_BATCH,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(z, present)``: :func:`stack_embeddings` with absent rows zeroed, and
    :func:`stack_masks` (``None`` when every artifact is present).

    Example:
        >>> z, present = stack_inputs([torch.randn(4, 2), torch.randn(4, 2)])
        >>> z.shape, present
        (torch.Size([2, 4, 2]), None)
    """
    first = embeddings[0] if isinstance(embeddings, (list, tuple)) and embeddings else None
    if masks is None or len(embeddings) < 2 or not torch.is_tensor(first) or first.ndim != 2:
        return stack_embeddings(embeddings, min_batch=min_batch), None
    present = stack_masks(masks, len(embeddings), first.shape[0], device=first.device)
    return stack_embeddings(embeddings, min_batch=min_batch, present=present), present


LOW_PRECISION = (torch.float16, torch.bfloat16)


def at_least_float32(z: torch.Tensor) -> torch.Tensor:
    """``z`` in float32 when it is half precision (mixed-precision training), else as is.
    Use inside ``torch.autocast(..., enabled=False)`` for products of several embeddings
    and determinants, which half precision cannot hold (or compute)."""
    return z.float() if z.dtype in LOW_PRECISION else z

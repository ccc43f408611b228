"""Shared machinery of the torch encoders: device and dtype choice, picture preprocessing,
and batching that backs off when the accelerator runs out of memory.

Example:
    >>> x = images_to_tensor([np.zeros((300, 400, 3), np.uint8)], size=(224, 224))
    >>> x.shape, x.dtype
    (torch.Size([1, 3, 224, 224]), torch.float32)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nmodal.errors import InputError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(device: str | None = None) -> torch.device:
    """``"auto"``/None -> the first CUDA GPU if there is one, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r} ({exc})") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return dev


def resolve_dtype(dtype: str) -> torch.dtype:
    """``"float32"|"bfloat16"|"float16"`` (or fp32/bf16/fp16) -> torch dtype."""
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    return DTYPES[dtype]


def canonical_dtype(dtype: str) -> str:
    return str(resolve_dtype(dtype)).removeprefix("torch.")


def resize_uint8(pictures: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(..., H, W, 3)`` uint8 pictures to ``size`` = (height, width).

    Bilinear with antialiasing (like PIL's ``BILINEAR``, which the Hugging Face image
    processors use), rounded back to uint8; a no-op when the size already matches. Used by
    the decoding workers and by the encoders, so both give identical pixels.
    """
    if pictures.shape[-3:-1] == tuple(size):
        return pictures
    lead = pictures.shape[:-3]
    x = torch.from_numpy(np.ascontiguousarray(pictures)).reshape(-1, *pictures.shape[-3:])
    x = x.permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    out = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out.reshape(*lead, size[0], size[1], 3)


def check_pictures(batch: Sequence[Any], ndim: int, what: str) -> None:
    for i, x in enumerate(batch):
        if (
            not isinstance(x, np.ndarray)
            or x.ndim != ndim
            or x.shape[-1] != 3
            or x.dtype != np.uint8
        ):
            got = f"{type(x).__name__} {getattr(x, 'shape', '')} {getattr(x, 'dtype', '')}"
            raise InputError(
                f"{what} input {i}: expected uint8 array with {ndim} dims (..., 3), got {got}"
            )


def stack_resized(batch: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Resize every picture (or clip) in ``batch`` to ``size`` and stack them."""
    shapes = {x.shape for x in batch}
    if len(shapes) == 1:  # the usual case: one resize call for the whole batch
        return resize_uint8(np.stack(batch), size)
    return np.stack([resize_uint8(x, size) for x in batch])


def images_to_tensor(
    batch: Sequence[np.ndarray],
    size: tuple[int, int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    scale: float = 1 / 255,
) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` pictures -> normalised float ``(N, 3, h, w)``: ``(x*scale - mean)/std``."""
    arr = stack_resized(batch, size)
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().mul_(scale)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(m).div_(s).contiguous()


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class AdaptiveBatcher:
    """Run a function over a list in batches, halving the batch size on out-of-memory.

    The reduced size is remembered for later calls. Batches are formed in input order, so
    with no out-of-memory event the batches (and so the numbers) are always the same.

    Example:
        >>> AdaptiveBatcher(4).map(lambda xs: np.array(xs)[:, None], list(range(10))).shape
        (10, 1)
    """

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)

    def map(self, fn: Callable[[list[Any]], np.ndarray], items: Sequence[Any]) -> np.ndarray:
        outputs: list[np.ndarray] = []
        start = 0
        items = list(items)
        while start < len(items):
            chunk = items[start : start + self.batch_size]
            try:
                outputs.append(fn(chunk))
            except Exception as exc:
                if not is_out_of_memory(exc) or len(chunk) == 1:
                    raise
                self.batch_size = max(1, len(chunk) // 2)
                log.warning("out of memory: batch size reduced to %d", self.batch_size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start += len(chunk)
        if not outputs:
            raise InputError("nothing to encode: empty batch")
        return np.concatenate(outputs)


def set_num_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(int(n))

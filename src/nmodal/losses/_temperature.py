"""A learnable (or fixed) temperature, shared by the losses added beyond the paper.

CLIP's parametrisation, as in :class:`~nmodal.losses.NModalCLIPLoss`: a log logit scale
initialised at ``log(1 / temperature)``; the logit scale ``1 / tau`` is clamped at
``max_logit_scale`` (the gradient flows below it).

Example:
    >>> t = TemperatureLoss(temperature=0.1, learn_temperature=False)
    >>> float(t.logit_scale())
    10.0
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nmodal.errors import InputError


def check_temperature(temperature: float, max_logit_scale: float) -> None:
    """Raise InputError unless ``0 < temperature`` and ``1 / temperature <= max_logit_scale``."""
    if (
        not (isinstance(temperature, (int, float)) and math.isfinite(temperature))
        or temperature <= 0
    ):
        raise InputError(f"temperature must be a positive number, got {temperature!r}")
    if not max_logit_scale > 0:
        raise InputError(f"max_logit_scale must be positive, got {max_logit_scale!r}")
    if 1.0 / temperature > max_logit_scale * (1 + 1e-9):
        raise InputError(
            f"temperature {temperature} gives logit scale {1.0 / temperature:.4g}, above "
            f"max_logit_scale {max_logit_scale} (raise max_logit_scale or the temperature)"
        )


class TemperatureLoss(nn.Module):
    """Base of a loss with a temperature ``tau``: ``logit_scale()`` is ``1 / tau``."""

    log_logit_scale: torch.Tensor

    def __init__(
        self,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        normalize: bool = True,
        max_logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        check_temperature(temperature, max_logit_scale)
        self.normalize = normalize
        self.learn_temperature = learn_temperature
        self.max_logit_scale = float(max_logit_scale)
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learn_temperature:
            self.log_logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_logit_scale", init)

    def logit_scale(self) -> torch.Tensor:
        """``1 / tau`` as a 0-d tensor, clamped at ``max_logit_scale``."""
        return self.log_logit_scale.exp().clamp(max=self.max_logit_scale)

    @property
    def temperature(self) -> float:
        """The current temperature ``tau`` (after clamping) as a float."""
        return float(1.0 / self.logit_scale().detach())

    def extra_repr(self) -> str:
        return (
            f"normalize={self.normalize}, temperature={self.temperature:.4g}, "
            f"learn_temperature={self.learn_temperature}, "
            f"max_logit_scale={self.max_logit_scale:g}"
        )

"""SigLIPLoss against the loop reference, the SigLIP paper's formula and a fixed input."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from nmodal.losses import SigLIPLoss
from tests.helpers.tensors import random_embeddings

from .reference import siglip_loop

embeddings = partial(random_embeddings, batch=6, dim=5)


@pytest.mark.parametrize("num", [2, 3, 4])
@pytest.mark.parametrize(
    ("temperature", "bias", "normalize"), [(0.1, -10.0, True), (0.7, 0.5, False)]
)
def test_matches_loop(num, temperature, bias, normalize):
    z = embeddings(num, seed=20 + num, scale=0.5)
    loss = SigLIPLoss(temperature=temperature, bias=bias, normalize=normalize).double()
    expected = siglip_loop(z, loss.temperature, bias, normalize=normalize)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


def test_two_modalities_is_the_siglip_paper_loss():
    x, y = embeddings(2, batch=7, seed=5)
    loss = SigLIPLoss().double()
    t = 1 / loss.temperature  # 10, up to the float32 storage of log 10
    logits = t * F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T - 10.0
    labels = 2 * torch.eye(7, dtype=torch.float64) - 1
    expected = -F.logsigmoid(labels * logits).sum() / 7
    assert loss([x, y]).item() == pytest.approx(expected.item(), rel=1e-12)
    # SigLIP's initialisation: t' = log 10, b = -10, both learnable
    assert loss.log_logit_scale.item() == pytest.approx(2.302585, rel=1e-6)
    assert loss.bias.item() == -10.0
    assert {n for n, _ in loss.named_parameters()} == {"log_logit_scale", "bias"}


def test_fixed_orthogonal_pair_by_hand():
    """Peer-style fixed input: B = 2 orthonormal items in both modalities, t = 10, b = -10.
    Diagonal logits t + b = 0, off-diagonal b = -10: the sum over the 2 x 2 matrix divided by
    B is -log sigmoid(0) - log sigmoid(10) = log 2 + log(1 + e^-10)."""
    e = torch.eye(2, dtype=torch.float64)
    loss = SigLIPLoss(temperature=0.1, learn_temperature=False, bias=-10.0).double()
    t = 1 / loss.temperature
    expected = math.log1p(math.exp(-(t - 10.0))) + math.log1p(math.exp(-10.0))
    assert loss([e, e.clone()]).item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(math.log(2) + math.log1p(math.exp(-10.0)), rel=1e-6)

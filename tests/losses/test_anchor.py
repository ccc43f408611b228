"""AnchorCLIPLoss (ImageBind-style) against the pairwise loop reference and a peer value."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from nmodal.errors import InputError
from nmodal.losses import AnchorCLIPLoss, NModalCLIPLoss, build_loss, with_modalities
from tests.helpers.tensors import random_embeddings

from .reference import pair_clip_loop, peer_inputs

embeddings = partial(random_embeddings, batch=6, dim=5)


@pytest.mark.parametrize("anchor", [0, 1, 2])
@pytest.mark.parametrize("targets", ["identity", "soft"])
def test_matches_loop(anchor, targets):
    z = embeddings(3, seed=anchor)
    loss = AnchorCLIPLoss(anchor=anchor, temperature=0.3, targets=targets).double()
    pairs = [(anchor, m) for m in range(3) if m != anchor]
    expected = pair_clip_loop(z, pairs, loss.temperature, targets=targets)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


# pytorch-metric-learning 2.9.0 on peer_inputs(3): NTXentLoss(temperature=0.5) both ways,
# averaged over the pairs (1, 0) and (1, 2)
PML_NTXENT_ANCHOR_1 = 0.7909935398272201


def test_fixed_inputs_equal_pytorch_metric_learning_ntxent():
    loss = AnchorCLIPLoss(anchor=1, temperature=0.5, learn_temperature=False).double()
    assert loss(peer_inputs(3)).item() == pytest.approx(PML_NTXENT_ANCHOR_1, rel=1e-7)


def test_by_name_and_through_with_modalities():
    z = embeddings(3, seed=4)
    by_name = AnchorCLIPLoss(anchor="video", modalities=["text", "image", "video"]).double()
    by_index = AnchorCLIPLoss(anchor=2).double()
    assert by_name(z).item() == by_index(z).item()
    spec = with_modalities({"name": "anchor", "anchor": "video"}, ["text", "image", "video"])
    assert build_loss(spec).anchor_index(3) == 2
    with pytest.raises(InputError, match="also pass modalities"):
        AnchorCLIPLoss(anchor="video")
    with pytest.raises(InputError, match="not one of the modalities"):
        AnchorCLIPLoss(anchor="audio", modalities=["text", "image"])
    with pytest.raises(InputError, match="anchor index 3 but only 3"):
        AnchorCLIPLoss(anchor=3)(z)


@pytest.mark.parametrize("anchor", [0, 1])
def test_two_modalities_equal_standard_clip(anchor):
    x, y = embeddings(2, batch=9, dim=7, seed=3)
    temperature = NModalCLIPLoss(0.07).double().temperature
    logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T / temperature
    labels = torch.arange(9)
    standard = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss = AnchorCLIPLoss(anchor=anchor, temperature=0.07).double()
    assert loss([x, y]).item() == pytest.approx(standard.item(), rel=1e-12)

"""Bad inputs to the losses raise InputError naming the modality and the problem."""

from __future__ import annotations

import pytest
import torch

from nmodal.errors import InputError
from nmodal.losses import NModalCLIPLoss, NModalTripletLoss
from nmodal.losses._validate import stack_embeddings

LOSSES = [NModalCLIPLoss(), NModalTripletLoss(), NModalCLIPLoss(targets="soft")]


def good(batch: int = 8, dim: int = 4) -> torch.Tensor:
    return torch.randn(batch, dim)


BAD = [
    ([good(128), good(128), good(64)], "modality 2 has batch 64, modality 0 has 128"),
    ([good(8, 4), good(8, 5)], "modality 1 has dimension 5, modality 0 has 4"),
    ([good()], "at least 2 modalities, got 1"),
    ([], "at least 2 modalities, got 0"),
    ([good(), torch.randn(8, 4, 2)], r"modality 1 has shape \(8, 4, 2\); expected a 2-D"),
    ([good(), torch.randn(8)], r"modality 1 has shape \(8,\)"),
    (
        [good(), good(), good().index_fill(0, torch.tensor([2]), float("nan"))],
        "modality 2 contains 4 non-finite",
    ),
    (
        [good().index_fill(1, torch.tensor([0]), float("inf")), good()],
        "modality 0 contains 8 non-finite",
    ),
    ([good(1), good(1)], "batch of 1 item"),
    ([good(), good().numpy()], "modality 1 is a ndarray"),
    ([good(), torch.ones(8, 4, dtype=torch.int64)], "modality 1 has dtype torch.int64"),
    (torch.randn(3, 8, 4), r"got Tensor \(for an \(M, B, D\) tensor"),
    ({"text": good(), "image": good()}, "got dict"),
]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize(("embeddings", "message"), BAD)
def test_bad_inputs_raise_clear_errors(loss, embeddings, message):
    with pytest.raises(InputError, match=message):
        loss(embeddings)


def test_tuple_and_mixed_float_dtypes_are_accepted():
    z = stack_embeddings(
        (torch.randn(4, 3, dtype=torch.float32), torch.randn(4, 3, dtype=torch.float64))
    )
    assert z.shape == (2, 4, 3)
    assert z.dtype == torch.float64


def test_input_errors_are_value_errors():
    with pytest.raises(ValueError):
        NModalTripletLoss()([good()])


def test_finite_values_whose_sum_overflows_are_accepted():
    # the cheap check sums the embeddings; a sum overflowing to inf must fall back to the
    # elementwise check instead of calling finite values non-finite
    big = torch.full((8, 4), 3e38)
    z = stack_embeddings([big, big.clone()])
    assert torch.equal(z[0], big)
    bad = big.clone()
    bad[1, 2] = float("inf")
    with pytest.raises(InputError, match="modality 1 contains 1 non-finite"):
        stack_embeddings([big, bad])

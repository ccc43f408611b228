"""NModalTripletLoss against loop references (the published loop and every option)."""

from __future__ import annotations

import itertools
import zlib
from functools import partial

import pytest
import torch

from nmodal.errors import InputError
from nmodal.losses import NModalTripletLoss
from nmodal.losses.triplet import pairwise_distances, positive_distances
from tests.helpers.tensors import random_embeddings

from .reference import peer_inputs, published_triplet_loop, triplet_loop

embeddings = partial(random_embeddings, batch=5, dim=4)


@pytest.mark.parametrize("num", [2, 3, 4])
def test_published_settings_match_published_loop(num):
    z = embeddings(num, batch=16, dim=8, seed=num)
    loss = NModalTripletLoss()  # soft margin, Euclidean, cyclic, sum, alpha 0.001
    value = loss(z)
    expected = published_triplet_loop(z)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    # gradients agree too
    grads = torch.autograd.grad(value, z)
    ref_grads = torch.autograd.grad(expected, z)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-12)


def test_published_settings_float32_batch_128():
    z = embeddings(3, batch=128, dim=256, seed=9, dtype=torch.float32)
    value = NModalTripletLoss()(z)
    expected = published_triplet_loop([t.detach().double() for t in z])
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def seed_of(*names: str) -> int:
    """A seed per option combination that is the same in every process (unlike hash())."""
    return zlib.crc32("/".join(names).encode()) % 1000


OPTIONS = list(
    itertools.product(
        [None, 0.3],  # margin
        ["euclidean", "cosine"],
        ["cyclic", "hardest", "semihard", "all"],
        ["sum", "mean"],
        [True, False],  # include_same_modality
    )
)


@pytest.mark.parametrize(("margin", "distance", "negatives", "reduction", "same"), OPTIONS)
def test_options_match_loop_reference(margin, distance, negatives, reduction, same):
    z = embeddings(3, seed=seed_of(distance, negatives))
    kwargs = dict(
        margin=margin,
        distance=distance,
        negatives=negatives,
        alpha=0.5,
        reduction=reduction,
        include_same_modality=same,
    )
    value = NModalTripletLoss(**kwargs)(z)
    assert value.item() == pytest.approx(triplet_loop(z, **kwargs).item(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("negatives", ["cyclic", "hardest", "semihard", "all"])
def test_four_modalities_match_loop_reference(negatives):
    z = embeddings(4, batch=4, seed=4)
    kwargs = dict(margin=0.2, negatives=negatives, reduction="mean")
    value = NModalTripletLoss(**kwargs)(z)
    assert value.item() == pytest.approx(triplet_loop(z, **kwargs).item(), rel=1e-9)


def test_semihard_test_data_covers_both_branches():
    # The options test relies on seeds where some (a, p, q, i) have a negative farther than
    # the positive and some have none (the fallback); check that both occur.
    for distance in ("euclidean", "cosine"):
        z = torch.stack([t.detach() for t in embeddings(3, seed=seed_of(distance, "semihard"))])
        d_ap = positive_distances(z, distance)  # (a, p, i)
        full = pairwise_distances(z, distance)  # (a, q, i, j)
        off = ~torch.eye(z.shape[1], dtype=torch.bool)
        farther = ((full[:, None] > d_ap[:, :, None, :, None]) & off).any(-1)
        assert farther.any() and not farther.all()


def test_pairwise_distances_match_cdist():
    z = torch.stack([t.detach() for t in embeddings(3, batch=6, dim=5, seed=2)])
    full = pairwise_distances(z, "euclidean")
    for a, q in itertools.product(range(3), range(3)):
        torch.testing.assert_close(full[a, q], torch.cdist(z[a], z[q]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("negatives", ["cyclic", "hardest", "semihard", "all"])
def test_permuting_modalities(negatives):
    z = embeddings(4, batch=6, seed=3)
    loss = NModalTripletLoss(margin=0.1, negatives=negatives)
    base = loss(z).item()
    for order in ([3, 1, 0, 2], [1, 0, 3, 2]):
        assert loss([z[k] for k in order]).item() == pytest.approx(base, rel=1e-12)


@pytest.mark.parametrize("negatives", ["cyclic", "hardest", "semihard", "all"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("case", ["identical_modalities", "identical_items", "zeros"])
def test_gradients_finite(negatives, distance, case):
    base = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    if case == "identical_modalities":  # d(a, p) = 0 for every pair
        z = [base.clone().requires_grad_() for _ in range(3)]
    elif case == "identical_items":  # every distance 0
        z = [base[:1].expand(6, 8).clone().requires_grad_() for _ in range(3)]
    else:
        z = [torch.zeros(6, 8, requires_grad=True) for _ in range(3)]
    value = NModalTripletLoss(negatives=negatives, distance=distance)(z)
    value.backward()
    assert torch.isfinite(value)
    assert all(torch.isfinite(t.grad).all() for t in z)


def test_anchor_equals_positive_gives_zero_positive_distance_and_finite_grad():
    z = embeddings(3, batch=6, seed=8, dtype=torch.float32)
    stacked = torch.stack(z)
    d_ap = positive_distances(stacked, "euclidean")
    assert torch.equal(torch.diagonal(d_ap, dim1=0, dim2=1), torch.zeros(6, 3))
    NModalTripletLoss()(z).backward()
    assert all(torch.isfinite(t.grad).all() for t in z)


def test_alpha_scales_and_hardest_is_at_least_cyclic():
    z = embeddings(3, batch=8, seed=6)
    one = NModalTripletLoss(alpha=1.0)(z).item()
    assert NModalTripletLoss(alpha=0.001)(z).item() == pytest.approx(one * 0.001, rel=1e-12)
    assert NModalTripletLoss(alpha=1.0, negatives="hardest")(z).item() >= one


def test_term_counts_with_and_without_same_modality():
    # Hinge with a huge margin makes each term margin + d_ap - d_an; with all
    # embeddings equal every distance is 0, so the sum counts the terms.
    z = [torch.ones(5, 3) for _ in range(3)]
    for negatives, per_anchor in (("cyclic", 1), ("all", 4)):
        with_same = NModalTripletLoss(margin=1.0, alpha=1.0, negatives=negatives)(z)
        without = NModalTripletLoss(
            margin=1.0, alpha=1.0, negatives=negatives, include_same_modality=False
        )(z)
        assert float(with_same) == pytest.approx(27 * 5 * per_anchor)
        assert float(without) == pytest.approx(18 * 5 * per_anchor)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"margin": -0.1},
        {"margin": float("nan")},
        {"distance": "manhattan"},
        {"negatives": "random"},
        {"reduction": "none"},
    ],
)
def test_bad_options(kwargs):
    with pytest.raises(InputError):
        NModalTripletLoss(**kwargs)


# pytorch-metric-learning 2.9.0 on the 3 peer_inputs modalities concatenated (labels: the
# item): TripletMarginLoss(margin=0.2, reducer=MeanReducer()), every triplet with anchor and
# positive of one item in different rows, the negative of another item
PML_TRIPLET = {"euclidean": 0.01851235351417775, "cosine": 0.028863582809322396}


def pml_equivalent(distance: str) -> NModalTripletLoss:
    return NModalTripletLoss(
        margin=0.2,
        distance=distance,
        negatives="all",
        reduction="mean",
        alpha=1.0,
        include_same_modality=False,
    )


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_fixed_inputs_equal_pytorch_metric_learning_triplet_margin(distance):
    value = pml_equivalent(distance)(peer_inputs(3)).item()
    assert value == pytest.approx(PML_TRIPLET[distance], rel=1e-9)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("num", [2, 3, 4])
def test_equals_the_installed_pytorch_metric_learning_triplet_margin(distance, num):
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.reducers import MeanReducer

    z = [t.detach() for t in embeddings(num, batch=6, seed=80 + num)]
    measure = (
        LpDistance(normalize_embeddings=False) if distance == "euclidean" else CosineSimilarity()
    )
    peer = TripletMarginLoss(margin=0.2, distance=measure, reducer=MeanReducer())
    expected = peer(torch.cat(z), torch.arange(6).repeat(num))
    assert pml_equivalent(distance)(z).item() == pytest.approx(expected.item(), rel=1e-9)

"""Missing modalities in the losses: only existing pairs/triples/tuples count, absent rows
never matter, all-True masks change nothing."""

from __future__ import annotations

import pytest
import torch

from nmodal.errors import InputError
from nmodal.losses import (
    AnchorCLIPLoss,
    GramLoss,
    NModalCLIPLoss,
    NModalTripletLoss,
    SigLIPLoss,
    SymileLoss,
)
from tests.helpers.reference import all_pairs, pair_clip_loop, siglip_loop, triplet_masked_loop

BATCH = 8


def make(num: int = 3, batch: int = BATCH, dim: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=gen, dtype=torch.float64) for _ in range(num)]


def make_masks(num: int = 3, batch: int = BATCH, seed: int = 0, rate: float = 0.35):
    gen = torch.Generator().manual_seed(seed)
    masks = torch.rand(num, batch, generator=gen) >= rate
    masks[:, :3] = True  # a few complete items, so every loss has something to contrast
    return list(masks)


def all_losses():
    return [
        NModalCLIPLoss(temperature=0.2),
        NModalCLIPLoss(temperature=0.5, learn_temperature=False, targets="soft", normalize=False),
        AnchorCLIPLoss(anchor=1, temperature=0.2),
        SigLIPLoss(temperature=0.3, bias=-1.0),
        NModalTripletLoss(),
        NModalTripletLoss(negatives="hardest", reduction="mean"),
        NModalTripletLoss(negatives="semihard", margin=0.2),
        NModalTripletLoss(negatives="all", distance="cosine", include_same_modality=False),
        SymileLoss(temperature=0.2),
        SymileLoss(temperature=0.2, negative_sampling="n_squared"),
        GramLoss(temperature=0.2),
    ]


LOSSES = all_losses()
IDS = [f"{type(x).__name__}-{i}" for i, x in enumerate(LOSSES)]


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
def test_all_true_masks_give_exactly_the_unmasked_value(loss):
    z = make(seed=1)
    loss = loss.double()
    ones = [torch.ones(BATCH, dtype=torch.bool) for _ in z]
    assert loss(z, masks=ones).item() == loss(z).item()
    assert loss(z, masks=None).item() == loss(z).item()


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
def test_absent_rows_change_neither_loss_nor_gradients(loss):
    loss = loss.double()
    masks = make_masks(seed=2)
    base = make(seed=3)
    other = [
        torch.where(m[:, None], z, 100 * torch.randn_like(z))
        for z, m in zip(base, masks, strict=True)
    ]
    nan = [torch.where(m[:, None], z, torch.nan) for z, m in zip(base, masks, strict=True)]
    results = []
    for z in (base, other, nan):
        leaves = [t.clone().requires_grad_() for t in z]
        loss.zero_grad()
        value = loss(leaves, masks=masks)
        value.backward()
        grads = [t.grad for t in leaves]
        params = [p.grad.clone() for p in loss.parameters() if p.grad is not None]
        for g, m in zip(grads, masks, strict=True):
            assert torch.all(g[~m] == 0)  # absent rows receive no gradient
        results.append((value.item(), grads, params))
    (v0, g0, p0), *rest = results
    assert v0 != 0
    for v, g, p in rest:
        assert v == v0
        for a, b in zip(g, g0, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        for a, b in zip(p, p0, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("targets", ["identity", "soft"])
def test_masked_clip_matches_loop(seed, targets):
    z = make(num=4, seed=10 + seed)
    masks = make_masks(num=4, seed=seed)
    loss = NModalCLIPLoss(temperature=0.3, targets=targets, learn_temperature=False).double()
    expected = pair_clip_loop(z, all_pairs(4), loss.temperature, masks=masks, targets=targets)
    assert loss(z, masks=masks).item() == pytest.approx(expected, rel=1e-10)


def test_masked_anchor_matches_loop():
    z, masks = make(seed=4), make_masks(seed=4)
    loss = AnchorCLIPLoss(anchor=2, temperature=0.3).double()
    expected = pair_clip_loop(z, [(2, 0), (2, 1)], loss.temperature, masks=masks)
    assert loss(z, masks=masks).item() == pytest.approx(expected, rel=1e-10)


def test_masked_siglip_matches_loop():
    z, masks = make(num=4, seed=5), make_masks(num=4, seed=5)
    loss = SigLIPLoss(temperature=0.4, bias=-2.0).double()
    expected = siglip_loop(z, loss.temperature, -2.0, masks=masks)
    assert loss(z, masks=masks).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("negatives", ["cyclic", "hardest", "all"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_masked_triplet_matches_loop(negatives, reduction):
    z, masks = make(seed=6), make_masks(seed=6)
    loss = NModalTripletLoss(negatives=negatives, reduction=reduction)
    expected = triplet_masked_loop(z, masks, negatives=negatives, reduction=reduction)
    assert loss(z, masks=masks).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "loss", [SymileLoss(), SymileLoss(negative_sampling="n_squared"), GramLoss(anchor=1)]
)
def test_higher_order_losses_use_complete_items_only(loss):
    z, masks = make(seed=7), make_masks(seed=7)
    complete = torch.stack(masks).all(0)
    assert 2 <= int(complete.sum()) < BATCH
    loss = loss.double()
    expected = loss([t[complete] for t in z]).item()
    assert loss(z, masks=masks).item() == pytest.approx(expected, rel=1e-12)


def test_pair_without_two_items_contributes_nothing():
    z = make(num=3, batch=4, seed=8)
    # modality 2 only for item 0: pairs (0,2) and (1,2) have one valid item each
    masks = [torch.ones(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool)]
    masks.append(torch.tensor([True, False, False, False]))
    loss = NModalCLIPLoss(temperature=0.3).double()
    only01 = loss(z[:2]).item()
    assert loss(z, masks=masks).item() == pytest.approx(only01, rel=1e-12)


def test_no_contrastable_items_gives_zero_with_a_gradient():
    z = [t.requires_grad_() for t in make(num=3, batch=4, seed=9)]
    masks = [torch.tensor([True, True, False, False]), torch.tensor([False, False, True, True])]
    masks.append(torch.tensor([True, False, True, False]))
    for loss in (NModalCLIPLoss(), SymileLoss(), GramLoss()):
        value = loss.double()(z, masks=masks)
        assert value.item() == 0.0
        value.backward()


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ([torch.ones(BATCH, dtype=torch.bool)] * 2, "one \\(batch,\\) bool tensor per modality"),
        (
            [torch.ones(BATCH, dtype=torch.bool)] * 2 + [torch.ones(4, dtype=torch.bool)],
            "mask of modality 2",
        ),
        ([torch.ones(BATCH)] * 3, "dtype torch.float32; expected torch.bool"),
    ],
)
def test_bad_masks(masks, message):
    with pytest.raises(InputError, match=message):
        NModalCLIPLoss()(make(), masks=masks)


def test_masks_as_a_stacked_tensor():
    z, masks = make(seed=11), make_masks(seed=11)
    loss = NModalCLIPLoss().double()
    assert loss(z, masks=torch.stack(masks)).item() == loss(z, masks=masks).item()

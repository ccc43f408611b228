"""The losses beyond the paper against loop references; two-modality reductions to CLIP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmodal.errors import InputError
from nmodal.losses import (
    LOSS_NAMES,
    AnchorCLIPLoss,
    GramLoss,
    NModalCLIPLoss,
    SigLIPLoss,
    SymileLoss,
    build_loss,
    with_modalities,
)

from .reference import gram_loop, pair_clip_loop, siglip_loop, symile_loop


def embeddings(num: int, batch: int = 6, dim: int = 5, seed: int = 0, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (scale * torch.randn(batch, dim, generator=gen, dtype=torch.float64)).requires_grad_()
        for _ in range(num)
    ]


def standard_clip(x: torch.Tensor, y: torch.Tensor, temperature: float) -> float:
    """The two-tower CLIP loss, written directly."""
    logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T / temperature
    labels = torch.arange(len(x))
    return float((F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)).detach() / 2)


def test_registered_and_built_by_name():
    assert {"symile", "gram", "anchor", "siglip"} <= set(LOSS_NAMES)
    assert isinstance(build_loss({"name": "symile", "negative_sampling": "n_squared"}), SymileLoss)
    assert isinstance(build_loss("gram"), GramLoss)
    assert isinstance(build_loss({"name": "anchor", "anchor": 2}), AnchorCLIPLoss)
    siglip = build_loss({"name": "siglip", "temperature": 0.5, "learn_temperature": False})
    assert isinstance(siglip, SigLIPLoss)
    assert siglip.temperature == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["symile", "gram", "anchor", "siglip"])
def test_common_keywords(name):
    loss = build_loss(
        {"name": name, "temperature": 0.25, "learn_temperature": False, "normalize": False}
    )
    assert loss.temperature == pytest.approx(0.25)
    assert loss.normalize is False
    assert not any(p is loss.log_logit_scale for p in loss.parameters())
    learn = build_loss({"name": name, "temperature": 0.25})
    assert any(p is learn.log_logit_scale for p in learn.parameters())
    with pytest.raises(InputError, match="temperature must be a positive"):
        build_loss({"name": name, "temperature": -1.0})


# ---------------------------------------------------------------- anchor


@pytest.mark.parametrize("anchor", [0, 1, 2])
@pytest.mark.parametrize("targets", ["identity", "soft"])
def test_anchor_matches_loop(anchor, targets):
    z = embeddings(3, seed=anchor)
    loss = AnchorCLIPLoss(anchor=anchor, temperature=0.3, targets=targets).double()
    pairs = [(anchor, m) for m in range(3) if m != anchor]
    expected = pair_clip_loop(z, pairs, loss.temperature, targets=targets)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


def test_anchor_by_name_and_through_with_modalities():
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


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_two_modalities_anchor_pairwise_symile_equal_standard_clip(temperature):
    x, y = embeddings(2, batch=9, dim=7, seed=3)
    # the temperature the losses hold (exp of a float32 log logit scale)
    expected = standard_clip(x, y, NModalCLIPLoss(temperature).double().temperature)
    kw = dict(temperature=temperature)
    for loss in [
        NModalCLIPLoss(**kw),
        AnchorCLIPLoss(anchor=0, **kw),
        AnchorCLIPLoss(anchor=1, **kw),
        SymileLoss(negative_sampling="n", **kw),
        SymileLoss(negative_sampling="n_squared", **kw),
    ]:
        assert loss.double()([x, y]).item() == pytest.approx(expected, rel=1e-12), loss


# ---------------------------------------------------------------- siglip


@pytest.mark.parametrize("num", [2, 3, 4])
@pytest.mark.parametrize(
    ("temperature", "bias", "normalize"), [(0.1, -10.0, True), (0.7, 0.5, False)]
)
def test_siglip_matches_loop(num, temperature, bias, normalize):
    z = embeddings(num, seed=20 + num, scale=0.5)
    loss = SigLIPLoss(temperature=temperature, bias=bias, normalize=normalize).double()
    expected = siglip_loop(z, loss.temperature, bias, normalize=normalize)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


def test_siglip_two_modalities_is_the_siglip_paper_loss():
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


# ---------------------------------------------------------------- symile


@pytest.mark.parametrize("num", [3, 4])
@pytest.mark.parametrize("sampling", ["n", "n_squared"])
def test_symile_matches_loop(num, sampling):
    z = embeddings(num, batch=5, dim=4, seed=30 + num)
    loss = SymileLoss(temperature=0.2, negative_sampling=sampling).double()
    expected = symile_loop(z, loss.temperature, sampling)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


def test_symile_without_normalisation_and_gradient_flows():
    z = embeddings(3, batch=5, dim=4, seed=8, scale=0.5)
    loss = SymileLoss(temperature=0.5, normalize=False, negative_sampling="n_squared").double()
    value = loss(z)
    assert value.item() == pytest.approx(
        symile_loop(z, 0.5, "n_squared", normalize=False), rel=1e-10
    )
    value.backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in z)
    assert loss.log_logit_scale.grad is not None


def test_symile_n_squared_three_modalities_any_split_gives_the_same_loss():
    """For M = 3 the two choices of the free non-anchor modality are the same candidates."""
    from nmodal.losses.symile import symile_logits_n_squared

    z = torch.stack(embeddings(3, batch=5, seed=2)).detach()
    labels = torch.arange(5) * 6
    for anchor in range(3):
        s1, s2 = [m for m in range(3) if m != anchor]
        a = F.cross_entropy(symile_logits_n_squared(z, anchor, s1), labels)
        b = F.cross_entropy(symile_logits_n_squared(z, anchor, s2), labels)
        assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_symile_bad_sampling():
    with pytest.raises(InputError, match="negative_sampling"):
        SymileLoss(negative_sampling="all")


# ---------------------------------------------------------------- gram


@pytest.mark.parametrize("num", [2, 3, 4])
@pytest.mark.parametrize("anchor", [0, 1])
def test_gram_matches_loop(num, anchor):
    z = embeddings(num, batch=5, dim=6, seed=40 + num)
    loss = GramLoss(anchor=anchor, temperature=0.1).double()
    expected = gram_loop(z, loss.temperature, anchor=anchor)
    assert loss(z).item() == pytest.approx(expected, rel=1e-9)


def test_gram_two_modalities_volume_is_sine():
    from nmodal.losses.gram import tuple_volumes

    x, y = (F.normalize(t.detach(), dim=-1) for t in embeddings(2, batch=4, seed=1))
    cos = x @ y.T
    vol = tuple_volumes(x, y[None])
    torch.testing.assert_close(vol, (1 - cos**2).sqrt(), rtol=1e-9, atol=1e-12)


def test_gram_gradients_are_finite_for_aligned_tuples():
    base = torch.randn(4, 8, dtype=torch.float64)
    z = [base.clone().requires_grad_() for _ in range(3)]  # positives exactly collinear
    GramLoss().double()(z).backward()
    assert all(torch.isfinite(t.grad).all() for t in z)


@pytest.mark.parametrize(
    "loss", [GramLoss(), SymileLoss(), SymileLoss(negative_sampling="n_squared")], ids=str
)
def test_higher_order_losses_compute_in_float32_under_half_precision(loss):
    z32 = [t.detach().float() for t in embeddings(3, batch=6, dim=8, seed=12)]
    z16 = [t.bfloat16().requires_grad_() for t in z32]
    reference = loss([t.bfloat16().float() for t in z32])
    value = loss(z16)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)
    value.backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in z16)

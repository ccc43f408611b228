"""NModalCLIPLoss against loop references, the standard CLIP loss, and its temperature."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from nmodal.losses import NModalCLIPLoss, build_loss
from nmodal.model import ModelConfig, NModalModel
from tests.helpers.tensors import random_embeddings

from .reference import clip_identity_loop, clip_soft_loop, peer_inputs

embeddings = partial(random_embeddings, batch=6, dim=5)


@pytest.mark.parametrize("num", [2, 3, 4])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_identity_matches_loop_reference(num, temperature):
    z = embeddings(num, seed=num)
    loss = NModalCLIPLoss(temperature=temperature).double()
    expected = clip_identity_loop(z, loss.temperature)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


def test_identity_without_normalisation_matches_loop_reference():
    z = embeddings(3, scale=0.3)
    loss = NModalCLIPLoss(temperature=0.5, normalize=False).double()
    expected = clip_identity_loop(z, loss.temperature, normalize=False)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


def test_two_modalities_equal_standard_clip_loss():
    z_img, z_txt = embeddings(2, batch=9, dim=7, seed=3)
    loss = NModalCLIPLoss(temperature=0.07).double()
    img, txt = F.normalize(z_img, dim=-1), F.normalize(z_txt, dim=-1)
    logits = img @ txt.T / loss.temperature
    labels = torch.arange(9)
    standard = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert loss([z_img, z_txt]).item() == pytest.approx(standard.item(), rel=1e-12)


@pytest.mark.parametrize("num", [2, 3, 4])
@pytest.mark.parametrize(("temperature", "normalize"), [(1.0, False), (0.5, True), (2.0, False)])
def test_soft_targets_match_published_formula(num, temperature, normalize):
    z = embeddings(num, seed=10 + num, scale=0.6)
    loss = NModalCLIPLoss(
        temperature=temperature, learn_temperature=False, targets="soft", normalize=normalize
    ).double()
    expected = clip_soft_loop(z, loss.temperature, normalize=normalize)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


def test_soft_targets_differ_from_renormalised_transpose():
    # The published code does not renormalise T^T: check the loss is sensitive to that.
    z = embeddings(2, seed=5, scale=0.8)
    loss = NModalCLIPLoss(temperature=1.0, learn_temperature=False, targets="soft", normalize=False)
    logits = z[0] @ z[1].T
    soft = F.softmax((z[0] @ z[0].T + z[1] @ z[1].T) / 2, dim=-1)
    rows = -(soft * F.log_softmax(logits, -1)).sum(-1).mean()
    renorm = soft.T / soft.T.sum(-1, keepdim=True)
    cols_renorm = -(renorm * F.log_softmax(logits.T, -1)).sum(-1).mean()
    assert loss.double()(z).item() != pytest.approx(((rows + cols_renorm) / 2).item(), rel=1e-6)


def test_permuting_modalities_leaves_identity_loss_unchanged():
    z = embeddings(4, seed=7)
    loss = NModalCLIPLoss(temperature=0.2).double()
    base = loss(z).item()
    for order in ([3, 1, 0, 2], [1, 0, 3, 2], [2, 3, 1, 0]):
        assert loss([z[k] for k in order]).item() == pytest.approx(base, rel=1e-12)


def test_soft_loss_depends_on_modality_order_as_published():
    # Swapping a and b turns rows-vs-T into rows-vs-T^T: the published loss is not symmetric.
    z = embeddings(2, seed=7, scale=0.8)
    loss = NModalCLIPLoss(temperature=1.0, learn_temperature=False, targets="soft", normalize=False)
    loss = loss.double()
    assert loss(z).item() != pytest.approx(loss(z[::-1]).item(), rel=1e-6)
    assert loss(z[::-1]).item() == pytest.approx(clip_soft_loop(z[::-1]), rel=1e-10)


@pytest.mark.parametrize("targets", ["identity", "soft"])
@pytest.mark.parametrize("case", ["identical_modalities", "identical_items", "zeros"])
def test_gradients_finite(targets, case):
    base = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    if case == "identical_modalities":
        z = [base.clone().requires_grad_() for _ in range(3)]
    elif case == "identical_items":
        z = [base[:1].expand(8, 16).clone().requires_grad_() for _ in range(3)]
    else:
        z = [torch.zeros(8, 16, requires_grad=True) for _ in range(3)]
    loss = NModalCLIPLoss(targets=targets)
    value = loss(z)
    value.backward()
    assert torch.isfinite(value)
    assert all(torch.isfinite(t.grad).all() for t in z)
    assert torch.isfinite(loss.log_logit_scale.grad)


def test_learnable_temperature_gets_gradient_and_moves():
    z = embeddings(3, batch=16, dim=8, seed=1)
    loss = NModalCLIPLoss(temperature=0.07)
    assert loss.temperature == pytest.approx(0.07, rel=1e-6)
    assert [name for name, _ in loss.named_parameters()] == ["log_logit_scale"]
    loss([t.float() for t in z]).backward()
    assert loss.log_logit_scale.grad is not None
    assert float(loss.log_logit_scale.grad) != 0.0
    with torch.no_grad():
        loss.log_logit_scale -= 0.5 * loss.log_logit_scale.grad
    assert loss.temperature != pytest.approx(0.07, rel=1e-6)


def test_logit_scale_is_clamped():
    z = [t.detach().float() for t in embeddings(3, seed=2)]
    loss = NModalCLIPLoss(temperature=0.07, max_logit_scale=100.0)
    with torch.no_grad():
        loss.log_logit_scale.fill_(math.log(1000.0))
    assert loss.temperature == pytest.approx(0.01, rel=1e-6)
    value = loss(z)
    value.backward()
    assert float(loss.log_logit_scale.grad) == 0.0  # no push beyond the clamp
    at_max = NModalCLIPLoss(temperature=0.01, max_logit_scale=100.0)
    assert value.item() == pytest.approx(at_max(z).item(), rel=1e-6)


def test_fixed_temperature_is_a_buffer():
    loss = NModalCLIPLoss(temperature=1.0, learn_temperature=False, targets="soft", normalize=False)
    assert list(loss.parameters()) == []
    assert "log_logit_scale" in loss.state_dict()
    assert loss.temperature == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"temperature": float("nan")},
        {"temperature": 0.001},  # logit scale 1000 > max_logit_scale
        {"targets": "hard"},
        {"max_logit_scale": 0.0},
    ],
)
def test_bad_options(kwargs):
    from nmodal.errors import InputError

    with pytest.raises(InputError):
        NModalCLIPLoss(**kwargs)


def test_temperature_saved_with_model(tmp_path):
    config = ModelConfig(
        modalities=["text", "image"],
        input_dims={"text": 6, "image": 4},
        loss={"name": "clip", "temperature": 0.07},
    )
    model = NModalModel(config, loss=build_loss(config.loss))
    with torch.no_grad():
        model.loss.log_logit_scale.fill_(math.log(1 / 0.05))
    model.save(tmp_path / "m")
    loaded = NModalModel.load(tmp_path / "m")
    assert isinstance(loaded.loss, NModalCLIPLoss)
    assert loaded.loss.temperature == pytest.approx(0.05, rel=1e-6)


# pytorch-metric-learning 2.9.0 on peer_inputs: NTXentLoss(temperature=0.5) with ref_emb,
# both directions averaged, then averaged over the modality pairs
PML_NTXENT = {2: 0.7317576578174536, 3: 0.821335933966492}


@pytest.mark.parametrize("num", [2, 3])
def test_fixed_inputs_equal_pytorch_metric_learning_ntxent(num):
    loss = NModalCLIPLoss(temperature=0.5, learn_temperature=False).double()
    assert loss(peer_inputs(num)).item() == pytest.approx(PML_NTXENT[num], rel=1e-7)


@pytest.mark.parametrize("num", [2, 3, 4])
def test_equals_the_installed_pytorch_metric_learning_ntxent(num):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    z = [t.detach() for t in embeddings(num, seed=70 + num)]
    loss = NModalCLIPLoss(temperature=0.1, learn_temperature=False).double()
    ntxent = pml.NTXentLoss(temperature=loss.temperature)
    labels = torch.arange(len(z[0]))

    def two_way(x, y):
        forward = ntxent(x, labels, ref_emb=y, ref_labels=labels.clone())
        return (forward + ntxent(y, labels, ref_emb=x, ref_labels=labels.clone())) / 2

    pairs = [(a, b) for a in range(num) for b in range(a + 1, num)]
    expected = sum(two_way(z[a], z[b]) for a, b in pairs) / len(pairs)
    assert loss(z).item() == pytest.approx(expected.item(), rel=1e-9)

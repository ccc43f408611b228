"""SymileLoss against loop references, the Symile package's values, and the CLIP loss."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

import nmodal.losses.symile as symile_module
from nmodal.errors import InputError
from nmodal.losses import NModalCLIPLoss, SymileLoss, build_loss
from tests.helpers.tensors import random_embeddings

from .reference import symile_loop

SAMPLINGS = ["n", "n_squared", "n_squared_tied"]

embeddings = partial(random_embeddings, batch=5, dim=4)


# ------------------------------------------------ all combinations = the Symile package's mode


@pytest.mark.parametrize("num", [2, 3, 4])
def test_n_squared_is_all_combinations_of_the_loop_reference(num):
    z = embeddings(num, seed=30 + num)
    loss = SymileLoss(temperature=0.2, negative_sampling="n_squared").double()
    expected = symile_loop(z, loss.temperature, "n_squared")
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("num", [2, 3, 4])
def test_n_squared_float32_within_1e5_of_the_loop_reference(num):
    z = [t.detach().float() for t in embeddings(num, batch=6, dim=8, seed=50 + num)]
    loss = SymileLoss(temperature=0.1, negative_sampling="n_squared")
    expected = symile_loop(z, loss.temperature, "n_squared")
    assert abs(loss(z).item() - expected) < 1e-5


def test_n_squared_candidate_count_grows_as_b_to_the_m_minus_1():
    """The loop reference's candidates for M = 4: every (j, k, l) once, the positive once."""
    from .reference import symile_candidates

    (cands,), (pos,) = symile_candidates(
        batch=3, num=4, anchor=1, i=2, negative_sampling="n_squared"
    )
    assert len(cands) == 27 and len({tuple(c) for c in cands}) == 27
    assert cands[pos] == [(0, 2), (2, 2), (3, 2)]


def test_n_squared_chunked_equals_unchunked_values_and_gradients(monkeypatch):
    """Above the chunk bound the logits are computed in checkpointed chunks."""
    z = embeddings(4, batch=7, dim=5, seed=3)
    loss = SymileLoss(temperature=0.3, negative_sampling="n_squared").double()
    whole = loss(z)
    grads = torch.autograd.grad(whole, [*z, loss.log_logit_scale])
    monkeypatch.setattr(symile_module, "ALL_COMBINATIONS_CHUNK", 7 * 7 * 2)  # 2 items a chunk
    chunked = loss(z)
    chunked_grads = torch.autograd.grad(chunked, [*z, loss.log_logit_scale])
    assert chunked.item() == pytest.approx(whole.item(), rel=1e-12)
    for a, b in zip(chunked_grads, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_n_squared_refuses_a_candidate_set_too_large_to_hold(monkeypatch):
    monkeypatch.setattr(symile_module, "MAX_COMBINATION_ENTRIES", 100)
    with pytest.raises(InputError, match="n_squared_tied"):
        SymileLoss(negative_sampling="n_squared")(
            [t.detach() for t in embeddings(4, batch=6, dim=4)]
        )


# ------------------------------------------------ the Symile package on fixed inputs

BASE = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [0.6, 0.8, 0.0]], dtype=torch.float64)


def fixed_inputs(num: int) -> list[torch.Tensor]:
    """Modality m: the base rows rolled by m features and scaled by 1 + m / 4."""
    return [torch.roll(BASE, shifts=m, dims=1) * (1 + 0.25 * m) for m in range(num)]


# symile 0.1.0 (PyPI): Symile("n_squared")(fixed_inputs(M), logit_scale=2.0), float64
SYMILE_PACKAGE_N_SQUARED = {3: 2.7491158833415628, 4: 4.2593404023312935, 5: 6.206726311029735}


@pytest.mark.parametrize("num", [3, 4, 5])
def test_n_squared_equals_the_symile_package_on_fixed_inputs(num):
    loss = SymileLoss(
        temperature=0.5, learn_temperature=False, normalize=False, negative_sampling="n_squared"
    ).double()
    # the package's logit scale is exactly 2; nmodal's is exp of a float32 log(2)
    scale = float(loss.logit_scale())
    value = loss(fixed_inputs(num)).item()
    expected = symile_loop(fixed_inputs(num), 1 / scale, "n_squared", normalize=False)
    assert value == pytest.approx(expected, rel=1e-10)
    assert value == pytest.approx(SYMILE_PACKAGE_N_SQUARED[num], rel=1e-6)


@pytest.mark.parametrize("num", [3, 4, 5])
def test_n_squared_equals_the_installed_symile_package(num):
    symile = pytest.importorskip("symile")
    z = [t.detach() for t in embeddings(num, batch=4, dim=6, seed=num)]
    units = [F.normalize(t, dim=-1) for t in z]
    loss = SymileLoss(temperature=0.05, negative_sampling="n_squared").double()
    expected = symile.Symile("n_squared")(units, loss.logit_scale().double())
    assert loss(z).item() == pytest.approx(expected.item(), rel=1e-10)


def test_tied_generalisation_differs_from_the_package_for_four_modalities():
    """n_squared_tied is nmodal's own candidate set for M > 3 (the issue's 4.07 vs 2.67)."""
    z = fixed_inputs(4)
    kw = dict(temperature=0.5, learn_temperature=False, normalize=False)
    full = SymileLoss(negative_sampling="n_squared", **kw).double()(z).item()
    tied = SymileLoss(negative_sampling="n_squared_tied", **kw).double()(z).item()
    assert full == pytest.approx(SYMILE_PACKAGE_N_SQUARED[4], rel=1e-6)
    assert tied < full - 0.5  # B^2 candidates instead of B^3: a smaller log-partition


# ------------------------------------------------ the other modes and shared behaviour


@pytest.mark.parametrize("num", [3, 4])
@pytest.mark.parametrize("sampling", ["n", "n_squared_tied"])
def test_other_modes_match_loop(num, sampling):
    z = embeddings(num, seed=30 + num)
    loss = SymileLoss(temperature=0.2, negative_sampling=sampling).double()
    expected = symile_loop(z, loss.temperature, sampling)
    assert loss(z).item() == pytest.approx(expected, rel=1e-10)


def test_three_modalities_tied_is_all_combinations():
    z = embeddings(3, seed=9)
    full = SymileLoss(negative_sampling="n_squared").double()(z)
    tied = SymileLoss(negative_sampling="n_squared_tied").double()(z)
    assert full.item() == pytest.approx(tied.item(), rel=1e-12)


def test_tied_three_modalities_any_split_gives_the_same_loss():
    """For M = 3 the two choices of the free non-anchor modality are the same candidates."""
    from nmodal.losses.symile import symile_logits_n_squared_tied

    z = torch.stack(embeddings(3, batch=5, seed=2)).detach()
    labels = torch.arange(5) * 6
    for anchor in range(3):
        s1, s2 = [m for m in range(3) if m != anchor]
        a = F.cross_entropy(symile_logits_n_squared_tied(z, anchor, s1), labels)
        b = F.cross_entropy(symile_logits_n_squared_tied(z, anchor, s2), labels)
        assert a.item() == pytest.approx(b.item(), rel=1e-12)


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_two_modalities_equal_standard_clip(sampling):
    x, y = embeddings(2, batch=9, dim=7, seed=3)
    clip = NModalCLIPLoss(0.07).double()
    logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T / clip.temperature
    labels = torch.arange(9)
    standard = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss = SymileLoss(temperature=0.07, negative_sampling=sampling).double()
    assert loss([x, y]).item() == pytest.approx(standard.item(), rel=1e-12)


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_without_normalisation_and_gradient_flows(sampling):
    z = embeddings(4, batch=5, dim=4, seed=8, scale=0.5)
    loss = SymileLoss(temperature=0.5, normalize=False, negative_sampling=sampling).double()
    value = loss(z)
    expected = symile_loop(z, loss.temperature, sampling, normalize=False)
    assert value.item() == pytest.approx(expected, rel=1e-10)
    value.backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in z)
    assert loss.log_logit_scale.grad is not None


def test_built_by_name_and_bad_sampling():
    assert build_loss({"name": "symile", "negative_sampling": "n_squared"}).negative_sampling == (
        "n_squared"
    )
    with pytest.raises(InputError, match="n_squared_tied"):
        SymileLoss(negative_sampling="all")


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_computes_in_float32_under_half_precision(sampling):
    loss = SymileLoss(negative_sampling=sampling)
    z32 = [t.detach().float() for t in embeddings(3, batch=6, dim=8, seed=12)]
    z16 = [t.bfloat16().requires_grad_() for t in z32]
    reference = loss([t.bfloat16().float() for t in z32])
    value = loss(z16)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)
    value.backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in z16)

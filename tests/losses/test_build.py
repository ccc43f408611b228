"""build_loss: config dicts to loss modules."""

from __future__ import annotations

import pytest

from nmodal.errors import InputError
from nmodal.losses import LOSS_NAMES, NModalCLIPLoss, NModalTripletLoss, build_loss


def test_build_clip_and_triplet():
    clip = build_loss({"name": "clip", "temperature": 0.1, "targets": "soft"})
    assert isinstance(clip, NModalCLIPLoss)
    assert clip.targets == "soft"
    assert clip.temperature == pytest.approx(0.1, rel=1e-6)
    trip = build_loss({"name": "triplet", "margin": 0.2, "negatives": "semihard"})
    assert isinstance(trip, NModalTripletLoss)
    assert (trip.margin, trip.negatives) == (0.2, "semihard")
    assert isinstance(build_loss("triplet"), NModalTripletLoss)
    assert {"clip", "triplet"} <= set(LOSS_NAMES)  # issue 7 registers more


def test_build_rejects_unknown_names_and_options():
    with pytest.raises(InputError, match="unknown loss"):
        build_loss({"name": "infonce"})
    with pytest.raises(InputError, match="clip"):
        build_loss({"name": "clip", "temprature": 0.1})
    with pytest.raises(InputError, match="negatives"):
        build_loss({"name": "triplet", "negatives": "random"})


def test_beyond_the_paper_registered_and_built_by_name():
    from nmodal.losses import AnchorCLIPLoss, GramLoss, SigLIPLoss, SymileLoss

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

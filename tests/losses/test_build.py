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

"""Names the docstring examples of ``src/nmodal`` may use without importing them (pytest
runs those examples with ``--doctest-modules``): numpy, torch, a fresh temporary folder
``tmp`` and the handful of library entry points the examples build on. The examples of the
media modules run in a folder holding a real ``clip.mp4`` (80 frames of 64x48 H.264 with an
AAC track) and ``photo.jpg`` (64x48), so what they print is what decoding gives."""

from __future__ import annotations

import numpy as np
import pytest

MEDIA_MODULES = ("nmodal.media", "nmodal.features.decode")


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest) -> None:
    if not isinstance(request.node, pytest.DoctestItem):
        return
    import torch

    from nmodal.encoders import build_encoder
    from nmodal.features import make_synthetic
    from nmodal.train import TrainConfig

    namespace = request.getfixturevalue("doctest_namespace")
    tmp = request.getfixturevalue("tmp_path")
    if request.node.name.startswith(MEDIA_MODULES):
        from tests.helpers.media import write_image, write_video

        write_video(tmp / "clip.mp4", num_frames=80, audio=True)
        write_image(tmp / "photo.jpg", width=64, height=48)
        request.getfixturevalue("monkeypatch").chdir(tmp)
    namespace.update(
        np=np,
        torch=torch,
        tmp=tmp,
        build_encoder=build_encoder,
        make_synthetic=make_synthetic,
        TrainConfig=TrainConfig,
    )

"""The EfficientNet-Lite0 backend tests' fresh model cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmodal.encoders import lite_onnx as lite_onnx_mod
from nmodal.encoders import offline as offline_mod


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache, and sessions built afresh from it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(lite_onnx_mod.CACHE_ENV, str(folder))
    monkeypatch.setattr(offline_mod, "_CACHE", {})
    return folder

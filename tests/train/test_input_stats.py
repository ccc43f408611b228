"""The heads' input statistics, measured a chunk at a time, against numpy on the whole sample."""

from __future__ import annotations

import numpy as np
import pytest

import nmodal.train.input_stats as input_stats
from nmodal.features.synthetic import make_synthetic
from nmodal.model import ModelConfig, NModalModel


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_chunked_moments_equal_the_whole_sample(monkeypatch, chunk):
    monkeypatch.setattr(input_stats, "CHUNK_ROWS", chunk)
    fs = make_synthetic(300, dim=[8, 12, 6], seed=3)
    model = NModalModel(ModelConfig(fs.modalities, fs.dims()))
    input_stats.set_input_statistics(model, fs, fs.modalities, missing="drop", seed=0)
    for m in fs.modalities:
        x = np.asarray(fs.features[m], np.float64)
        head = model.heads[m]
        np.testing.assert_allclose(
            head.input_mean.numpy(), x.mean(0).astype(np.float32), rtol=0, atol=1e-7
        )
        scale = 1 / np.sqrt(((x - x.mean(0)) ** 2).mean())
        assert float(head.input_scale) == pytest.approx(scale, rel=1e-6)

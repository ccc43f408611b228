"""GCCA initialisation of projection heads, against an independent CCA computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmodal.errors import InputError
from nmodal.features.synthetic import make_synthetic
from nmodal.model import HeadConfig
from nmodal.model.heads import ProjectionHead
from nmodal.train import TrainConfig, train_model
from nmodal.train.closed_form import init_heads_from_gcca


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(w)) @ v.T


def test_gcca_init_first_layer_gives_canonical_variates() -> None:
    rng = np.random.default_rng(1)
    n, z = 600, rng.standard_normal((600, 2))
    x = z @ rng.standard_normal((2, 7)) + rng.standard_normal((n, 7)) + 3.0
    y = z @ rng.standard_normal((2, 5)) + 0.5 * rng.standard_normal((n, 5))
    heads = {"text": ProjectionHead(7, HeadConfig(projection_dim=4)),
             "image": ProjectionHead(5, HeadConfig(projection_dim=4))}  # fmt: skip
    k = init_heads_from_gcca(heads, {"text": x, "image": y}, reg=1e-12)
    assert k == 4
    xc, yc = x - x.mean(0), y - y.mean(0)
    rho = np.linalg.svd(_inv_sqrt(xc.T @ xc) @ (xc.T @ yc) @ _inv_sqrt(yc.T @ yc))[1]
    with torch.no_grad():
        px = heads["text"].projection(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
        py = heads["image"].projection(torch.as_tensor(y, dtype=torch.float32)).double().numpy()
    for i in range(4):
        assert np.corrcoef(px[:, i], py[:, i])[0, 1] == pytest.approx(rho[i], abs=1e-4)
        assert px[:, i].mean() == pytest.approx(0.0, abs=1e-3)  # centred by the bias
    # sqrt(n) x the projection of a unit-norm GCCA coordinate: order one, at most one
    assert 0.5 < np.std(px[:, 0]) <= 1.0 + 1e-6
    linears = [b for b in heads["text"].blocks if isinstance(b, torch.nn.Linear)]
    assert all(float(w.detach().abs().max()) == 0 for w in (linears[-1].weight, linears[-1].bias))


def test_train_with_gcca_init_runs_and_rejects_unknown_init() -> None:
    fs = make_synthetic(400, dim=16)
    result = train_model(fs, TrainConfig(epochs=2, init="gcca", select="last"), progress=False)
    assert result.model.config.extra["train"]["init"] == "gcca"
    with pytest.raises(InputError, match="init must be"):
        TrainConfig(init="pca")


def test_gcca_init_of_standardising_heads_gives_the_same_centred_coordinates() -> None:
    """Heads that standardise their input (the default) feed the first layer
    ``(x - mean) * scale``: the GCCA start must be fitted on that input, else the first
    layer's output carries a constant offset (the raw mean through the GCCA map)."""
    rng = np.random.default_rng(2)
    z = rng.standard_normal((300, 2))
    x = z @ rng.standard_normal((2, 7)) + 0.1 * rng.standard_normal((300, 7)) + 3.0
    y = z @ rng.standard_normal((2, 5)) + 0.1 * rng.standard_normal((300, 5)) - 1.0
    out = {}
    for standardize in (False, True):
        cfg = HeadConfig(projection_dim=3, standardize=standardize)
        heads = {"text": ProjectionHead(7, cfg), "image": ProjectionHead(5, cfg)}
        heads["text"].set_input_statistics(x)
        heads["image"].set_input_statistics(y)
        init_heads_from_gcca(heads, {"text": x, "image": y})
        with torch.no_grad():
            h = heads["text"]
            out[standardize] = h.projection(h.standardized(torch.as_tensor(x).float())).numpy()
    assert np.abs(out[True].mean(axis=0)).max() < 1e-3
    np.testing.assert_allclose(out[True][:, :2], out[False][:, :2], atol=1e-3)

"""Closed-form baselines against independent computations (classical CCA, lstsq)."""

from __future__ import annotations

import numpy as np
import pytest

from nmodal.errors import InputError
from nmodal.evaluation.baselines import _centred, fit_baseline
from nmodal.evaluation.compare import CompareConfig, compare_losses
from nmodal.evaluation.protocol import ProtocolConfig, run_protocol
from nmodal.features.featureset import FeatureSet
from nmodal.features.synthetic import make_synthetic
from nmodal.train import TrainConfig
from nmodal.train.closed_form import gcca_fit, ridge_fit


def _two_views(n: int = 800, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    x = z @ rng.standard_normal((3, 8)) + rng.standard_normal((n, 8)) + 5.0
    y = z @ rng.standard_normal((3, 6)) + 0.7 * rng.standard_normal((n, 6)) - 2.0
    feats = {"text": x.astype(np.float64), "image": y.astype(np.float64)}
    return FeatureSet(
        post_ids=np.array([f"p{i}" for i in range(n)]),
        features=feats,
        present={m: np.ones(n, bool) for m in feats},
    )


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(w)) @ v.T


def test_two_modality_gcca_is_classical_cca() -> None:
    fs = _two_views()
    x = fs.features["text"] - fs.features["text"].mean(0)
    y = fs.features["image"] - fs.features["image"].mean(0)
    # classical CCA by whitening: SVD of Cxx^-1/2 Cxy Cyy^-1/2
    cxx, cyy, cxy = x.T @ x, y.T @ y, x.T @ y
    u, rho, vt = np.linalg.svd(_inv_sqrt(cxx) @ cxy @ _inv_sqrt(cyy))
    a, b = _inv_sqrt(cxx) @ u, _inv_sqrt(cyy) @ vt.T

    _, svds = _centred(fs, ["text", "image"])
    weights, evals = gcca_fit(svds, dim=4, reg=1e-12)
    np.testing.assert_allclose(evals - 1, rho[:4], atol=1e-8)
    for i in range(4):
        for w, ref in ((weights["text"][:, i], a[:, i]), (weights["image"][:, i], b[:, i])):
            cos = abs(w @ ref) / (np.linalg.norm(w) * np.linalg.norm(ref))
            assert cos == pytest.approx(1.0, abs=1e-8)
        # the projected training data correlate by exactly the canonical correlation
        zx, zy = x @ weights["text"][:, i], y @ weights["image"][:, i]
        assert np.corrcoef(zx, zy)[0, 1] == pytest.approx(rho[i], abs=1e-8)


def test_ridge_equals_augmented_lstsq() -> None:
    fs = _two_views(300, seed=3)
    means, svds = _centred(fs, ["text", "image"])
    target = fs.features["text"] - means["text"]
    reg = 0.05
    weights = ridge_fit(svds, target, anchor="text", reg=reg)
    x = fs.features["image"] - means["image"]
    lam = reg * np.mean(np.linalg.svd(x, compute_uv=False) ** 2)
    aug_x = np.vstack([x, np.sqrt(lam) * np.eye(x.shape[1])])
    aug_y = np.vstack([target, np.zeros((x.shape[1], target.shape[1]))])
    expected = np.linalg.lstsq(aug_x, aug_y, rcond=None)[0]
    np.testing.assert_allclose(weights["image"], expected, atol=1e-10)
    np.testing.assert_array_equal(weights["text"], np.eye(target.shape[1]))


def test_fit_baseline_selects_inside_training_data_and_embeds() -> None:
    fs = make_synthetic(400, dim=24, noise=0.5)
    model = fit_baseline(fs, {"name": "gcca", "dims": [4, 16], "regs": [1e-2, 1.0]})
    assert sorted(model.info["selection"]) == [
        "dim=16,reg=0.01",
        "dim=16,reg=1",
        "dim=4,reg=0.01",
        "dim=4,reg=1",
    ]
    best = max(model.info["selection"], key=model.info["selection"].get)
    assert best == f"dim={model.info['dim']},reg={model.info['reg']:g}"
    emb = model.embed({m: fs.features[m][:5] for m in fs.modalities})
    assert all(e.shape == (5, model.info["dim"]) for e in emb.values())
    np.testing.assert_allclose(np.linalg.norm(emb["text"], axis=1), 1.0, atol=1e-5)


def test_baseline_options_are_checked() -> None:
    fs = make_synthetic(100, dim=8)
    with pytest.raises(InputError, match="unknown gcca option"):
        fit_baseline(fs, {"name": "gcca", "k": 3})
    with pytest.raises(InputError, match="anchor"):
        fit_baseline(fs, {"name": "ridge", "anchor": "audio"})
    with pytest.raises(InputError, match="regs > 0"):
        fit_baseline(fs, {"name": "ridge", "reg": 0.0})


def test_baselines_run_in_protocol_and_compare() -> None:
    fs = make_synthetic(700, dim=32, noise=0.5)
    out = run_protocol(
        fs, ProtocolConfig(TrainConfig(loss={"name": "gcca"}), trials=2, progress=False)
    )
    # a linear map of a shared latent: far above the 1% chance of R@1
    assert out["recall"]["1"]["mean"] > 0.3
    assert out["trials"][0]["history"] == [] and out["trials"][0]["baseline"]["dim"] >= 1
    protocol = ProtocolConfig(TrainConfig(epochs=2), trials=1, progress=False)
    cmp = compare_losses(fs, CompareConfig(protocol, losses=["clip", "gcca", "ridge"]))
    labels = [r["label"] for r in cmp["runs"].values()]
    assert labels == ["triCLIP", "GCCA (closed form)", "ridge (closed form)"]
    assert "GCCA (closed form)" in cmp["table"]

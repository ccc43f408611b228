"""Crafted model, index and classifier folders: every loader refuses them with InputError."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nmodal.classify import load_classifier, make_classifier, save_classifier
from nmodal.errors import InputError
from nmodal.index import PostIndex, layout
from nmodal.model import ModelConfig, NModalModel


def _model(path: Path) -> Path:
    torch.manual_seed(0)
    return NModalModel(
        ModelConfig(modalities=["text", "image"], input_dims={"text": 8, "image": 6})
    ).save(path)


def _edit_config(path: Path, **changes: object) -> None:
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def test_model_loader_refuses_crafted_folders(tmp_path: Path) -> None:
    good = _model(tmp_path / "good")
    assert NModalModel.load(good).modalities == ["text", "image"]
    cases = {
        "tampered weights": lambda p: (p / "model.safetensors").write_bytes(
            (p / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0"
        ),
        "path in files": lambda p: _edit_config(p, files={"model.safetensors": "0", "../x": "0"}),
        "no hashes": lambda p: _edit_config(p, files=None),
        "garbage config": lambda p: (p / "config.json").write_text("{not json"),
        "list config": lambda p: (p / "config.json").write_text("[1, 2]"),
        "wrong dims": lambda p: _edit_config(p, input_dims={"text": 9, "image": 6}),
    }
    for name, craft in cases.items():
        folder = _model(tmp_path / name.replace(" ", "-"))
        craft(folder)
        with pytest.raises(InputError):
            NModalModel.load(folder)
    # wrong shapes with matching hashes (a folder crafted with care): a clear error, no
    # raw torch message
    folder = _model(tmp_path / "shapes")
    state = {k: torch.zeros(3, 3) for k in NModalModel.load(folder).state_dict()}
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match=r"do not match|does not match"):
        NModalModel.load(folder, verify=False)


def test_index_loader_refuses_crafted_manifests(tmp_path: Path) -> None:
    base = {"format": layout.FORMAT, "version": layout.VERSION, "num_posts": 0}
    crafted = {
        "traversal modality": {**base, "modalities": {"../../etc/evil": {}}},
        "absolute modality": {**base, "modalities": {"/etc/passwd": {}}},
        "modalities not a dict": {**base, "modalities": ["text"]},
        "no hashes": {**base, "modalities": {"text": {}}},
        "hash of a path": {**base, "modalities": {}, "files": {"../posts.parquet": "0"}},
        "missing listed file": {**base, "modalities": {}, "files": {"posts.parquet": "0"}},
    }
    for name, manifest in crafted.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(InputError):
            PostIndex.open(folder)


def test_classifier_loader_refuses_crafted_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), np.repeat([0, 1], 15)
    clf = make_classifier("logreg").fit(X, y)
    good = save_classifier(clf, tmp_path / "good")
    assert np.allclose(load_classifier(good).predict_proba(X), clf.predict_proba(X))
    bad = save_classifier(clf, tmp_path / "bad")
    info = json.loads((bad / "classifier.json").read_text())
    info["files"] = {"../../outside": "0"}
    (bad / "classifier.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="plain file name"):
        load_classifier(bad)
    shaped = save_classifier(clf, tmp_path / "shaped")
    info = json.loads((shaped / "classifier.json").read_text())
    info["n_features_in"] = 7  # does not fit the saved coefficients
    (shaped / "classifier.json").write_text(json.dumps(info))
    with pytest.raises(InputError):
        load_classifier(shaped)

"""Labelling new posts from raw text and media files with a saved classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nmodal.classify import make_classifier, save_classifier
from nmodal.classify.predict import predict_raw
from nmodal.classify.run import model_fingerprint
from nmodal.encoders import Encoder, register_encoder
from nmodal.errors import InputError, MediaError
from nmodal.model import HeadConfig, ModelConfig, NModalModel

DIM = 12


@register_encoder("classify-test-text")
class CharCounts(Encoder):
    """Letter counts folded into DIM bins: a deterministic toy text encoder."""

    modality = "text"

    @property
    def dim(self) -> int:
        return DIM

    def encode(self, batch):
        out = np.zeros((len(batch), DIM), np.float32)
        for i, text in enumerate(batch):
            codes = np.frombuffer(text.encode(), dtype=np.uint8)
            out[i] = np.bincount(codes % DIM, minlength=DIM)
        return out


@register_encoder("classify-test-image")
class MeanColour(Encoder):
    """Mean RGB tiled to DIM values."""

    modality = "image"

    @property
    def dim(self) -> int:
        return DIM

    def encode(self, batch):
        means = np.stack([np.asarray(img, np.float32).mean(axis=(0, 1)) / 255 for img in batch])
        return np.tile(means, (1, DIM // 3)).astype(np.float32)


@pytest.fixture
def setup(tmp_path):
    enc = {"text": CharCounts(), "image": MeanColour()}
    torch.manual_seed(0)
    model = NModalModel(
        ModelConfig(
            modalities=["text", "image"],
            input_dims={"text": DIM, "image": DIM},
            head=HeadConfig(projection_dim=8),
            encoders={m: e.provenance() for m, e in enc.items()},
        )
    )
    model.save(tmp_path / "model")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8)).astype(np.float32)
    y = np.where(X[:, 0] > 0, "pos", "neg")
    clf = make_classifier("logreg").fit(X, y)
    img = np.zeros((20, 20, 3), np.uint8)
    img[..., 0] = 200
    Image.fromarray(img).save(tmp_path / "red.png")
    return tmp_path, enc, model, clf, img


def _save(clf, path, model_dir, fusion):
    meta = {
        "model_fingerprint": model_fingerprint(model_dir),
        "modalities": ["text", "image"],
        "fusion": fusion,
    }
    save_classifier(clf, path, metadata=meta)


def test_raw_text_and_image_per_artifact(setup):
    root, enc, model, clf, img = setup
    _save(clf, root / "clf", root / "model", None)
    table = predict_raw(root / "clf", root / "model", text="a new post", image=root / "red.png")
    assert table["modality"].tolist() == ["text", "image"]
    emb = model.embed(
        {"text": enc["text"].encode(["a new post"]), "image": enc["image"].encode([img])}
    )
    expected = clf.predict_proba(np.concatenate([emb["text"], emb["image"]]))
    np.testing.assert_allclose(table[["p(neg)", "p(pos)"]].to_numpy(), expected, rtol=1e-6)
    assert table["label"].tolist() == clf.classes_[expected.argmax(axis=1)].tolist()


def test_raw_artifacts_fused(setup):
    root, enc, model, clf, img = setup
    _save(clf, root / "fused", root / "model", "mean")
    table = predict_raw(root / "fused", root / "model", text="a new post", image=root / "red.png")
    emb = model.embed(
        {"text": enc["text"].encode(["a new post"]), "image": enc["image"].encode([img])}
    )
    fused = (emb["text"] + emb["image"]) / 2
    assert table["modality"].tolist() == ["fused"]
    np.testing.assert_allclose(
        table[["p(neg)", "p(pos)"]].to_numpy(), clf.predict_proba(fused), rtol=1e-5
    )


def test_wrong_model_or_modality_is_refused(setup):
    root, _, _, clf, _ = setup
    _save(clf, root / "clf", root / "model", None)
    torch.manual_seed(1)
    other = NModalModel(ModelConfig(modalities=["text", "image"], input_dims={"text": DIM, "image": DIM},
                                    head=HeadConfig(projection_dim=8)))  # fmt: skip
    other.save(root / "other")
    with pytest.raises(InputError, match="use the model it was trained with"):
        predict_raw(root / "clf", root / "other", text="x")
    # a video feeds the image artifact (its held-out frame): a picture is no video
    with pytest.raises(MediaError, match=r"red.png: too short"):
        predict_raw(root / "clf", root / "model", video=root / "red.png")
    meta = {"model_fingerprint": model_fingerprint(root / "model"), "modalities": ["text"]}
    save_classifier(clf, root / "text-only", metadata=meta)
    with pytest.raises(InputError, match="reads text, not video"):
        predict_raw(root / "text-only", root / "model", video=root / "red.png")
    with pytest.raises(InputError, match="at least one artifact"):
        predict_raw(root / "clf", root / "model")

"""Projection heads and the N-modal model: architecture, save/load, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from nmodal.errors import InputError, OutputExistsError
from nmodal.losses import NModalCLIPLoss
from nmodal.model import HeadConfig, ModelConfig, NModalModel, ProjectionHead


def test_paper_head_computes_the_paper_formula():
    torch.manual_seed(0)
    head = ProjectionHead(12, HeadConfig(projection_dim=8)).eval()
    x = torch.randn(5, 12)
    lin1, lin2 = head.projection, head.blocks[1]
    projected = x @ lin1.weight.T + lin1.bias
    h = F.gelu(projected) @ lin2.weight.T + lin2.bias + projected
    expected = F.layer_norm(h, (8,), head.norm.weight, head.norm.bias)
    torch.testing.assert_close(head(x), expected)


def test_standardizing_head_centres_and_scales_by_training_statistics():
    rng = np.random.default_rng(0)
    train = 5.0 + 0.1 * rng.standard_normal((200, 12))
    head = ProjectionHead(12, HeadConfig(projection_dim=8, dropout=0.0)).eval()
    x = torch.randn(5, 12)
    before = head(x)  # identity statistics until they are set
    plain = ProjectionHead(12, HeadConfig(projection_dim=8, standardize=False)).eval()
    plain.load_state_dict(
        {k: v for k, v in head.state_dict().items() if not k.startswith("input_")}
    )
    torch.testing.assert_close(before, plain(x))
    head.set_input_statistics(train)
    mean = train.mean(axis=0)
    scale = 1.0 / np.sqrt(((train - mean) ** 2).mean())  # one scalar: unit variance per dim
    np.testing.assert_allclose(head.input_mean.numpy(), mean, rtol=1e-6)
    assert float(head.input_scale) == pytest.approx(scale, rel=1e-6)
    expected = plain((x - torch.as_tensor(mean, dtype=torch.float32)) * float(scale))
    torch.testing.assert_close(head(x), expected)
    constant = ProjectionHead(3, HeadConfig(projection_dim=2))
    constant.set_input_statistics(np.ones((4, 3)))
    assert float(constant.input_scale) == 1.0


def test_model_saved_before_standardization_loads_without_it(tmp_path):
    cfg = ModelConfig(
        ["text", "video"],
        {"text": 6, "video": 9},
        head=HeadConfig(projection_dim=4, standardize=False),
    )
    torch.manual_seed(1)
    model = NModalModel(cfg)
    model.save(tmp_path / "old")
    config_file = tmp_path / "old" / "config.json"
    raw = json.loads(config_file.read_text())
    del raw["head"]["standardize"]  # as an older nmodal wrote it (files cover weights only)
    config_file.write_text(json.dumps(raw))
    loaded = NModalModel.load(tmp_path / "old")
    assert loaded.config.head.standardize is False
    feats = {"text": np.random.rand(3, 6).astype(np.float32)}
    np.testing.assert_array_equal(loaded.embed(feats)["text"], model.embed(feats)["text"])


def test_head_depth_and_width_are_configurable():
    head = ProjectionHead(10, HeadConfig(projection_dim=6, depth=3, hidden_dim=20, dropout=0.0))
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (10, 6),
        (6, 20),
        (20, 20),
        (20, 6),
    ]
    assert head(torch.randn(3, 10)).shape == (3, 6)


def make_model(loss=None):
    torch.manual_seed(1)
    cfg = ModelConfig(
        modalities=["text", "video"],
        input_dims={"text": 6, "video": 9},
        head=HeadConfig(projection_dim=4),
    )
    return NModalModel(cfg, loss=loss)


def test_save_load_round_trip(tmp_path):
    loss = NModalCLIPLoss(temperature=0.05)
    model = make_model(loss)
    feats = {"text": np.random.rand(7, 6).astype(np.float32), "video": np.random.rand(7, 9)}
    for m in model.modalities:  # the input statistics are saved with the weights
        model.heads[m].set_input_statistics(3.0 * feats[m] + 1.0)
    before = model.embed(feats)
    model.save(tmp_path / "m")
    loaded = NModalModel.load(tmp_path / "m")
    after = loaded.embed(feats)
    for m in before:
        np.testing.assert_array_equal(before[m], after[m])
        np.testing.assert_allclose(np.linalg.norm(after[m], axis=1), 1.0, rtol=1e-5)
    assert loaded.loss is not None and loaded.loss.temperature == pytest.approx(0.05)
    # the weights are plain safetensors and the config plain JSON: nothing executes on load
    assert set(load_file(str(tmp_path / "m" / "model.safetensors"))) == set(model.state_dict())
    assert json.loads((tmp_path / "m" / "config.json").read_text())["modalities"] == [
        "text",
        "video",
    ]


def test_save_refuses_existing_directory(tmp_path):
    model = make_model()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="exists"):
        model.save(tmp_path / "m")
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"
    with pytest.raises(OutputExistsError, match="other than an nmodal model"):
        model.save(tmp_path / "m", overwrite=True)  # overwrite replaces models only
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"
    model.save(tmp_path / "new")
    model.save(tmp_path / "new", overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_load_rejects_non_model(tmp_path):
    with pytest.raises(InputError, match="not an nmodal model"):
        NModalModel.load(tmp_path)


def test_unknown_modality_and_wrong_dims():
    model = make_model()
    with pytest.raises(InputError, match="unknown modality 'audio'"):
        model({"audio": torch.randn(2, 6)})
    with pytest.raises(InputError, match=r"expected \(n, 9\)"):
        model({"video": torch.randn(2, 6)})


def test_config_validation():
    with pytest.raises(InputError, match="distinct"):
        ModelConfig(modalities=["a", "a"], input_dims={"a": 3})
    with pytest.raises(InputError, match="lacks modality 'b'"):
        ModelConfig(modalities=["a", "b"], input_dims={"a": 3})

"""The training loop: determinism, learning, best-checkpoint copy, early stopping, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmodal.errors import InputError
from nmodal.evaluation import evaluate_model
from nmodal.features import FeatureSet, make_synthetic
from nmodal.model import HeadConfig
from nmodal.train import TrainConfig, evaluate_loss, split_posts, train_model, trainer
from nmodal.train.trainer import _Batches, batch_loss, cpu_has_native_bf16, default_threads


@pytest.fixture(scope="module")
def data():
    fs = make_synthetic(1500, dim=32, latent_dim=8, noise=0.4, seed=0)
    split = split_posts(fs.num_posts, test_size=100, val_fraction=0.1, seed=0)
    return fs, split


def small(**kw):
    # the mechanics of the loop from a random start at the paper's rate (the GCCA
    # initialisation and the defaults have their own tests)
    base = dict(epochs=3, batch_size=64, head=HeadConfig(projection_dim=16), init="random", lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def test_training_is_deterministic(data):
    fs, s = data
    a = train_model(fs.subset(s.train), small(), val=fs.subset(s.val), progress=False)
    b = train_model(fs.subset(s.train), small(), val=fs.subset(s.val), progress=False)
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb
        torch.testing.assert_close(va, vb, rtol=0, atol=0)
    assert a.history == [{**h, **{}} for h in b.history]


def test_training_learns_the_cross_modal_link(data):
    fs, s = data
    result = train_model(fs.subset(s.train), small(epochs=8), val=fs.subset(s.val), progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    recall = evaluate_model(result.model, fs.subset(s.test))["recall"]
    assert recall["1"] > 0.2  # chance is 0.01
    assert recall["10"] > 0.6


@pytest.mark.parametrize(
    "loss",
    [
        {"name": "triplet"},
        {
            "name": "clip",
            "targets": "soft",
            "normalize": False,
            "temperature": 1.0,
            "learn_temperature": False,
        },
    ],
)
def test_other_losses_train(data, loss):
    fs, s = data
    result = train_model(fs.subset(s.train), small(loss=loss, epochs=4), progress=False)
    assert np.isfinite([h["train_loss"] for h in result.history]).all()
    assert evaluate_model(result.model, fs.subset(s.test))["recall"]["10"] > 0.15


def test_best_checkpoint_is_a_copy_of_the_best_epoch(data):
    fs, s = data
    # a high learning rate on a tiny training set overfits: validation loss rises after its best
    cfg = small(epochs=12, lr=1e-2, select="val_loss")
    train, val = fs.subset(s.train[:200]), fs.subset(s.val)
    result = train_model(train, cfg, val=val, progress=False)
    val_losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    assert result.best_val_loss == pytest.approx(min(val_losses))
    assert result.best_epoch < len(val_losses), "setting did not overfit; test is void"
    data_val = _Batches(val, result.model.modalities, torch.device("cpu"))
    assert evaluate_loss(result.model, data_val, 64) == pytest.approx(min(val_losses), rel=1e-5)


def test_early_stopping(data):
    fs, s = data
    result = train_model(
        fs.subset(s.train[:200]),
        small(epochs=50, lr=1e-2, patience=2, select="val_loss"),
        val=fs.subset(s.val),
        progress=False,
    )
    assert len(result.history) < 50
    assert len(result.history) == result.best_epoch + 2


def test_cosine_schedule_decays_to_zero(data):
    fs, s = data
    result = train_model(fs.subset(s.train), small(lr_schedule="cosine", epochs=2), progress=False)
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_drop_does_not_train_on_posts_missing_a_modality():
    fs = make_synthetic(300, dim=8, missing_rate=0.3, seed=1)
    data = _Batches(fs, fs.modalities, torch.device("cpu"), "drop")
    assert data.num_posts == int(fs.complete().sum()) < 300


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"modalities": ["text", "smell"]}, "unknown modality 'smell'"),
        ({"modalities": ["text"]}, "at least two modalities"),
    ],
)
def test_bad_modalities(data, kwargs, match):
    fs, s = data
    with pytest.raises(InputError, match=match):
        train_model(fs.subset(s.train), small(**kwargs), progress=False)


def test_nan_features_are_rejected():
    x = np.ones((4, 3), np.float32)
    y = x.copy()
    y[2, 1] = np.nan
    with pytest.raises(InputError, match=r"NaN/inf features in 1 posts \(e.g. c\)"):
        FeatureSet(post_ids=np.array(list("abcd")), features={"text": x, "video": y})


def test_bad_config():
    with pytest.raises(InputError, match="batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(InputError, match="lr_schedule"):
        TrainConfig(lr_schedule="exp")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": float("nan")}, "lr must be > 0"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"warmup_steps": -5}, "warmup_steps"),
        ({"patience": 0}, "patience must be >= 1"),
        ({"grad_clip": 0.0}, "grad_clip must be > 0"),
        ({"threads": 0}, "threads must be >= 1"),
        ({"threads": -1}, "threads must be >= 1"),
        ({"head": {"dropout": 1.0}}, r"dropout must be in \[0, 1\)"),
        ({"head": {"dropout": -0.1}}, "dropout must be"),
        ({"head": {"projection_dim": 0}}, "projection_dim and hidden_dim must be >= 1"),
        ({"head": {"hidden_dim": 0}}, "projection_dim and hidden_dim"),
        ({"head": {"depth": -1}}, "head depth must be >= 0"),
    ],
)
def test_bad_numbers_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**kwargs)


def test_select_by_validation_recall_or_last_epoch(data):
    from nmodal.train.trainer import validation_recall

    fs, s = data
    train, val = fs.subset(s.train[:300]), fs.subset(s.val)
    by_recall = train_model(train, small(epochs=6, select="val_recall"), val=val, progress=False)
    recalls = [h["val_recall"] for h in by_recall.history]
    assert by_recall.best_epoch == int(np.argmax(recalls)) + 1
    assert validation_recall(by_recall.model, val) == pytest.approx(max(recalls))
    last = train_model(train, small(epochs=6, select="last"), val=val, progress=False)
    assert last.best_epoch == 6
    plain = train_model(train, small(epochs=6), progress=False)  # no validation: last epoch
    for (k, a), (_, b) in zip(
        last.model.state_dict().items(), plain.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    with pytest.raises(InputError, match="select"):
        TrainConfig(select="best")


def test_bf16_autocast_trains_with_a_float32_loss(data):
    fs, s = data
    seen: list[torch.dtype] = []
    result = train_model(
        fs.subset(s.train), small(amp="bf16"), val=fs.subset(s.val), progress=False
    )
    model = result.model
    assert model.config.extra["precision"] == "bfloat16"
    assert model.loss is not None
    model.loss.register_forward_pre_hook(lambda mod, args: seen.append(args[0][0].dtype))
    data_ = _Batches(
        fs.subset(s.train), model.modalities, torch.device("cpu"), dtype=torch.bfloat16
    )
    assert data_.features[model.modalities[0]].dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = batch_loss(model, data_, torch.arange(64))
    assert seen == [torch.float32] and value.dtype == torch.float32
    # mixed precision learns as well as float32 on this data
    full = train_model(fs.subset(s.train), small(epochs=8, amp="off"), progress=False)
    half = train_model(fs.subset(s.train), small(epochs=8, amp="bf16"), progress=False)
    r_full = evaluate_model(full.model, fs.subset(s.test))["recall"]
    r_half = evaluate_model(half.model, fs.subset(s.test))["recall"]
    assert r_half["10"] > r_full["10"] - 0.1
    assert full.model.config.extra["precision"] == "float32"


def test_auto_precision_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: True)
    assert trainer.autocast_dtype("auto", cpu) == torch.bfloat16
    assert trainer.autocast_dtype("off", cpu) is None
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: False)
    assert trainer.autocast_dtype("auto", cpu) is None
    assert trainer.autocast_dtype("bf16", cpu) == torch.bfloat16


def test_cpu_bf16_detection_reads_the_cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    expected = any(f" {flag}" in flags for flag in ("avx512_bf16", "amx_bf16"))
    assert cpu_has_native_bf16() == expected


def test_threads_one_for_small_steps_under_passive_waits_and_restored(data, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert default_threads(TrainConfig(batch_size=128)) == 1
    assert default_threads(TrainConfig(batch_size=512)) is None
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert default_threads(TrainConfig(batch_size=128)) is None
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert default_threads(TrainConfig(batch_size=128)) is None

    fs, s = data
    before = torch.get_num_threads()
    inside: list[int] = []
    real = trainer._train

    def spy(*args, **kwargs):
        inside.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "_train", spy)
    train_model(fs.subset(s.train), small(epochs=1, threads=1), progress=False)
    assert inside == [1]
    assert torch.get_num_threads() == before

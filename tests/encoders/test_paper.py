"""The paper set through the real transformers loading path, on tiny random-init checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nmodal.encoders import build_encoder, encoder_set, from_provenance
from nmodal.encoders.torch_utils import IMAGENET_MEAN, IMAGENET_STD
from nmodal.errors import InputError

from .tiny_models import write_tiny_models

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_paper_set_builds_from_local_directories(tiny: dict[str, Path]) -> None:
    settings = {m: {"model_path": str(p)} for m, p in tiny.items()}
    encs = encoder_set("paper", settings=settings, device="cpu")
    assert [e.name for e in encs.values()] == ["distilbert", "vit-mae", "videomae", "wav2vec2"]
    assert {e.dim for e in encs.values()} == {32}


def test_vit_mae_masking_off_and_deterministic(
    tiny: dict[str, Path], rng: np.random.Generator
) -> None:
    enc = build_encoder("vit-mae", model_path=str(tiny["image"]))
    pictures = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(3)]
    a, b = enc.encode(pictures), enc.encode(pictures)
    assert a.shape == (3, 32) and a.dtype == np.float32
    assert np.array_equal(a, b)  # the published code's bug: random masking made these differ
    assert enc.model.config.mask_ratio == 0.0
    hidden = enc.hidden_states(pictures)
    assert hidden.shape == (3, 1 + (32 // 8) ** 2, 32)  # CLS + every patch kept


def test_published_default_masking_is_random(tiny: dict[str, Path]) -> None:
    """What the fix is for: the checkpoint's own config (mask_ratio=0.75) drops patches at random."""
    model = transformers.ViTMAEModel.from_pretrained(tiny["image"]).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        h1, h2 = model(pixel_values=x).last_hidden_state, model(pixel_values=x).last_hidden_state
    assert h1.shape[1] == 1 + 16 // 4
    assert not torch.equal(h1, h2)


def test_vit_mae_matches_the_hf_processor_and_plain_model(
    tiny: dict[str, Path], rng: np.random.Generator
) -> None:
    pictures = [
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)
    ]  # no resize needed
    ours = build_encoder("vit-mae", model_path=str(tiny["image"])).encode(pictures)
    proc = transformers.ViTImageProcessor(
        size={"height": 32, "width": 32},
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
    )
    pixel = proc(images=pictures, return_tensors="pt")["pixel_values"]
    model = transformers.ViTMAEModel.from_pretrained(tiny["image"], mask_ratio=0.0).eval()
    with torch.inference_mode():
        cls = model(pixel_values=pixel).last_hidden_state[
            :, 0
        ]  # random patch order: CLS is order-invariant
    np.testing.assert_allclose(ours, cls.numpy(), rtol=1e-4, atol=1e-4)


def test_vit_mae_mean_pooling(tiny: dict[str, Path], rng: np.random.Generator) -> None:
    enc = build_encoder("vit-mae", model_path=str(tiny["image"]), pooling="mean")
    pictures = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)]
    np.testing.assert_allclose(
        enc.encode(pictures), enc.hidden_states(pictures).mean(dim=1).numpy(), rtol=1e-6
    )


def test_distilbert_matches_tokenizer_and_model(tiny: dict[str, Path]) -> None:
    texts = ["hello world", "the video posts hello", ""]
    enc = build_encoder("distilbert", model_path=str(tiny["text"]))
    ours = enc.encode(texts)
    tok = transformers.AutoTokenizer.from_pretrained(tiny["text"])
    model = transformers.DistilBertModel.from_pretrained(tiny["text"]).eval()
    for i, t in enumerate(texts):  # one at a time: no padding at all
        ids = tok([t], return_tensors="pt")
        with torch.inference_mode():
            ref = model(**ids).last_hidden_state[0, 0].numpy()
        np.testing.assert_allclose(ours[i], ref, rtol=1e-4, atol=1e-5)
    assert np.array_equal(ours, enc.encode(texts))


def test_distilbert_mean_pooling_ignores_padding(tiny: dict[str, Path]) -> None:
    enc = build_encoder("distilbert", model_path=str(tiny["text"]), pooling="mean")
    alone = enc.encode(["hello"])
    padded = enc.encode(["hello", "the video posts hello world a"])[:1]
    np.testing.assert_allclose(alone, padded, rtol=1e-4, atol=1e-5)


def test_videomae_no_mask_and_frame_resampling(
    tiny: dict[str, Path], rng: np.random.Generator
) -> None:
    enc = build_encoder("videomae", model_path=str(tiny["video"]))
    assert enc.num_frames == 4 and enc.details["num_frames"] == 4
    clip = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    a = enc.encode([clip, clip[:4]])
    assert a.shape == (2, 32) and np.array_equal(a, enc.encode([clip, clip[:4]]))
    # 16 frames resampled to 4 uniformly = frames 0, 5, 10, 15
    np.testing.assert_allclose(a[0], enc.encode([clip[[0, 5, 10, 15]]])[0], rtol=1e-5, atol=1e-6)
    # independent: normalise by hand, run the plain model without bool_masked_pos, mean-pool
    x = torch.from_numpy(clip[[0, 5, 10, 15]]).float().div(255).permute(0, 3, 1, 2)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    model = transformers.VideoMAEModel.from_pretrained(tiny["video"]).eval()
    with torch.inference_mode():
        hidden = model(pixel_values=x[None]).last_hidden_state
    assert hidden.shape[1] == (4 // 2) * (32 // 8) ** 2  # every tubelet kept
    np.testing.assert_allclose(a[0], hidden.mean(dim=1)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_videomae_crop_mode(tiny: dict[str, Path], rng: np.random.Generator) -> None:
    enc = build_encoder("videomae", model_path=str(tiny["video"]), resize="crop")
    assert enc.input_size is None  # workers must not squash frames for it
    wide = rng.integers(0, 256, (4, 32, 64, 3), dtype=np.uint8)
    centre = np.ascontiguousarray(wide[:, :, 16:48])
    np.testing.assert_allclose(enc.encode([wide]), enc.encode([centre]), rtol=1e-5, atol=1e-6)


def test_wav2vec2_normalisation_matches_feature_extractor(
    tiny: dict[str, Path], rng: np.random.Generator
) -> None:
    enc = build_encoder("wav2vec2", model_path=str(tiny["audio"]))
    assert not enc.batched  # group-norm front end: one clip at a time
    clips = [(0.3 * rng.standard_normal(n) + 0.1).astype(np.float32) for n in (1600, 3200)]
    ours = enc.encode(clips)
    fe = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=16000)
    model = transformers.Wav2Vec2Model.from_pretrained(tiny["audio"]).eval()
    for i, c in enumerate(clips):
        x = fe(c, sampling_rate=16000, return_tensors="pt")["input_values"]
        with torch.inference_mode():
            ref = model(x).last_hidden_state.mean(dim=1)[0].numpy()
        np.testing.assert_allclose(ours[i], ref, rtol=1e-4, atol=1e-4)
    # a clip's features do not depend on what else is in the batch
    np.testing.assert_allclose(ours[0], enc.encode([clips[0]])[0], rtol=1e-6)


def test_dtype_and_provenance_round_trip(tiny: dict[str, Path], rng: np.random.Generator) -> None:
    enc = build_encoder("vit-mae", model_path=str(tiny["image"]), dtype="bf16", batch_size=2)
    assert next(enc.model.parameters()).dtype == torch.bfloat16
    pictures = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    out = enc.encode(pictures)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    info = enc.provenance()
    assert info["settings"]["dtype"] == "bfloat16" and info["details"]["mask_ratio"] == 0.0
    assert "batch_size" not in info["settings"]  # runtime, not identity
    again = from_provenance(info)
    assert np.array_equal(again.encode(pictures), out)


def test_missing_weights_give_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="cannot load ViTMAEModel weights"):
        build_encoder("vit-mae", model_path=str(tmp_path / "nothing-here"))
    with pytest.raises(InputError, match="pooling"):
        build_encoder("videomae", model_path=str(tmp_path), pooling="cls")


def test_audio_frame_counts_come_from_the_public_config(tiny):
    """``conv_output_lengths`` (public config only) agrees with transformers' own count."""
    from nmodal.encoders.paper import conv_output_lengths

    model = transformers.Wav2Vec2Model.from_pretrained(tiny["audio"])
    lengths = torch.tensor([400, 401, 1599, 16000, 48000, 123457])
    expected = model._get_feat_extract_output_lengths(lengths)  # the reference, not used in src
    assert conv_output_lengths(lengths, model.config).tolist() == expected.tolist()

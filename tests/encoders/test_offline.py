"""The offline set: packaged weights, real preprocessing, checked against independent facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nmodal.encoders import build_encoder
from nmodal.encoders.efficientnet_lite import EfficientNetLite0
from nmodal.encoders.offline import (
    E5_MAX_TOKENS,
    audio_blocks,
    load_efficientnet_lite0,
    log_mel,
    mel_filterbank,
    temporal_stats,
)
from nmodal.encoders.torch_utils import resize_uint8
from nmodal.errors import InputError


def _sample_picture(package: str, relative: str) -> np.ndarray:
    module = pytest.importorskip(package)
    path = Path(module.__file__).parent / relative
    if not path.is_file():
        pytest.skip(f"{path} not shipped")
    return np.asarray(Image.open(path).convert("RGB"))


# ----------------------------------------------------------------------------- image


def test_efficientnet_lite0_state_dict_loads_strictly() -> None:
    net = load_efficientnet_lite0(torch.device("cpu"))
    assert isinstance(net, EfficientNetLite0) and not net.training
    assert sum(p.numel() for p in net.parameters()) == 4_652_008  # EfficientNet-Lite0: 4.65M


@pytest.mark.parametrize(
    ("package", "relative", "imagenet_class"),
    [
        ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", 652),  # military uniform
        ("sklearn", "datasets/images/flower.jpg", 985),  # daisy
        ("sklearn", "datasets/images/china.jpg", 442),  # bell cote (a temple roof)
    ],
)
def test_imagenet_classes_of_known_pictures(
    package: str, relative: str, imagenet_class: int
) -> None:
    """Architecture, weights and preprocessing together must recognise real photos."""
    picture = _sample_picture(package, relative)
    enc = build_encoder("efficientnet-lite0")
    feats = torch.from_numpy(enc.encode([picture]))
    net = load_efficientnet_lite0(torch.device("cpu"))
    with torch.inference_mode():
        logits = net._fc(feats)
    assert int(logits.argmax()) == imagenet_class


def test_image_features_equal_network_on_hand_preprocessed_input() -> None:
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(3)]
    enc = build_encoder("efficientnet-lite0", batch_size=2)
    ours = enc.encode(pictures)
    x = (torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() - 127.0) / 128.0
    with torch.inference_mode():
        ref = EfficientNetLite0.features(load_efficientnet_lite0(torch.device("cpu")), x).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    assert ours.shape == (3, 1280) and (ours >= 0).all() and (ours <= 6).all()  # pooled ReLU6


def test_resize_in_workers_equals_resize_in_encoder() -> None:
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    enc = build_encoder("efficientnet-lite0")
    assert enc.input_size == (224, 224)
    assert np.array_equal(enc.encode([picture]), enc.encode([resize_uint8(picture, (224, 224))]))


def test_resize_uint8_matches_pil_bilinear_closely() -> None:
    rng = np.random.default_rng(2)
    picture = np.clip(rng.normal(128, 40, (120, 160, 3)), 0, 255).astype(np.uint8)
    ours = resize_uint8(picture, (60, 80)).astype(int)
    pil = np.asarray(Image.fromarray(picture).resize((80, 60), Image.BILINEAR)).astype(int)
    assert np.abs(ours - pil).mean() < 1.0


def test_bad_image_input_is_an_input_error() -> None:
    enc = build_encoder("efficientnet-lite0")
    with pytest.raises(InputError, match="image input 0"):
        enc.encode([np.zeros((10, 10), np.float32)])
    assert enc.encode([]).shape == (0, 1280)


# ----------------------------------------------------------------------------- video


def test_temporal_stats_against_loops() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    out = temporal_stats(x, ("mean", "std", "absdiff"))
    for n in range(2):
        ref_mean = [sum(x[n, t, d] for t in range(5)) / 5 for d in range(4)]
        ref_absdiff = [
            sum(abs(x[n, t + 1, d] - x[n, t, d]) for t in range(4)) / 4 for d in range(4)
        ]
        np.testing.assert_allclose(out[n, :4], ref_mean, rtol=1e-5)
        np.testing.assert_allclose(out[n, 4:8], np.std(x[n], axis=0), rtol=1e-5)
        np.testing.assert_allclose(out[n, 8:], ref_absdiff, rtol=1e-5)


def test_video_features_are_pooled_frame_features() -> None:
    rng = np.random.default_rng(4)
    clip = rng.integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    still = np.repeat(clip[:1], 3, axis=0)
    video = build_encoder("efficientnet-lite0-frames")
    image = build_encoder("efficientnet-lite0")
    out = video.encode([clip, still])
    frames = image.encode(list(clip))
    assert out.shape == (2, 2560)
    np.testing.assert_allclose(out[0, :1280], frames.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        out[0, 1280:], np.abs(np.diff(frames, axis=0)).mean(axis=0), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(out[1, :1280], frames[0], rtol=1e-4, atol=1e-5)
    assert np.abs(out[1, 1280:]).max() < 1e-5  # a still clip has no motion
    # clips of different lengths in one batch
    mixed = video.encode([clip, clip[:2]])
    np.testing.assert_allclose(mixed[1], video.encode([clip[:2]])[0], rtol=1e-4, atol=1e-5)
    assert build_encoder("efficientnet-lite0-frames", stats=["mean", "std", "absdiff"]).dim == 3840


# ----------------------------------------------------------------------------- audio


def test_mel_filterbank_against_the_htk_formula() -> None:
    fb = mel_filterbank(8, 400, 16000)
    assert fb.shape == (8, 201) and fb.max() <= 1.0 + 1e-6
    mel_edges = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 10)
    centres_hz = 700 * (10 ** (mel_edges[1:-1] / 2595) - 1)
    peak_bins = fb.argmax(axis=1)
    bin_hz = 16000 / 400
    assert np.all(np.abs(peak_bins * bin_hz - centres_hz) <= bin_hz)


def test_log_mel_matches_a_direct_dft() -> None:
    rng = np.random.default_rng(5)
    signal = rng.standard_normal(1000).astype(np.float32)
    mel, mask = log_mel(signal[None], np.array([1000]), n_mels=16)
    assert mask.sum() == 1 + 1000 // 160
    padded = np.pad(signal, 200)
    t = 3
    frame = padded[t * 160 : t * 160 + 400] * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400))
    k = np.arange(201)[:, None]
    dft = (frame[None, :] * np.exp(-2j * np.pi * k * np.arange(400)[None, :] / 400)).sum(axis=1)
    ref = np.log(mel_filterbank(16, 400, 16000) @ np.abs(dft) ** 2 + 1e-6)
    np.testing.assert_allclose(mel[0, :, t], ref, rtol=1e-3, atol=1e-3)


def test_tone_lands_in_its_band_and_batching_does_not_matter() -> None:
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    noise = np.random.default_rng(6).standard_normal(2 * sr).astype(np.float32) * 0.1
    enc = build_encoder("logmel-stats")
    both = enc.encode([tone, noise])
    alone = enc.encode([tone])
    np.testing.assert_allclose(both[0], alone[0], rtol=1e-4, atol=1e-4)  # padding never leaks in
    fb = mel_filterbank(64, 400, sr)
    assert int(alone[0, :64].argmax()) == int(fb[:, round(1000 / 40)].argmax())
    assert alone.shape == (1, 256) and enc.encode([np.zeros(0, np.float32)]).shape == (1, 256)


def test_audio_features_do_not_depend_on_how_a_batch_is_split() -> None:
    # long tracks go one per log-mel pass, short ones share a pass: the bytes are the same
    # as one track at a time, whatever the grouping
    rng = np.random.default_rng(7)
    lengths = (480000, 1000, 16000, 480000, 5, 123457, 0)
    tracks = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]
    assert audio_blocks(tracks) == [(0, 1), (1, 3), (3, 4), (4, 7)]
    enc = build_encoder("logmel-stats")
    alone = np.concatenate([enc.encode([t]) for t in tracks])
    assert np.array_equal(enc.encode(tracks), alone)
    assert np.array_equal(enc.encode(tracks[1:3] + tracks[4:]), alone[[1, 2, 4, 5, 6]])


# ------------------------------------------------------------------------------ text


def test_e5_text_embeddings() -> None:
    enc = build_encoder("e5-small")
    texts = [
        "The cat sleeps on the sofa.",
        "Кошка спит на диване.",
        "Interest rates rose by half a percent.",
    ]
    out = enc.encode(texts)
    assert out.shape == (3, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-4)
    sim = out @ out.T
    assert sim[0, 1] > sim[0, 2] + 0.1  # a translation is closer than an unrelated sentence
    assert np.array_equal(out, enc.encode(texts))
    assert enc.provenance()["settings"] == {"prefix": "query"}
    passage = build_encoder("e5-small", prefix="passage").encode(texts[:1])
    assert not np.allclose(passage, out[:1])


def test_e5_truncates_long_texts_to_512_tokens() -> None:
    enc = build_encoder("e5-small")
    long = " ".join(f"word{i}" for i in range(2000))
    cut = enc.truncate(long)
    assert enc._model.token_count(cut, True) <= E5_MAX_TOKENS < enc._model.token_count(long, True)
    assert long.startswith(cut) and len(cut) > 100
    blob = "x" * 20000  # one enormous "word"
    assert enc._model.token_count(enc.truncate(blob), True) <= E5_MAX_TOKENS
    with pytest.raises(InputError, match="text input 0"):
        enc.encode([None])  # type: ignore[list-item]

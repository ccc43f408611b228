"""Resizing at decode time: swscale-draft (new stores), swscale or torch (stores made
before each), the choice recorded in the store's decode settings and used again for
queries and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nmodal.encoders.torch_utils import resize_uint8
from nmodal.errors import InputError
from nmodal.features import read_featureset
from nmodal.features.decode import (
    DecodeSpec,
    PostJob,
    decode_post,
    decode_raw,
    recorded_decode_settings,
    spec_for,
)
from nmodal.features.extract import ExtractConfig, extract_features, resolve_encoders
from nmodal.media import load_image, sample_video
from nmodal.media.image import resize_swscale
from tests.helpers.media import write_image, write_video

from . import fake_encoders  # noqa: F401  (registers the fake encoders)
from .datasets import write_dataset


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    return {
        "video": write_video(root / "v.mp4", num_frames=40, width=128, height=96),
        "photo": write_image(root / "p.jpg", width=160, height=120),
        "large": write_image(root / "l.jpg", width=1280, height=720),
        "png": write_image(root / "l.png", width=1280, height=720),
    }


def test_swscale_resizes_while_decoding_close_to_torch_but_not_equal(
    media: dict[str, Path],
) -> None:
    size = (32, 32)
    sw = DecodeSpec(("video", "image"), video_size=size, image_size=size, resize="swscale")
    th = DecodeSpec(("video", "image"), video_size=size, image_size=size, resize="torch")
    job = PostJob("p", None, str(media["video"]), None, None)
    a, b = decode_post(job, sw), decode_post(job, th)
    assert a.items["video"].shape == b.items["video"].shape == (16, 32, 32, 3)
    assert a.items["image"].shape == (32, 32, 3)
    # swscale straight from the decoder's YUV: what sample_video gives with that resizer
    direct = sample_video(media["video"], 16, 0, size=size, max_side=1024, resize="swscale")
    np.testing.assert_array_equal(a.items["video"], direct.frames)
    np.testing.assert_array_equal(a.items["image"], direct.image)
    # another resampler: close to torch's antialiased bilinear, not the same pixels
    diff = np.abs(a.items["video"].astype(int) - b.items["video"].astype(int))
    assert 0 < diff.mean() < 6, diff.mean()

    # a photo: Pillow decodes it, swscale resizes the array
    photo = decode_post(PostJob("q", None, None, str(media["photo"]), None), sw)
    full = decode_post(PostJob("q", None, None, str(media["photo"]), None), DecodeSpec(("image",)))
    np.testing.assert_array_equal(photo.items["image"], resize_swscale(full.items["image"], size))
    torch_photo = resize_uint8(full.items["image"], size)
    assert 0 < np.abs(photo.items["image"].astype(int) - torch_photo.astype(int)).mean() < 6


def test_different_video_and_image_sizes_resize_after_decoding(media: dict[str, Path]) -> None:
    spec = DecodeSpec(("video", "image"), video_size=(32, 32), image_size=(24, 40))
    out = decode_post(PostJob("p", None, str(media["video"]), None, None), spec)
    assert out.items["video"].shape == (16, 32, 32, 3) and out.items["image"].shape == (24, 40, 3)
    full = sample_video(media["video"], 16, 0, max_side=1024)
    np.testing.assert_array_equal(out.items["image"], resize_swscale(full.image, (24, 40)))


def test_an_unknown_resizer_is_refused() -> None:
    with pytest.raises(InputError, match="resize must be one of"):
        DecodeSpec(("video",), resize="lanczos")


def test_queries_decode_with_the_recorded_resizer(media: dict[str, Path]) -> None:
    encs = resolve_encoders("fake", ("video",))
    old = recorded_decode_settings({"name": "fake-video", "decode": {"num_frames": 16}})
    new = recorded_decode_settings({"name": "fake-video", "decode": {"resize": "swscale"}})
    assert old["resize"] == "torch" and new["resize"] == "swscale"
    art = {"video": media["video"]}
    legacy = decode_raw(art, spec_for(encs, old)).items["video"]
    fresh = decode_raw(art, spec_for(encs, new)).items["video"]
    full = sample_video(media["video"], 16, 0, max_side=1024).frames
    np.testing.assert_array_equal(legacy, resize_uint8(full, (16, 16)))
    np.testing.assert_array_equal(fresh, sample_video(media["video"], 16, 0, size=(16, 16),
                                                      resize="swscale").frames)  # fmt: skip


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_stores_made_the_old_way_resume_and_stay_as_they_were(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "ds", num_videos=3)
    cfg = ExtractConfig(encoders="fake", modalities=("text", "image", "video"), shard_size=2,
                        workers=0, progress=False)  # fmt: skip
    # resize="torch" writes exactly what stores made before swscale hold (no "resize" key)
    extract_features(dataset, tmp_path / "old", cfg, resize="torch")
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    assert all("resize" not in m["encoder"]["decode"] for m in manifest["modalities"].values())
    # the default (resize=None) finds the old store complete: nothing rewritten
    assert extract_features(dataset, tmp_path / "old", cfg).already_complete

    # an interrupted old store (its last shard not listed) resumes with torch resizing
    extract_features(dataset, tmp_path / "cut", cfg, resize="torch")
    path = tmp_path / "cut" / "manifest.json"
    cut = json.loads(path.read_text())
    cut["shards"], cut["complete"] = cut["shards"][:-1], False
    path.write_text(json.dumps(cut, indent=2, ensure_ascii=False) + "\n")  # as the writer does
    (tmp_path / "cut" / "errors.jsonl").unlink()
    resumed = extract_features(dataset, tmp_path / "cut", cfg)
    assert not resumed.already_complete and resumed.stats.posts_skipped > 0
    assert _files(tmp_path / "cut") == _files(tmp_path / "old")

    # a new store records swscale-draft, and its features differ from the torch-resized ones
    extract_features(dataset, tmp_path / "new", cfg)
    fs_new, fs_old = read_featureset(tmp_path / "new"), read_featureset(tmp_path / "old")
    assert recorded_decode_settings(fs_new.encoders["video"])["resize"] == "swscale-draft"
    assert not np.array_equal(fs_new.features["video"], fs_old.features["video"])
    np.testing.assert_array_equal(fs_new.features["text"], fs_old.features["text"])


def test_swscale_draft_decodes_jpeg_photos_at_the_scale_that_covers_the_model(
    media: dict[str, Path],
) -> None:
    from PIL import Image

    size = (224, 224)
    draft = DecodeSpec(("image",), image_size=size)  # the default of new stores
    assert draft.resize == "swscale-draft"
    old = DecodeSpec(("image",), image_size=size, resize="swscale")
    job = PostJob("q", None, None, str(media["large"]), None)
    got, before = decode_post(job, draft).items["image"], decode_post(job, old).items["image"]
    # libjpeg's 1/2 scale is the smallest whose 640x360 still covers 1.5 x 224 = 336
    # pixels a side; no bicubic thumbnail to max_side on the way: Pillow's draft decode,
    # then swscale
    with Image.open(media["large"]) as opened:
        opened.draft("RGB", (336, 336))
        half = np.asarray(opened.convert("RGB"))
    assert half.shape == (360, 640, 3)
    np.testing.assert_array_equal(load_image(media["large"], max_side=1024, cover=336), half)
    np.testing.assert_array_equal(got, resize_swscale(half, size))
    # the photo decoded the swscale way: at 1024 a side first, then resized
    np.testing.assert_array_equal(
        before, resize_swscale(load_image(media["large"], max_side=1024), size)
    )
    diff = np.abs(got.astype(int) - before.astype(int))
    assert 0 < diff.mean() < 3, diff.mean()  # another path to the same picture, close
    # formats without reduced-scale decoding, and JPEGs too small to reduce, decode as before
    for path in (media["png"], media["photo"]):
        same = PostJob("q", None, None, str(path), None)
        small = (100, 100) if path == media["photo"] else size
        np.testing.assert_array_equal(
            decode_post(same, DecodeSpec(("image",), image_size=small)).items["image"],
            decode_post(same, DecodeSpec(("image",), image_size=small, resize="swscale"))
            .items["image"],
        )  # fmt: skip


def test_queries_decode_photos_with_the_recorded_resizer(media: dict[str, Path]) -> None:
    encs = resolve_encoders("fake", ("image",))
    art = {"image": media["large"]}
    by_resizer = {
        r: decode_raw(art, spec_for(encs, {"resize": r})).items["image"]
        for r in ("swscale-draft", "swscale", "torch")
    }
    size = encs["image"].input_size
    assert max(size) == 16  # 1.5 x 16 = 24 pixels a side to cover: libjpeg's 1/8 scale
    full = load_image(media["large"], max_side=1024)
    np.testing.assert_array_equal(by_resizer["torch"], resize_uint8(full, size))
    np.testing.assert_array_equal(by_resizer["swscale"], resize_swscale(full, size))
    np.testing.assert_array_equal(
        by_resizer["swscale-draft"],
        resize_swscale(load_image(media["large"], max_side=1024, cover=24), size),
    )
    assert not np.array_equal(by_resizer["swscale-draft"], by_resizer["swscale"])


def test_a_store_made_with_swscale_resumes_with_it(tmp_path: Path, media: dict[str, Path]) -> None:
    from nmodal.sources.posts import write_posts

    rows = [{"post_id": f"ch/{i}", "account": "ch", "text": f"a photo post {i}",
             "image_path": str(media["large"]), "status": "kept"} for i in range(4)]  # fmt: skip
    write_posts(rows, tmp_path / "ds")
    cfg = ExtractConfig(encoders="fake", modalities=("text", "image"), shard_size=2, workers=0,
                        progress=False)  # fmt: skip
    extract_features(tmp_path / "ds", tmp_path / "old", cfg, resize="swscale")
    extract_features(tmp_path / "ds", tmp_path / "cut", cfg, resize="swscale")
    path = tmp_path / "cut" / "manifest.json"
    cut = json.loads(path.read_text())
    cut["shards"], cut["complete"] = cut["shards"][:-1], False
    path.write_text(json.dumps(cut, indent=2, ensure_ascii=False) + "\n")  # as the writer does
    (tmp_path / "cut" / "errors.jsonl").unlink()
    resumed = extract_features(tmp_path / "ds", tmp_path / "cut", cfg)  # resize=None: recorded
    assert resumed.stats.posts_skipped == 2
    assert _files(tmp_path / "cut") == _files(tmp_path / "old")
    # a new store of the same posts decodes the photo at the reduced JPEG scale
    extract_features(tmp_path / "ds", tmp_path / "new", cfg)
    old, new = read_featureset(tmp_path / "old"), read_featureset(tmp_path / "new")
    assert recorded_decode_settings(old.encoders["image"])["resize"] == "swscale"
    assert recorded_decode_settings(new.encoders["image"])["resize"] == "swscale-draft"
    assert not np.array_equal(old.features["image"], new.features["image"])

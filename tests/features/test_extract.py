"""Extraction: posts table + real media -> store; errors recorded, resumable, kill -9 safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nmodal.errors import InputError
from nmodal.features import read_featureset
from nmodal.features.decode import DecodeSpec, PostJob, decode_post
from nmodal.features.extract import extract_features
from nmodal.features.store import read_errors, read_store_manifest

from . import fake_encoders
from .datasets import write_dataset

MODS = ("text", "image", "video", "audio")
TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ds"))


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_extract_records_presence_and_errors(dataset: Path, tmp_path: Path) -> None:
    result = extract_features(
        dataset,
        tmp_path / "s",
        encoders="fake",
        modalities=MODS,
        shard_size=4,
        workers=0,
        progress=False,
    )
    assert result.complete and not result.already_complete and result.stats.posts == 10
    fs = read_featureset(tmp_path / "s")
    assert fs.post_ids.tolist() == [
        *(f"ch/{i}" for i in range(6)),
        "ch/photo",
        "ch/text",
        "ch/gif",
        "ch/broken",
    ]
    present = {m: fs.present[m].astype(int).tolist() for m in MODS}
    assert present == {
        "text": [1, 1, 1, 1, 1, 1, 1, 1, 0, 1],  # the GIF post has no text
        "image": [
            1,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            1,
            0,
        ],  # held-out frames, the photo, none for text-only / broken
        "video": [1, 1, 1, 1, 1, 1, 0, 0, 1, 0],
        "audio": [1, 0, 1, 0, 1, 0, 0, 0, 0, 0],  # every other clip has sound
    }
    errors = read_errors(tmp_path / "s")
    assert {(e["post_id"], e["modality"]) for e in errors} == {
        ("ch/broken", m) for m in ("image", "video", "audio")
    }
    assert all(e["reason"] and e["stage"] and e["path"].endswith("broken.mp4") for e in errors)
    # the video encoder saw 16 frames resized in the workers to its input size
    assert (fs.features["video"][fs.present["video"], 0] == 16).all()
    assert (fs.features["image"][fs.present["image"], 3] == 16).all()
    # the image of a video post is a frame the video model did not see, chosen per seed
    manifest = read_store_manifest(tmp_path / "s")
    assert manifest["modalities"]["video"]["encoder"]["name"] == "fake-video"
    assert manifest["num_errors"] == 3


def test_decode_post_uses_held_out_frame_and_video_audio(dataset: Path) -> None:
    from nmodal.media import sample_video

    video = str(dataset / "media" / "v0.mp4")
    spec = DecodeSpec(modalities=MODS)
    out = decode_post(PostJob("x", "words", video, None, None), spec)
    sample = sample_video(video, num_frames=16, seed=0, max_side=1024)
    assert np.array_equal(out.items["image"], sample.image) and np.array_equal(
        out.items["video"], sample.frames
    )
    assert out.items["audio"].dtype == np.float32 and out.items["audio"].size > 0 and not out.errors
    silent = decode_post(PostJob("y", "", str(dataset / "media" / "v1.mp4"), None, None), spec)
    assert "audio" not in silent.items and not silent.errors and "text" not in silent.items


def test_encoder_failures_are_per_post(dataset: Path, tmp_path: Path) -> None:
    import pandas as pd

    from nmodal.sources.posts import read_posts, write_posts

    ds = tmp_path / "ds"
    df = read_posts(dataset)
    df.loc[df["post_id"] == "ch/2", "text"] = "please explode now"
    write_posts(pd.DataFrame(df), ds)
    extract_features(
        ds, tmp_path / "s", encoders="fake", modalities=("text",), workers=0, progress=False
    )
    fs = read_featureset(tmp_path / "s")
    assert fs.present["text"].sum() == 8 and not fs.present["text"][2]
    (err,) = read_errors(tmp_path / "s")
    assert err["post_id"] == "ch/2" and err["stage"] == "encode" and "fail" in err["reason"]


def test_workers_give_the_same_store_and_rerun_is_a_no_op(dataset: Path, tmp_path: Path) -> None:
    kw = {"encoders": "fake", "modalities": MODS, "shard_size": 3, "progress": False}
    extract_features(dataset, tmp_path / "serial", workers=0, **kw)
    extract_features(dataset, tmp_path / "pool", workers=2, **kw)
    assert _files(tmp_path / "serial") == _files(tmp_path / "pool")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "pool").iterdir()}
    again = extract_features(dataset, tmp_path / "pool", workers=2, **kw)
    assert again.already_complete and again.stats.posts == 0
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "pool").iterdir()}


def test_bad_arguments(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown modality"):
        extract_features(dataset, tmp_path / "s", encoders="fake", modalities=("smell",))
    with pytest.raises(InputError, match="no posts table"):
        extract_features(tmp_path, tmp_path / "s", encoders="fake")
    extract_features(
        dataset, tmp_path / "s", encoders="fake", modalities=("text",), workers=0, progress=False
    )
    with pytest.raises(InputError, match="different"):
        extract_features(
            dataset,
            tmp_path / "s",
            encoders="fake",
            modalities=("text", "image"),
            workers=0,
            progress=False,
        )


RUN = """
import sys
sys.path.insert(0, {tests!r})
from tests.features import fake_encoders  # registers the fake sets
from nmodal.features.extract import extract_features
if __name__ == "__main__":
    extract_features({ds!r}, {out!r}, encoders="fake-slow", modalities={mods!r}, shard_size=2, workers=1, progress=False)
"""


def _run_and_kill(script: Path, manifest: Path, shards: int, delay: float) -> None:
    """Start the extraction script, SIGKILL it (and its workers) ``delay`` s after the
    manifest lists ``shards`` shards."""
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        text = manifest.read_text() if manifest.is_file() else ""
        if text and len(json.loads(text).get("shards", [])) >= shards:
            break
        time.sleep(0.02)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_kill_9_and_resume_is_byte_identical(dataset: Path, tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    killed = tmp_path / "killed"
    script.write_text(
        RUN.format(tests=str(TESTS_DIR.parent), ds=str(dataset), out=str(killed), mods=MODS)
    )
    _run_and_kill(script, killed / "manifest.json", shards=1, delay=0.05)  # early in shard 2
    first = len(read_store_manifest(killed)["shards"])
    _run_and_kill(script, killed / "manifest.json", shards=3, delay=0.25)  # resumed, killed again
    partial = read_store_manifest(killed)
    assert not partial["complete"] and first <= len(partial["shards"]) < partial["num_shards"]
    resumed = extract_features(
        dataset,
        killed,
        encoders="fake-slow",
        modalities=MODS,
        shard_size=2,
        workers=1,
        progress=False,
    )
    assert resumed.stats.posts_skipped == 2 * len(partial["shards"])
    extract_features(
        dataset,
        tmp_path / "whole",
        encoders="fake-slow",
        modalities=MODS,
        shard_size=2,
        workers=1,
        progress=False,
    )
    assert _files(killed) == _files(tmp_path / "whole")
    assert not list(killed.glob(".*.tmp"))


def test_fake_sets_registered() -> None:
    assert fake_encoders.FakeText.name == "fake-text"


@pytest.mark.slow
def test_a_crashing_decoder_costs_only_its_post(dataset: Path) -> None:
    from nmodal.features.extract import decoded_stream

    media = dataset / "media"
    jobs = [
        PostJob(
            f"p{i}",
            "segfault here" if i == 2 else f"post {i}",
            str(media / f"v{i}.mp4"),
            None,
            None,
        )
        for i in range(5)
    ]
    spec = DecodeSpec(modalities=("text", "video"), video_size=(16, 16))
    out = list(
        decoded_stream(jobs, spec, workers=2, prefetch=4, decode=fake_encoders.crashing_decode)
    )
    assert [d.post_id for d in out] == [f"p{i}" for i in range(5)]
    assert all("video" in d.items and not d.errors for i, d in enumerate(out) if i != 2)
    crashed = out[2]
    assert crashed.items == {"text": "segfault here"}
    assert [(e["modality"], e["reason"]) for e in crashed.errors] == [
        ("video", "the decoder process crashed on this post")
    ]


def test_decode_settings_are_recorded_and_reused_for_queries(dataset: Path, tmp_path: Path) -> None:
    """A query file must be decoded as the store's posts were: the store records the frame
    count, seed, audio length and size limit, and query decoding reads them back."""
    from nmodal.features.decode import recorded_decode_settings
    from nmodal.index.query import load_query_input

    extract_features(
        dataset, tmp_path / "s", encoders="fake", modalities=("text", "video"), shard_size=4,
        workers=0, progress=False, num_frames=8, seed=3, audio_seconds=5.0, max_side=64,
    )  # fmt: skip
    fs = read_featureset(tmp_path / "s")
    recorded = recorded_decode_settings(fs.encoders["video"])
    assert recorded == {
        "num_frames": 8, "seed": 3, "sample_rate": 16000, "audio_seconds": 5.0, "max_side": 64,
        "resize": "swscale-draft",
    }  # fmt: skip
    video = dataset / "media" / "v0.mp4"
    frames = load_query_input("video", video, decode=recorded)
    direct = decode_post(
        PostJob("x", None, str(video), None, None),
        DecodeSpec(modalities=("video",), num_frames=8, seed=3, max_side=64),
    )
    assert frames.shape[0] == 8 and np.array_equal(frames, direct.items["video"])
    # stores from before the settings were recorded were resized with torch
    assert recorded_decode_settings({"name": "old-store-without-settings"}) == {"resize": "torch"}


def test_a_media_file_that_now_leaves_its_root_is_never_opened(tmp_path: Path) -> None:
    """After ingest a photo was replaced by a symlink to a file outside the collection's
    media root: extraction records it as an error and never decodes that file."""
    import pandas as pd

    from nmodal.sources.posts import write_posts
    from tests.helpers.media import write_image

    root = tmp_path / "collection"
    (root / "media").mkdir(parents=True)
    inside = write_image(root / "media" / "inside.png", index=1)
    victim = write_image(root / "media" / "victim.png", index=2)
    (tmp_path / "elsewhere").mkdir()
    secret = write_image(tmp_path / "elsewhere" / "secret.png", index=3)
    rows = [
        {"post_id": f"c/{i}", "account": "c", "text": f"a post with words {i}",
         "image_path": str(path), "media_root": str(root), "status": "kept"}
        for i, path in enumerate((inside, victim))
    ]  # fmt: skip
    dataset = write_posts(pd.DataFrame(rows), tmp_path / "ds").parent
    victim.unlink()
    victim.symlink_to(secret)
    extract_features(dataset, tmp_path / "s", encoders="fake", modalities=("text", "image"),
                     workers=0, progress=False)  # fmt: skip
    fs = read_featureset(tmp_path / "s")
    assert fs.present["image"].tolist() == [True, False]
    errors = read_errors(tmp_path / "s")
    assert [(e["post_id"], e["modality"]) for e in errors] == [("c/1", "image")]
    assert "outside the collection's media root" in errors[0]["reason"]

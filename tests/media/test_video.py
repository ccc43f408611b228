"""sample_video / probe on real files: frame identity via barcodes, determinism, awkward files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmodal.errors import MediaError
from nmodal.media import held_out_index, probe, sample_indices, sample_video
from tests.helpers.media import (
    frame_pattern,
    read_frame_index,
    write_audio,
    write_corrupt,
    write_gif,
    write_image,
    write_round_video,
    write_truncated,
    write_vfr_video,
    write_video,
)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    files = {
        "clip": write_video(d / "clip.mp4", num_frames=80, fps=25, audio=True),
        "silent_video": write_video(d / "noaudio.mp4", num_frames=70),
        "short": write_video(d / "short.mp4", num_frames=30),
        "gif": write_gif(d / "anim.gif", num_frames=40),
        "round": write_round_video(d / "round.mp4", num_frames=66),
        "vfr": write_vfr_video(d / "vfr.mp4", num_frames=90),
        "rot90": write_video(d / "rot90.mp4", num_frames=40, rotation=90),
        "rot270": write_video(d / "rot270.mp4", num_frames=40, rotation=-90),
        "rot180": write_video(d / "rot180.mp4", num_frames=40, rotation=180),
        "long": write_video(d / "long.mp4", num_frames=1500, fps=30, gop=30),
        "faststart": write_video(d / "fs.mp4", num_frames=80, faststart=True),
        "m4a": write_audio(d / "voice.m4a", seconds=1.0),
        "jpg": write_image(d / "photo.jpg"),
    }
    files["truncated"] = write_truncated(files["clip"], d / "truncated.mp4", keep=0.5)
    files["truncated_fs"] = write_truncated(files["faststart"], d / "trunc_fs.mp4", keep=0.6)
    files["garbage"] = write_corrupt(d / "garbage.mp4", "garbage")
    files["html"] = write_corrupt(d / "page.mp4", "text")
    files["empty"] = write_corrupt(d / "empty.mp4", "empty")
    return files


def indices_seen(frames: np.ndarray) -> list[int]:
    return [read_frame_index(f) for f in frames]


def test_sample_indices_uniform_and_distinct() -> None:
    idx = sample_indices(64, 16)
    assert idx.tolist() == [2 + 4 * k for k in range(16)]
    for total in (17, 18, 63, 64, 65, 1000, 12345):
        idx = sample_indices(total, 16)
        assert len(set(idx.tolist())) == 16
        assert idx.min() >= 0 and idx.max() < total
        # frame k holds the centre of the k-th of 16 equal segments (exact integer check)
        centre2 = (2 * np.arange(16) + 1) * total  # 2 * 16 * centre
        assert np.all((32 * idx <= centre2) & (centre2 < 32 * (idx + 1)))


def test_held_out_index_not_sampled_and_seeded() -> None:
    for total in (17, 20, 64, 500):
        idx = sample_indices(total, 16)
        picks = {held_out_index(total, idx, seed, "a.mp4") for seed in range(30)}
        assert not picks & set(idx.tolist())
        assert all(0 <= p < total for p in picks)
        if total > 20:
            assert len(picks) > 1  # the seed matters
    idx = sample_indices(500, 16)
    assert held_out_index(500, idx, 3, "a.mp4") == held_out_index(500, idx, 3, "a.mp4")
    by_name = {held_out_index(500, idx, 0, f"{i}.mp4") for i in range(30)}
    assert len(by_name) > 1  # the file name matters


def test_probe_clip(media: dict[str, Path]) -> None:
    info = probe(media["clip"])
    assert (info.has_video, info.has_audio) == (True, True)
    assert info.num_frames == 80
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(3.2, abs=0.05)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert not probe(media["silent_video"]).has_audio


def test_sample_video_returns_the_right_frames(media: dict[str, Path]) -> None:
    s = sample_video(media["clip"], num_frames=16, seed=0)
    assert s.frames.shape == (16, 48, 64, 3) and s.frames.dtype == np.uint8
    assert s.image.shape == (48, 64, 3)
    assert s.frame_indices.tolist() == sample_indices(80, 16).tolist()
    assert indices_seen(s.frames) == s.frame_indices.tolist()
    assert read_frame_index(s.image) == s.image_index
    assert s.image_index not in s.frame_indices
    # pixels close to what was encoded (lossy, but barely)
    err = np.abs(s.frames[0].astype(int) - frame_pattern(int(s.frame_indices[0])).astype(int))
    assert err.mean() < 8


def test_sample_video_deterministic(media: dict[str, Path]) -> None:
    a = sample_video(media["clip"], seed=7)
    b = sample_video(media["clip"], seed=7)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.image, b.image)
    assert a.image_index == b.image_index
    others = {sample_video(media["clip"], seed=s).image_index for s in range(6)}
    assert len(others) > 1


@pytest.mark.parametrize("name", ["gif", "round", "silent_video", "faststart"])
def test_other_kinds_decode(media: dict[str, Path], name: str) -> None:
    info = probe(media[name])
    s = sample_video(media[name], num_frames=8)
    assert indices_seen(s.frames) == sample_indices(info.num_frames, 8).tolist()
    assert read_frame_index(s.image) == s.image_index
    assert s.frames.shape[1:3] == (info.height, info.width)


def test_gif_frame_count(media: dict[str, Path]) -> None:
    assert probe(media["gif"]).num_frames == 40
    assert probe(media["round"]).width == probe(media["round"]).height == 64


def test_variable_frame_rate_counts_frames_not_time(media: dict[str, Path]) -> None:
    info = probe(media["vfr"])
    assert info.num_frames == 90
    s = sample_video(media["vfr"], num_frames=16)
    assert indices_seen(s.frames) == sample_indices(90, 16).tolist()


@pytest.mark.parametrize(("name", "k"), [("rot90", 1), ("rot270", 3), ("rot180", 2)])
def test_rotation_applied(media: dict[str, Path], name: str, k: int) -> None:
    info = probe(media[name])
    assert info.rotation == 90 * k
    s = sample_video(media[name], num_frames=8)
    raw = sample_video(media[name], num_frames=8, autorotate=False)
    assert raw.frames.shape[1:3] == (48, 64)
    expected_hw = (64, 48) if k % 2 else (48, 64)
    assert s.frames.shape[1:3] == expected_hw == (info.height, info.width)
    assert np.array_equal(s.frames, np.rot90(raw.frames, k=k, axes=(1, 2)))
    # the red marker (top-left of the stored frame) ends where the rotation puts it
    marker = np.zeros((48, 64), bool)
    marker[:6, :4] = True
    rotated_marker = np.rot90(marker, k=k)
    red = (s.frames[0, :, :, 0] > 150) & (s.frames[0, :, :, 1] < 100)
    assert red[rotated_marker].mean() > 0.8 and red[~rotated_marker].mean() < 0.02
    assert [read_frame_index(np.rot90(f, k=-k)) for f in s.frames] == s.frame_indices.tolist()


def test_long_clip_seek_equals_sequential(media: dict[str, Path]) -> None:
    seq = sample_video(media["long"], num_frames=16, seed=1, mode="sequential")
    seek = sample_video(media["long"], num_frames=16, seed=1, mode="seek")
    auto = sample_video(media["long"], num_frames=16, seed=1)
    assert indices_seen(seq.frames) == seq.frame_indices.tolist()
    for other in (seek, auto):
        assert other.frame_indices.tolist() == seq.frame_indices.tolist()
        assert other.image_index == seq.image_index
        assert indices_seen(other.frames) == seq.frame_indices.tolist()
        assert np.array_equal(other.frames, seq.frames)
    assert seq.frames_decoded == max(seq.image_index, int(seq.frame_indices.max())) + 1
    assert seek.frames_decoded < seq.frames_decoded / 2
    assert auto.frames_decoded == seek.frames_decoded


def test_variable_frame_rate_never_seeks(tmp_path: Path) -> None:
    path = write_vfr_video(tmp_path / "vfr_long.mp4", num_frames=700)
    s = sample_video(path, num_frames=16, mode="seek")
    assert indices_seen(s.frames) == sample_indices(700, 16).tolist()
    assert read_frame_index(s.image) == s.image_index


def test_resize_and_max_side(media: dict[str, Path]) -> None:
    s = sample_video(media["clip"], num_frames=4, size=(32, 40))
    assert s.frames.shape == (4, 32, 40, 3) and s.image.shape == (32, 40, 3)
    s = sample_video(media["clip"], num_frames=4, max_side=32)
    assert s.frames.shape == (4, 24, 32, 3)
    assert s.info.width == 64  # the info keeps the file's own size


def test_huge_resolution_downscaled_while_decoding(tmp_path: Path) -> None:
    path = write_video(
        tmp_path / "huge.mp4", num_frames=6, width=3840, height=2160, preset="ultrafast"
    )
    info = probe(path)
    assert (info.width, info.height) == (3840, 2160)
    s = sample_video(path, num_frames=4, max_side=256)
    assert s.frames.shape == (4, 144, 256, 3)
    assert indices_seen(s.frames) == s.frame_indices.tolist()


def test_too_short(media: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="too short: 30 frames < 64") as exc:
        sample_video(media["short"], min_frames=64)
    assert exc.value.path.endswith("short.mp4")
    assert sample_video(media["short"], num_frames=16).frames.shape[0] == 16
    with pytest.raises(MediaError, match="too short: 30 frames < 31"):
        sample_video(media["short"], num_frames=30)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated", "truncated"),
        ("truncated_fs", "truncated"),
        ("garbage", "not a media file"),
        ("html", "not a media file"),
        ("empty", "empty file"),
        ("m4a", "no video stream"),
    ],
)
def test_broken_files_raise_media_error(media: dict[str, Path], name: str, reason: str) -> None:
    with pytest.raises(MediaError) as exc:
        sample_video(media[name])
    assert reason in exc.value.reason
    assert exc.value.path == str(media[name])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="file not found"):
        probe(tmp_path / "nope.mp4")


def test_audio_only_and_image_probe(media: dict[str, Path]) -> None:
    info = probe(media["m4a"])
    assert (info.has_video, info.has_audio, info.num_frames) == (False, True, 0)
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert probe(media["jpg"]).is_still_image
    assert not probe(media["clip"]).is_still_image


def test_decode_error_midstream_is_media_error(tmp_path: Path) -> None:
    """Damage the frame data (not the index) of a clip: decodes partially or MediaError."""
    path = write_video(tmp_path / "damaged.mp4", num_frames=80, faststart=True)
    data = bytearray(path.read_bytes())
    start = data.find(b"mdat") + 8 + len(data) // 10
    rng = np.random.default_rng(0)
    data[start : start + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    try:
        s = sample_video(path)
    except MediaError as exc:
        assert exc.reason
    else:
        assert s.frames.shape == (16, 48, 64, 3)

"""Video decoding with one FFmpeg thread (extraction workers) gives the same frames, byte
for byte, as FFmpeg's automatic threading and as an independent full sequential decode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from nmodal.media import sample_video
from nmodal.media import video as video_mod
from nmodal.media.video import set_decode_threads
from tests.helpers.media import write_vfr_video, write_video

_ROOT = Path(__file__).resolve().parents[2]
# the real exports beside the checkout (main checkout: ../shared; a worktree: ../../shared)
SHARED = next(
    (p for p in (_ROOT.parent / "shared" / "data", _ROOT.parents[1] / "shared" / "data")
     if p.is_dir()),
    _ROOT.parent / "shared" / "data",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = video_mod._DECODE_THREADS
    yield
    set_decode_threads(before)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("threads")
    return {
        # veryfast x264: B-frames (some non-reference), default GOP
        "bframes": write_video(d / "b.mp4", num_frames=90, width=96, height=64),
        "gop5": write_video(d / "g5.mp4", num_frames=90, width=96, height=64, gop=5),
        "gop1": write_video(d / "g1.mp4", num_frames=40, width=96, height=64, gop=1),
        "ultrafast": write_video(
            d / "u.mp4", num_frames=90, width=96, height=64, preset="ultrafast"
        ),
        "long_gop25": write_video(d / "l.mp4", num_frames=700, width=64, height=48, gop=25),
        "vfr": write_vfr_video(d / "vfr.mp4", num_frames=80),
        "rotated": write_video(d / "r.mp4", num_frames=60, width=96, height=64, rotation=90),
        "short": write_video(d / "s.mp4", num_frames=17, width=96, height=64),
    }


def _all_frames(path: Path) -> list[np.ndarray]:
    """Every frame, decoded in order with PyAV's defaults (independent of nmodal)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


@pytest.mark.parametrize(
    "name", ["bframes", "gop5", "gop1", "ultrafast", "long_gop25", "vfr", "rotated", "short"]
)
def test_one_thread_same_frames(clips: dict[str, Path], name: str) -> None:
    path = clips[name]
    runs = {}
    for threads in (None, 1, 2):
        set_decode_threads(threads)
        runs[threads] = sample_video(path, num_frames=16, seed=3, autorotate=False)
    ref = _all_frames(path)
    for threads, s in runs.items():
        expected = np.stack([ref[i] for i in s.frame_indices])
        assert np.array_equal(s.frames, expected), (name, threads)
        assert np.array_equal(s.image, ref[s.image_index]), (name, threads)
        assert s.frame_indices.tolist() == runs[None].frame_indices.tolist()


def test_one_thread_same_frames_seeking_and_swscale(clips: dict[str, Path]) -> None:
    path = clips["long_gop25"]
    got = {}
    for threads in (None, 1):
        set_decode_threads(threads)
        got[threads] = [
            sample_video(path, num_frames=16, mode=mode, size=(32, 40), resize=resize)
            for mode in ("seek", "sequential")
            for resize in ("pillow", "swscale")
        ]
    for a, b in zip(got[None], got[1], strict=True):
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.image, b.image)


def test_setting_reaches_the_decoder(clips: dict[str, Path]) -> None:
    set_decode_threads(1)
    with av.open(str(clips["bframes"])) as c:
        stream = c.streams.video[0]
        video_mod._set_threading(stream)
        assert stream.codec_context.thread_count == 1
        assert str(stream.thread_type).upper().endswith("NONE")
    set_decode_threads(None)
    with av.open(str(clips["bframes"])) as c:
        stream = c.streams.video[0]
        video_mod._set_threading(stream)
        assert not str(stream.thread_type).upper().endswith("NONE")
    with pytest.raises(ValueError):
        set_decode_threads(0)


def _real_videos() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(p for p in SHARED.glob("**/*.mp4"))[:6]


@pytest.mark.skipif(not _real_videos(), reason="no real exports beside the checkout")
def test_real_exports_same_frames_one_thread() -> None:
    from nmodal.errors import MediaError

    checked = 0
    for path in _real_videos():
        out = []
        for threads in (None, 1):
            set_decode_threads(threads)
            try:
                out.append(sample_video(path, num_frames=16, size=(224, 224), resize="swscale"))
            except MediaError:
                break
        if len(out) == 2:
            assert np.array_equal(out[0].frames, out[1].frames), path
            assert np.array_equal(out[0].image, out[1].image), path
            checked += 1
    assert checked > 0

"""Decoding's fast paths give the bytes of the plain ones: audio resampled into large
output frames equals one output frame per decoded frame, and one reused swscale context
per thread equals ``VideoFrame.to_ndarray`` (a new context every frame)."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from nmodal.media import load_audio
from nmodal.media.image import frame_to_rgb
from tests.helpers.media import write_audio, write_video

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _stereo_aac(path: Path, seconds: float = 4.0, rate: int = 48000) -> Path:
    """A stereo AAC track at ``rate`` with different content per channel (resampled and
    mixed down, unlike the helpers' mono 16 kHz tracks)."""
    t = np.arange(int(seconds * rate)) / rate
    left = 0.4 * np.sin(2 * np.pi * 330 * t) * np.linspace(0, 1, t.size)
    right = 0.3 * np.sin(2 * np.pi * 523 * t + 1.0)
    data = np.stack([left, right]).astype(np.float32)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "stereo"
        for i in range(0, t.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                data[:, i : i + 1024].copy(), format="fltp", layout="stereo"
            )
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _per_frame_reference(path: Path, rate: int, max_seconds: float | None) -> np.ndarray:
    """The plain decode: every decoded frame resampled on its own, then cut."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        for frame in container.decode(container.streams.audio[0]):
            chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(frame))
        chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(None))
    wave = np.concatenate(chunks)
    if max_seconds is not None:
        wave = wave[: round(max_seconds * rate)]
    return np.clip(wave, -1.0, 1.0)


def _audio_files(tmp_path: Path) -> list[Path]:
    files = [
        _stereo_aac(tmp_path / "stereo48.m4a"),
        _stereo_aac(tmp_path / "stereo44.m4a", seconds=2.5, rate=44100),
        write_audio(tmp_path / "a.wav", seconds=1.7, sample_rate=22050),
        write_audio(tmp_path / "a.ogg", seconds=1.3, sample_rate=48000),
        write_video(tmp_path / "v.mp4", num_frames=50, audio=True),
    ]
    if SHARED.is_dir():
        suffixes = (".mp3", ".ogg", ".oga", ".m4a", ".mp4")
        real = [p for p in sorted(SHARED.glob("**/*")) if p.suffix.lower() in suffixes]
        files.extend(real[:6])
    return files


@pytest.mark.parametrize("max_seconds", [None, 30.0, 1.0, 0.3])
def test_audio_in_large_output_frames_equals_per_frame_resampling(
    tmp_path: Path, max_seconds: float | None
) -> None:
    checked = 0
    for path in _audio_files(tmp_path):
        try:
            want = _per_frame_reference(path, 16000, max_seconds)
        except (av.error.FFmpegError, IndexError, ValueError):
            continue  # not an audio file the plain decode reads: load_audio's own tests
        got = load_audio(path, sample_rate=16000, max_seconds=max_seconds)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want, err_msg=str(path))
        checked += 1
    assert checked >= 5


def _frames(tmp_path: Path) -> list[av.VideoFrame]:
    out = []
    for i, (w, h) in enumerate([(640, 360), (320, 240), (96, 160)]):
        clip = write_video(tmp_path / f"c{i}.mp4", num_frames=6, width=w, height=h)
        with av.open(str(clip)) as container:
            out.extend(container.decode(video=0))
    return out


def test_one_swscale_context_per_thread_gives_to_ndarray_bytes(tmp_path: Path) -> None:
    frames = _frames(tmp_path)
    settings = [
        {"format": "rgb24"},
        {"format": "rgb24", "width": 224, "height": 224, "interpolation": "BILINEAR"},
        {"format": "rgb24", "width": 100, "height": 57, "interpolation": "AREA"},
    ]
    # frame sizes and targets alternate, so a stale context would show
    for k, frame in enumerate(frames * 2):
        kw = settings[k % len(settings)]
        got = frame_to_rgb(frame, **kw)
        want = frame.to_ndarray(**kw)
        assert got.shape == want.shape and np.array_equal(got, want), (k, kw)

    results: dict[int, list[np.ndarray]] = {}

    def convert(i: int) -> None:
        results[i] = [frame_to_rgb(f, **settings[1]) for f in frames]

    threads = [threading.Thread(target=convert, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want_all = [f.to_ndarray(**settings[1]) for f in frames]
    for got_all in results.values():
        assert all(np.array_equal(g, w) for g, w in zip(got_all, want_all, strict=True))

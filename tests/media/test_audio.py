"""load_audio against sine waves computed independently with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmodal.errors import MediaError
from nmodal.media import load_audio
from tests.helpers.media import write_audio, write_corrupt, write_video


def sine(seconds: float, freq: float, amplitude: float, sr: int, start: float = 0.0):
    t = start + np.arange(round(seconds * sr)) / sr
    return amplitude * np.sin(2 * np.pi * freq * t)


def dominant_frequency(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1 / sr)[spectrum.argmax()])


def test_wav_resampled_to_16k_matches_sine(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", seconds=2.0, freq=440.0, sample_rate=44100)
    wave = load_audio(path, sample_rate=16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - 32000) <= 2
    ref = sine(2.0, 440.0, 0.5, 16000)[: wave.size]
    inner = slice(200, wave.size - 200)  # away from the resampler's edges
    assert np.max(np.abs(wave[inner] - ref[inner])) < 0.01


def test_other_rates(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", seconds=1.0, freq=1000.0, sample_rate=16000)
    for sr in (8000, 22050, 48000):
        wave = load_audio(path, sample_rate=sr)
        assert abs(wave.size - sr) <= 2
        assert dominant_frequency(wave, sr) == pytest.approx(1000.0, abs=2.0)


def test_aac_m4a_sine(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "voice.m4a", seconds=2.0, freq=440.0, sample_rate=44100)
    wave = load_audio(path, sample_rate=16000)
    assert abs(wave.size - 32000) <= 1024  # AAC frames: up to one frame of padding
    assert dominant_frequency(wave, 16000) == pytest.approx(440.0, abs=1.0)
    rms = float(np.sqrt(np.mean(wave[2000:30000] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_max_seconds_and_offset(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", seconds=3.0, freq=300.0, sample_rate=16000)
    assert load_audio(path, max_seconds=0.5).size == 8000
    assert load_audio(path, max_seconds=None).size == 48000
    part = load_audio(path, offset=1.25, max_seconds=1.0)
    assert part.size == 16000
    ref = sine(1.0, 300.0, 0.5, 16000, start=1.25)
    assert np.max(np.abs(part - ref)) < 1e-3
    with pytest.raises(MediaError, match="no audio after offset"):
        load_audio(path, offset=10.0)


def test_video_soundtrack(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", num_frames=50, fps=25, audio=True, audio_freq=660.0)
    wave = load_audio(path)
    assert abs(wave.size - 32000) <= 1024
    assert dominant_frequency(wave, 16000) == pytest.approx(660.0, abs=1.0)


def test_silent_audio_is_zeros(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "silence.m4a", seconds=1.0, amplitude=0.0)
    wave = load_audio(path)
    assert wave.size > 15000 and np.max(np.abs(wave)) < 1e-4


def test_no_audio_track(tmp_path: Path) -> None:
    path = write_video(tmp_path / "mute.mp4", num_frames=20)
    with pytest.raises(MediaError) as exc:
        load_audio(path)
    assert exc.value.reason == "no audio track" and exc.value.stage == "audio"


def test_not_media(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not a media file"):
        load_audio(write_corrupt(tmp_path / "x.m4a"))

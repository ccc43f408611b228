"""Audio tracks as float32 mono waveforms at a fixed sample rate (PyAV's resampler).

Example:
    >>> wave = load_audio("clip.mp4", sample_rate=16000, max_seconds=30.0)
    >>> wave.dtype, wave.ndim
    (dtype('float32'), 1)
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from nmodal.errors import MediaError
from nmodal.media._container import AV_ERRORS, media_errors, open_input

# A hard cap on decoded audio (memory stays ~230 MB at 16 kHz), whatever the header says.
MAX_AUDIO_SECONDS = 3600.0
RESAMPLED_FRAME = 8192


@media_errors("audio")
def load_audio(
    path: str | Path,
    sample_rate: int = 16000,
    max_seconds: float | None = 30.0,
    offset: float = 0.0,
) -> np.ndarray:
    """The first audio track of ``path`` from ``offset`` seconds on, at most
    ``max_seconds`` long (never more than :data:`MAX_AUDIO_SECONDS`), mixed to mono and resampled to ``sample_rate``: float32 in [-1, 1].

    Raises ``MediaError(reason="no audio track")`` when the file has none, and
    ``MediaError(reason="empty audio track")`` when nothing decodes. Silence is returned
    as zeros (it is data, not an error).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    seconds = MAX_AUDIO_SECONDS if max_seconds is None else min(max_seconds, MAX_AUDIO_SECONDS)
    limit: int | None = max(0, round(seconds * sample_rate))
    skip: int | None = max(0, round(offset * sample_rate))
    with open_input(path, "audio") as container:
        if not container.streams.audio:
            raise MediaError(str(path), "no audio track", "audio")
        stream = container.streams.audio[0]
        if offset > 0 and stream.time_base:
            target = int(offset / stream.time_base)
            try:
                container.seek(target, stream=stream, backward=True)
                # Samples before the seek point still have to be skipped: count from the
                # first decoded frame's time.
                skip = None
            except AV_ERRORS:
                skip = max(0, round(offset * sample_rate))
        # output in frames of RESAMPLED_FRAME samples: the same samples as one output
        # frame per decoded frame, with a tenth of the Python calls (measured on a 30 s
        # 48 kHz AAC track: 50 vs 79 ms)
        resampler = av.AudioResampler(
            format="flt", layout="mono", rate=sample_rate, frame_size=RESAMPLED_FRAME
        )
        chunks: list[np.ndarray] = []
        have = 0
        first_time: float | None = None
        try:
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = float(frame.time) if frame.time is not None else 0.0
                    if skip is None:
                        skip = max(0, round((offset - first_time) * sample_rate))
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    have += out.samples
                if limit is not None and have >= (skip or 0) + limit:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1))
        except AV_ERRORS as exc:
            if not chunks:
                raise MediaError(str(path), f"corrupt audio data ({exc})", "audio") from None
    if not chunks:
        reason = f"no audio after offset {offset:g} s" if offset > 0 else "empty audio track"
        raise MediaError(str(path), reason, "audio")
    wave = np.concatenate(chunks)[skip or 0 :]
    if limit is not None:
        wave = wave[:limit]
    if wave.size == 0:
        raise MediaError(str(path), f"no audio after offset {offset:g} s", "audio")
    return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)

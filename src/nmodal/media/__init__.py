"""Media decoding with PyAV and Pillow: video frame sampling, held-out image frame, audio.

Every failure raises :class:`nmodal.errors.MediaError` with the path, a short reason
("not a media file", "truncated: ...", "too short: 30 frames < 64", "no audio track") and
the stage; no raw PyAV exception escapes.

Example:
    >>> from nmodal.media import probe, sample_video, load_audio, load_image
    >>> s = sample_video("clip.mp4", num_frames=16, seed=0)
    >>> wave = load_audio("clip.mp4", sample_rate=16000, max_seconds=30.0)
"""

from nmodal.media.audio import load_audio
from nmodal.media.image import load_image
from nmodal.media.video import (
    MediaInfo,
    VideoSample,
    held_out_index,
    probe,
    sample_indices,
    sample_video,
)

__all__ = [
    "MediaInfo",
    "VideoSample",
    "held_out_index",
    "load_audio",
    "load_image",
    "probe",
    "sample_indices",
    "sample_video",
]

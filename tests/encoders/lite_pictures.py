"""Real decoded pictures for the EfficientNet-Lite0 backend tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nmodal.media import load_image, sample_video
from tests.helpers.media import write_image, write_video

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def real_pictures(tmp_path: Path) -> list[np.ndarray]:
    """Real decoded pictures: a JPEG photo and frames of an H.264 clip written with PyAV,
    plus up to 4 photos of the real exports when they are there."""
    out = [load_image(write_image(tmp_path / "p.jpg", width=320, height=240))]
    clip = sample_video(write_video(tmp_path / "v.mp4", num_frames=40), num_frames=3)
    out.extend(clip.frames)
    for photo in sorted(SHARED.glob("**/*.jpg"))[:4] if SHARED.is_dir() else []:
        out.append(load_image(photo, max_side=1024))
    return out

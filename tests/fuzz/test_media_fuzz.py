"""Malformed media through probe / sample_video / load_audio / load_image: only MediaError.

Seeded and bounded: mutants of real small files (flipped bytes, truncations, lying ``stts``
frame counts up to 2**31, garbage); every call either returns or raises ``MediaError``
naming the file, within a time budget, and a 2**31-frame mp4 costs little memory.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nmodal.errors import MediaError
from nmodal.media import load_audio, load_image, probe, sample_video
from tests.helpers.media import write_image, write_video


def _lying_frame_count(data: bytes, count: int) -> bytes:
    b = bytearray(data)
    i = b.index(b"stts")
    struct.pack_into(">I", b, i + 12, count)  # the first entry's sample count
    return bytes(b)


def _mutants(seed: int, video: bytes, image: bytes) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[str, bytes]] = []
    for count in (0, 1, 63, 1 << 16, 1 << 28, (1 << 31) - 1, 1 << 31, (1 << 32) - 1):
        out.append((f"stts-{count}.mp4", _lying_frame_count(video, count)))
    for k in range(24):
        b = bytearray(video)
        for pos in rng.integers(0, len(b), size=int(rng.integers(1, 40))):
            b[pos] = int(rng.integers(0, 256))
        out.append((f"flip-{k}.mp4", bytes(b)))
    for k, cut in enumerate(rng.integers(1, len(video), size=8)):
        out.append((f"cut-{k}.mp4", video[:cut]))
    for k in range(8):
        b = bytearray(image)
        for pos in rng.integers(8, len(b), size=int(rng.integers(1, 20))):
            b[pos] = int(rng.integers(0, 256))
        out.append((f"img-{k}.png", bytes(b)))
    out.append(("garbage.mp4", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()))
    out.append(("ftyp-only.mp4", video[:32]))
    return out


def test_malformed_media_raise_only_media_errors(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", num_frames=70, audio=True).read_bytes()
    image = write_image(tmp_path / "i.png", index=3).read_bytes()
    outcomes = {"ok": 0, "error": 0}
    for name, data in _mutants(14, video, image):
        path = tmp_path / name
        path.write_bytes(data)
        start = time.monotonic()
        calls = [load_image] if name.endswith(".png") else [probe, sample_video, load_audio]
        for call in calls:
            try:
                call(path)
                outcomes["ok"] += 1
            except MediaError as exc:
                assert exc.path == str(path) and exc.reason, name
                outcomes["error"] += 1
        assert time.monotonic() - start < 30, f"{name}: took too long"
    assert outcomes["error"] > 10 and outcomes["ok"] > 5, outcomes


CRAFTED_2_31 = """
import resource, sys, time
from pathlib import Path
from nmodal.media import probe, sample_video
path = Path(sys.argv[1])
start = time.monotonic()
info = probe(path)
s = sample_video(path, num_frames=16)
print(info.num_frames, s.info.num_frames, round(time.monotonic() - start, 2),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_a_2_31_frame_mp4_costs_little(tmp_path: Path) -> None:
    """The issue's crafted file: an ``stts`` claiming 2**31 frames in a 6 KB mp4 asked for
    16 GiB; now probing recounts what the file holds. Run in a fresh process to read its
    peak memory."""
    video = write_video(tmp_path / "v.mp4", num_frames=70).read_bytes()
    path = tmp_path / "crafted.mp4"
    path.write_bytes(_lying_frame_count(video, 1 << 31))
    proc = subprocess.run(
        [sys.executable, "-c", CRAFTED_2_31, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    claimed, sampled, _seconds, peak_mb = proc.stdout.split()
    assert int(claimed) == 70 and int(sampled) == 70
    assert int(peak_mb) < 2048, f"peak memory {peak_mb} MB"

"""Real assets for the demo corpus: emoji glyphs, spoken text, and the clip writer.

Glyphs come from Debian's ``fonts-noto-color-emoji`` (a CBDT bitmap font that Pillow draws
at size 109 with ``embedded_color=True``); speech from ``espeak-ng``. When either is missing
the corpus falls back to procedural stand-ins (a coloured shape per concept; a tone melody
per concept and language) and says so: :func:`available_assets` reports what was found.

Example:
    >>> assets = available_assets()  # doctest: +SKIP
    >>> glyph = render_glyph(concept_table()[19], assets.font)  # the owl, RGBA  # doctest: +SKIP
    >>> audio = speak("Смотрите: сова", "ru", assets.espeak)   # float32 mono, 16 kHz-ready  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nmodal.atomic import writing_file
from nmodal.demo.concepts import VOICES, Concept, emoji_key
from nmodal.errors import MediaError

FONT_ENV = "NMODAL_EMOJI_FONT"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
)
FONT_SIZE = 109  # the one bitmap strike of Noto Color Emoji
AUDIO_RATE = 22050  # espeak-ng's native rate; the clip's AAC track keeps it


@dataclass(frozen=True)
class Assets:
    """Where the real assets are; ``None`` means the procedural fallback is used."""

    font: str | None
    espeak: str | None

    @property
    def kind(self) -> str:
        if self.font and self.espeak:
            return "real"
        return "mixed" if self.font or self.espeak else "procedural"

    def warnings(self) -> list[str]:
        out = []
        if not self.font:
            out.append(
                "emoji font not found (install fonts-noto-color-emoji or set "
                f"{FONT_ENV}); images and videos use procedural shapes instead of emoji glyphs"
            )
        if not self.espeak:
            out.append(
                "espeak-ng not found (install espeak-ng); audio tracks are tone melodies "
                "instead of speech"
            )
        return out


def available_assets(use_real: bool = True) -> Assets:
    """Find the emoji font and espeak-ng (``use_real=False`` forces the fallback)."""
    if not use_real:
        return Assets(None, None)
    font = os.environ.get(FONT_ENV)
    if not (font and Path(font).is_file()):
        font = next((p for p in FONT_CANDIDATES if Path(p).is_file()), None)
    espeak = shutil.which("espeak-ng")
    return Assets(font, espeak)


def _digest(*parts: object) -> np.random.Generator:
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def render_glyph(concept: Concept, font_path: str | None) -> Image.Image:
    """The concept's emoji as a tight RGBA image (~128 px), or a procedural shape."""
    if font_path is None:
        return procedural_glyph(concept)
    font = ImageFont.truetype(font_path, FONT_SIZE)
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), emoji_key(concept.emoji), font=font, embedded_color=True)
    box = canvas.getbbox()
    if box is None:
        raise MediaError(font_path, f"font draws nothing for emoji {concept.emoji!r}", "render")
    return canvas.crop(box)


def procedural_glyph(concept: Concept, size: int = 128) -> Image.Image:
    """A stand-in glyph: a polygon (3-8 sides) with an inner mark, colours from the concept."""
    rng = _digest("glyph", concept.index)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    sides = 3 + concept.index % 6
    angle = np.linspace(0, 2 * np.pi, sides, endpoint=False) + rng.uniform(0, np.pi)
    r = size * 0.46
    pts = np.stack([size / 2 + r * np.cos(angle), size / 2 + r * np.sin(angle)], axis=1)
    fill = tuple(int(v) for v in rng.integers(30, 230, 3))
    draw.polygon([tuple(p) for p in pts.tolist()], fill=(*fill, 255), outline=(0, 0, 0, 255))
    inner = tuple(int(v) for v in rng.integers(30, 230, 3))
    mark = (concept.index // 6) % 4
    c, q = size / 2, size * 0.18
    if mark == 0:
        draw.ellipse((c - q, c - q, c + q, c + q), fill=(*inner, 255))
    elif mark == 1:
        draw.rectangle((c - q, c - q, c + q, c + q), fill=(*inner, 255))
    elif mark == 2:
        draw.line((c - 2 * q, c, c + 2 * q, c), fill=(*inner, 255), width=int(q))
    else:
        draw.line((c, c - 2 * q, c, c + 2 * q), fill=(*inner, 255), width=int(q))
    return img


def speak(text: str, lang: str, espeak: str | None, speed: int = 190) -> np.ndarray:
    """``text`` read aloud by espeak-ng in ``lang``: float32 mono at :data:`AUDIO_RATE`."""
    if espeak is None:
        raise MediaError("espeak-ng", "not installed", "speak")
    with tempfile.TemporaryDirectory(prefix="nmodal-speak-") as tmp:
        wav_path = Path(tmp) / "speech.wav"
        cmd = [espeak, "-v", VOICES[lang], "-s", str(speed), "-w", str(wav_path), text]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0 or not wav_path.is_file():
            raise MediaError("espeak-ng", f"failed for {lang!r}: {proc.stderr.strip()}", "speak")
        with wave.open(str(wav_path)) as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    if width != 2:
        raise MediaError(str(wav_path), f"unexpected sample width {width}", "speak")
    samples = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).mean(axis=1) / 32768.0
    if rate != AUDIO_RATE:  # linear resampling; espeak-ng writes 22050 Hz already
        t_new = np.arange(round(len(samples) * AUDIO_RATE / rate)) / AUDIO_RATE
        samples = np.interp(t_new, np.arange(len(samples)) / rate, samples)
    return samples.astype(np.float32)


def tone_melody(concept: Concept, lang: str, seconds: float) -> np.ndarray:
    """Fallback audio: four notes fixed by the concept, in a register fixed by the language."""
    rng = _digest("tones", concept.index)
    base = 180.0 * 2 ** (list(VOICES).index(lang) / 7)
    notes = base * 2 ** (rng.integers(0, 12, 4) / 12)
    n = round(seconds * AUDIO_RATE)
    t = np.arange(n) / AUDIO_RATE
    which = np.minimum((t / seconds * 4).astype(int), 3)
    envelope = np.sin(np.pi * ((t / seconds * 4) % 1.0)) ** 2
    return (0.4 * envelope * np.sin(2 * np.pi * notes[which] * t)).astype(np.float32)


# x264's AVX-512 kernels gave a different stream from the same frames on one run in two
# (AMD Zen 5, single-threaded); its AVX2 kernels are deterministic and, at these sizes, as
# fast. The option names x86 CPU features, so it is only passed on x86.
X264_OPTIONS = {"preset": "veryfast"} | (
    {"x264-params": "asm=AVX2"} if platform.machine().lower() in ("x86_64", "amd64") else {}
)


def write_clip(
    path: str | Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None,
    audio_rate: int = AUDIO_RATE,
    crf: int = 23,
) -> Path:
    """Write ``frames`` ((T, H, W, 3) uint8) as H.264 and ``audio`` (float32 mono) as AAC.

    The file appears atomically (written under a temporary name, then renamed), so a file
    at ``path`` is always complete. Single-threaded x264 without its AVX-512 kernels
    (:data:`X264_OPTIONS`) keeps the output deterministic.
    """
    path = Path(path)
    with (
        writing_file(path, suffix=path.suffix) as tmp,
        av.open(str(tmp), "w", format="mp4") as container,
    ):
        video = container.add_stream("libx264", rate=fps, options=X264_OPTIONS | {"crf": str(crf)})
        video.width, video.height = int(frames.shape[2]), int(frames.shape[1])
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = 1
        sound = None
        if audio is not None:
            # the "fast" AAC coder is ~4x quicker than the default two-loop search
            sound = container.add_stream("aac", rate=audio_rate, options={"aac_coder": "fast"})
            sound.layout = "mono"
        for i in range(len(frames)):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None and audio is not None:
            block = 1024
            padded = np.zeros(-(-len(audio) // block) * block, np.float32)
            padded[: len(audio)] = audio
            for start in range(0, len(padded), block):
                chunk = av.AudioFrame.from_ndarray(
                    padded[None, start : start + block], format="fltp", layout="mono"
                )
                chunk.sample_rate = audio_rate
                chunk.pts = start
                chunk.time_base = Fraction(1, audio_rate)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path

"""Generate the demo corpus: emoji posts with text, a real H.264 video and a spoken AAC track.

Each post is built around one emoji concept (see :mod:`nmodal.demo.concepts`):

- **text**: a sentence naming the emoji and the video's background colour, in one of 14
  languages (3 templates each, >= 5 words);
- **video**: 72-120 frames at 24 fps, 160x160, animating the emoji glyph (eased zoom,
  rotation and pan plus a wobble, random per post) over a background of the named colour;
  the paper's image is the frame the video encoder does not see, derived at extraction;
- **audio**: the post's text read by ``espeak-ng`` in the text's language, as the clip's
  AAC track (the clip lasts as long as the speech, at least 3 s, at most 5 s);
- **account**: the concept's themed channel (8 of them), **stance**: a binary split of the
  accounts.

The link the model can learn, visible to frozen encoders: the concept (text name <->
glyph <-> spoken name), the colour (colour word <-> background <-> spoken colour word), and
the language (text <-> voice). Test posts in the demo protocol never share a concept with
training posts, so a model must generalise across concepts rather than memorise them.

Everything is deterministic from ``seed``; files are written atomically and an existing,
valid clip is kept, so an interrupted generation resumes where it stopped.

Example:
    >>> info = generate_corpus("demo-out/corpus", num_posts=40, seed=0)  # doctest: +SKIP
    >>> info.manifest                                                    # doctest: +SKIP
    PosixPath('demo-out/corpus/manifest.jsonl')
"""

from __future__ import annotations

import json
import math
import multiprocessing
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from nmodal.atomic import write_text
from nmodal.demo.assets import (
    AUDIO_RATE,
    Assets,
    available_assets,
    render_glyph,
    speak,
    tone_melody,
    write_clip,
)
from nmodal.demo.concepts import (
    COLOUR_RGB,
    COLOURS,
    LANGUAGES,
    TEMPLATES,
    concept_table,
    post_text,
)
from nmodal.errors import InputError

FPS = 24
MIN_FRAMES = 72
MAX_FRAMES = 120
SIZE = 160
MANIFEST = "manifest.jsonl"
INFO = "corpus.json"
MEDIA_DIR = "media"
FORMAT = "nmodal-demo-corpus"
START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class PostSpec:
    """Everything that determines one demo post (its files follow from it and the assets)."""

    post_id: str
    index: int
    concept_id: int
    emoji: str
    account: str
    stance: str
    language: str
    template: int
    colour: str
    text: str
    date: str
    seed: int

    @property
    def video_path(self) -> str:
        return f"{MEDIA_DIR}/{self.post_id}.mp4"

    def manifest_row(self) -> dict[str, Any]:
        """The JSONL manifest row ``nmodal ingest manifest`` reads."""
        return {
            "post_id": self.post_id,
            "account": self.account,
            "date": self.date,
            "text": self.text,
            "video_path": self.video_path,
            "stance": self.stance,
            "concept": self.emoji,
            "concept_id": self.concept_id,
            "language": self.language,
            "colour": self.colour,
        }


@dataclass(frozen=True)
class CorpusInfo:
    """What :func:`generate_corpus` produced."""

    root: Path
    manifest: Path
    num_posts: int
    written: int
    kept: int
    assets: Assets


def plan_corpus(num_posts: int, seed: int = 0) -> list[PostSpec]:
    """The posts of a corpus of ``num_posts``, without touching the disk.

    Concepts, languages, templates and colours are drawn independently and uniformly;
    dates spread over 2024 in post order (a channel's posts are chronological).

    Example:
        >>> [p.post_id for p in plan_corpus(2)]
        ['demo-00000', 'demo-00001']
    """
    if num_posts < 1:
        raise InputError(f"--posts must be >= 1, got {num_posts}")
    table = concept_table()
    rng = np.random.default_rng([seed, 0x0DE30])
    concept_ids = rng.integers(0, len(table), num_posts)
    languages = rng.integers(0, len(LANGUAGES), num_posts)
    templates = rng.integers(0, len(TEMPLATES["en"]), num_posts)
    colours = rng.integers(0, len(COLOURS), num_posts)
    seconds = np.sort(rng.integers(0, 366 * 86400, num_posts))
    post_seeds = rng.integers(0, 2**62, num_posts)
    specs = []
    for i in range(num_posts):
        concept = table[int(concept_ids[i])]
        lang, colour = LANGUAGES[int(languages[i])], COLOURS[int(colours[i])]
        specs.append(
            PostSpec(
                post_id=f"demo-{i:05d}",
                index=i,
                concept_id=concept.index,
                emoji=concept.emoji,
                account=concept.account,
                stance=concept.stance,
                language=lang,
                template=int(templates[i]),
                colour=colour,
                text=post_text(concept.emoji, lang, colour, int(templates[i])),
                date=(START_DATE + timedelta(seconds=int(seconds[i]))).isoformat(),
                seed=int(post_seeds[i]),
            )
        )
    return specs


def animate(
    glyph: Image.Image,
    background: tuple[int, int, int],
    num_frames: int,
    rng: np.random.Generator,
    size: int = SIZE,
) -> np.ndarray:
    """Frames ``(num_frames, size, size, 3)`` of ``glyph`` moving over ``background``.

    Per clip: start/end scale (45-85% of the frame), start/end rotation (+-35 deg) and
    centre, eased between them, plus a sinusoidal wobble; the background is the colour
    with a small random tint and a vertical light gradient.
    """
    scales = rng.uniform(0.45, 0.85, 2) * size
    angles = rng.uniform(-35.0, 35.0, 2)
    centres = rng.uniform(0.35, 0.65, (2, 2)) * size
    wobble_amp = rng.uniform(0.0, 0.06) * size
    wobble_freq = rng.uniform(0.5, 2.0)
    phase = rng.uniform(0, 2 * np.pi)
    tint = rng.integers(-14, 15, 3)
    base = np.clip(np.asarray(background) + tint, 0, 255).astype(np.float32)
    ramp = np.linspace(1.06, 0.92, size, dtype=np.float32)[:, None, None]
    bg_pixels = np.clip(base[None, None, :] * ramp, 0, 255).astype(np.uint8).repeat(size, 1)
    bg = Image.fromarray(bg_pixels).convert("RGBA")

    u = np.linspace(0.0, 1.0, num_frames)
    eased = 0.5 - 0.5 * np.cos(np.pi * u)
    scale = scales[0] + (scales[1] - scales[0]) * eased
    angle = angles[0] + (angles[1] - angles[0]) * eased
    wobble = wobble_amp * np.sin(2 * np.pi * wobble_freq * u + phase)
    cx = centres[0, 0] + (centres[1, 0] - centres[0, 0]) * eased + wobble
    cy = centres[0, 1] + (centres[1, 1] - centres[0, 1]) * eased + wobble * 0.5

    # one affine warp per frame: output pixel -> glyph pixel (inverse of scale, rotate, move)
    k = scale / glyph.height
    cos, sin = np.cos(np.radians(angle)) / k, np.sin(np.radians(angle)) / k
    gx, gy = glyph.width / 2, glyph.height / 2
    coeffs = np.stack(
        [cos, -sin, gx - cos * cx + sin * cy, sin, cos, gy - sin * cx - cos * cy], axis=1
    )
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        layer = glyph.transform(
            (size, size),
            Image.Transform.AFFINE,
            tuple(coeffs[t].tolist()),
            resample=Image.Resampling.BILINEAR,
        )
        frames[t] = np.asarray(Image.alpha_composite(bg, layer).convert("RGB"))
    return frames


def build_post(spec: PostSpec, assets: Assets) -> tuple[np.ndarray, np.ndarray]:
    """The frames and audio of one post (deterministic from ``spec`` and ``assets``)."""
    concept = concept_table()[spec.concept_id]
    rng = np.random.default_rng(spec.seed)
    if assets.espeak:
        audio = speak(spec.text, spec.language, assets.espeak)
        num_frames = int(
            np.clip(math.ceil(len(audio) / AUDIO_RATE * FPS) + FPS // 4, MIN_FRAMES, MAX_FRAMES)
        )
    else:
        num_frames = MIN_FRAMES
        audio = tone_melody(concept, spec.language, num_frames / FPS)
    audio = _fit(audio, round(num_frames / FPS * AUDIO_RATE))
    glyph = render_glyph(concept, assets.font)
    frames = animate(glyph, COLOUR_RGB[spec.colour], num_frames, rng)
    return frames, audio


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    out[: min(n, len(audio))] = audio[:n]
    return out


def clip_is_valid(path: str | Path, min_frames: int = MIN_FRAMES) -> bool:
    """True when ``path`` opens as an mp4 with >= ``min_frames`` video frames and an audio track."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or not container.streams.audio:
                return False
            return int(container.streams.video[0].frames) >= min_frames
    except (av.FFmpegError, OSError, ValueError):
        return False


def _write_post(job: tuple[PostSpec, Assets, str]) -> bool:
    """Worker: write one post's clip unless a valid one exists; True when written."""
    spec, assets, root = job
    path = Path(root) / spec.video_path
    if path.exists() and clip_is_valid(path):
        return False
    frames, audio = build_post(spec, assets)
    write_clip(path, frames, FPS, audio, AUDIO_RATE)
    return True


def _run_jobs(jobs: Sequence[tuple[PostSpec, Assets, str]], workers: int) -> Iterator[bool]:
    if workers <= 1 or len(jobs) < 2:
        yield from map(_write_post, jobs)
        return
    # spawn: a clean interpreter per worker, whatever threads the parent runs
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        yield from pool.map(_write_post, jobs, chunksize=4)


def generate_corpus(
    out_dir: str | Path,
    num_posts: int = 600,
    seed: int = 0,
    workers: int = 2,
    use_real_assets: bool = True,
    progress: bool = True,
) -> CorpusInfo:
    """Write the corpus (clips under ``media/``, ``manifest.jsonl``, ``corpus.json``).

    Resumable: clips already present and valid are kept. A directory holding a corpus
    made with other settings (size, seed, assets) is refused rather than mixed.
    """
    from tqdm.auto import tqdm

    root = Path(out_dir)
    assets = available_assets(use_real_assets)
    if assets.warnings():
        warnings.warn("demo corpus: " + "; ".join(assets.warnings()), stacklevel=2)
    settings = {
        "format": FORMAT,
        "version": 1,
        "num_posts": num_posts,
        "seed": seed,
        "assets": assets.kind,
        "fps": FPS,
        "size": SIZE,
    }
    info_path = root / INFO
    if info_path.is_file():
        old = json.loads(info_path.read_text())
        old_settings = {k: old.get(k) for k in settings}
        if old_settings != settings:
            raise InputError(
                f"{root}: holds a demo corpus made with other settings {old_settings}; "
                f"use another directory or remove it"
            )
    specs = plan_corpus(num_posts, seed)
    (root / MEDIA_DIR).mkdir(parents=True, exist_ok=True)
    write_text(info_path, json.dumps({**settings, "complete": False}, indent=2))

    jobs = [(spec, assets, str(root)) for spec in specs]
    written = 0
    bar = tqdm(total=len(jobs), desc="demo corpus", unit="post", disable=not progress)
    for was_written in _run_jobs(jobs, workers):
        written += int(was_written)
        bar.update(1)
    bar.close()

    manifest = root / MANIFEST
    write_text(
        manifest, "".join(json.dumps(s.manifest_row(), ensure_ascii=False) + "\n" for s in specs)
    )
    accounts = sorted({s.account for s in specs})
    meta = {
        **settings,
        "complete": True,
        "asset_paths": asdict(assets),
        "warnings": assets.warnings(),
        "num_concepts": len({s.concept_id for s in specs}),
        "accounts": accounts,
    }
    write_text(info_path, json.dumps(meta, indent=2, ensure_ascii=False))
    return CorpusInfo(root, manifest, num_posts, written, num_posts - written, assets)


def concept_groups(manifest_rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """Per-post group ids for the protocol: posts about one concept share a group."""
    return np.asarray([int(r["concept_id"]) for r in manifest_rows])


def read_demo_corpus(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a demo corpus's ``manifest.jsonl`` (one post and its concept per line)."""
    path = Path(path)
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable demo manifest ({exc})") from exc

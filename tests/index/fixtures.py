"""A tiny collection for index and serve tests: store, model, posts table, media files.

Also an independent brute-force implementation of the post scores, and a deterministic fake
encoder source so queries can be encoded without model weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from nmodal.features import make_synthetic, write_featureset
from nmodal.model import HeadConfig, ModelConfig, NModalModel

MODALITIES = ("text", "image", "video")
DIMS = {"text": 24, "image": 32, "video": 40}
ACCOUNTS = ("alpha", "bravo", "charlie", "delta")


@dataclass
class Collection:
    root: Path
    store: Path
    model: Path
    dataset: Path
    num_posts: int


def make_collection(
    root: Path,
    num_posts: int = 240,
    seed: int = 0,
    missing_rate: float = 0.25,
    id_offset: int = 0,
    with_videos: bool = False,
    with_audio: bool = False,
) -> Collection:
    """Write a store, an untrained model, and a dataset dir (posts.parquet + a few images,
    with ``with_videos`` a few real MP4 clips, and with ``with_audio`` a few real M4A
    recordings, on posts without image or video files: every 20th from post 7 on, post 7
    silent, the others tones)."""
    root.mkdir(parents=True, exist_ok=True)
    fs = make_synthetic(
        num_posts,
        modalities=MODALITIES,
        dim=[DIMS[m] for m in MODALITIES],
        missing_rate=missing_rate,
        seed=seed,
    )
    fs.post_ids = np.array([f"post-{i + id_offset:05d}" for i in range(num_posts)])
    # a few text-only posts: a text query can never find them
    text_only = np.arange(num_posts) % 37 == 5
    for m in ("image", "video"):
        fs.present[m][text_only] = False
        fs.features[m][text_only] = 0
    store = write_featureset(root / "store", fs)
    model_dir = root / "model"
    if not model_dir.exists():
        torch_seed(0)
        cfg = ModelConfig(
            modalities=list(MODALITIES),
            input_dims=dict(DIMS),
            head=HeadConfig(projection_dim=16),
            encoders={m: dict(fs.encoders[m]) for m in MODALITIES},
        )
        NModalModel(cfg).save(model_dir)
    dataset = root / "dataset"
    (dataset / "media").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    ids = fs.post_ids
    image_paths: list[str | None] = []
    video_paths: list[str | None] = []
    audio_paths: list[str | None] = []
    for i, pid in enumerate(ids):
        if with_audio and i % 20 == 7:
            from tests.helpers.media import write_audio

            rel = f"media/{pid}.m4a"
            amplitude = 0.0 if i == 7 else 0.5
            write_audio(dataset / rel, seconds=1.0, freq=220.0 + 20 * i, amplitude=amplitude)
            audio_paths.append(rel)
        else:
            audio_paths.append(None)
        if with_videos and fs.present["video"][i] and i % 25 == 3:
            from tests.helpers.media import write_video

            rel = f"media/{pid}.mp4"
            write_video(dataset / rel, num_frames=30)
            video_paths.append(rel)
        else:
            video_paths.append(None)
        if fs.present["image"][i] and i % 10 == 0:
            rel = f"media/{pid}.png"
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            Image.new("RGB", (40, 30), colour).save(dataset / rel)
            image_paths.append(rel)
        else:
            image_paths.append(None)
    posts = pd.DataFrame(
        {
            "post_id": ids,
            "account": [ACCOUNTS[(i + id_offset) % len(ACCOUNTS)] for i in range(num_posts)],
            "date": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(np.arange(num_posts) + id_offset, unit="D"),
            "text": [
                f"post number {i + id_offset} about topic {(i + id_offset) % 7}"
                for i in range(num_posts)
            ],
            "video_path": video_paths,
            "image_path": image_paths,
            "audio_path": audio_paths,
            "status": ["kept"] * num_posts,
            "stance": [("pro", "contra")[i % 2] for i in range(num_posts)],
            "reason": [None] * num_posts,
        }
    )
    posts.to_parquet(dataset / "posts.parquet", index=False)
    return Collection(root, store, model_dir, dataset, num_posts)


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def brute_force_scores(
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    query_modalities: Sequence[str],
    vectors: np.ndarray,
    candidates: Sequence[str],
    how: str = "sum",
    include_same: bool = False,
) -> np.ndarray:
    """Per-post scores written as plain loops over pairs: the reference for the index."""
    n = len(next(iter(present.values())))
    total = np.zeros(n)
    count = np.zeros(n)
    best = np.full(n, -np.inf)
    for j, q in enumerate(query_modalities):
        for m in candidates:
            if m == q and not include_same:
                continue
            sims = emb[m].astype(np.float64) @ vectors[j].astype(np.float64)
            total += np.where(present[m], sims, 0.0)
            count += present[m]
            best = np.where(present[m], np.maximum(best, sims), best)
    if how == "max":
        return best
    if how == "mean":
        total = total / np.maximum(count, 1)
    return np.where(count > 0, total, -np.inf)


def reference_embeddings(
    col: Collection,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Post ids, embeddings (every row, present or not) and presence, straight from store + model."""
    from nmodal.features import read_featureset

    fs = read_featureset(col.store)
    model = NModalModel.load(col.model)
    emb = model.embed({m: fs.features[m] for m in MODALITIES})
    return fs.post_ids, emb, {m: fs.present[m] for m in MODALITIES}


class FakeEncoder:
    """Deterministic stand-in for a frozen encoder: hashes text, summarises pixels and samples."""

    def __init__(self, modality: str, dim: int) -> None:
        self.modality = modality
        self.dim = dim
        self.calls = 0

    def _vector(self, key: bytes) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        self.calls += 1
        rows = []
        for item in batch:
            if isinstance(item, str):
                rows.append(self._vector(item.encode()))
            else:
                arr = np.asarray(item)
                stats = np.round(
                    arr.reshape(-1, arr.shape[-1]).mean(axis=0) if arr.ndim > 1 else [arr.mean()], 2
                )
                rows.append(self._vector(np.asarray(stats, np.float64).tobytes()))
        return np.stack(rows)


def fake_encoder_source(modality: str, provenance: Mapping[str, Any]) -> FakeEncoder:
    return FakeEncoder(modality, DIMS.get(modality, int(provenance.get("dim", 8))))

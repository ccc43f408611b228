"""Synthetic feature tuples with a learnable cross-modal link (tests, benchmarks, CI).

Every post has a latent concept vector ``z``; each modality sees it through its own fixed
random non-linear map into ``dim`` dimensions plus modality-specific noise. A model can
only align the modalities by learning to undo those maps, as with real frozen encoders.

Example:
    >>> fs = make_synthetic(1000, modalities=("text", "image", "video"), dim=64, seed=0)
    >>> fs.features["video"].shape
    (1000, 64)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nmodal.features.featureset import FeatureSet
from nmodal.features.store import StoreWriter


def make_synthetic(
    num_posts: int,
    modalities: Sequence[str] = ("text", "image", "video"),
    dim: int | Sequence[int] = 768,
    latent_dim: int = 32,
    noise: float = 0.5,
    missing_rate: float = 0.0,
    seed: int = 0,
    dtype: type = np.float32,
) -> FeatureSet:
    """Build a :class:`FeatureSet` of ``num_posts`` posts.

    ``missing_rate`` drops each artifact with that probability (every post keeps at least
    two modalities), for testing training with missing modalities.
    """
    rng = np.random.default_rng(seed)
    dims = [dim] * len(modalities) if isinstance(dim, int) else list(dim)
    z = rng.standard_normal((num_posts, latent_dim)).astype(np.float32)
    features: dict[str, np.ndarray] = {}
    for m, d in zip(modalities, dims, strict=True):
        # fixed per-modality map, seeded by the modality name so it does not depend on order
        mrng = np.random.default_rng([seed, *m.encode()])
        a = mrng.standard_normal((latent_dim, 2 * latent_dim)).astype(np.float32)
        b = mrng.standard_normal((2 * latent_dim, d)).astype(np.float32)
        h = np.tanh(z @ a / np.sqrt(latent_dim))
        x = h @ b / np.sqrt(2 * latent_dim)
        x += noise * rng.standard_normal((num_posts, d)).astype(np.float32)
        features[m] = x.astype(dtype)
    present = {m: np.ones(num_posts, dtype=bool) for m in modalities}
    if missing_rate > 0:
        drop = rng.random((num_posts, len(modalities))) < missing_rate
        # keep at least two modalities per post
        for i in np.flatnonzero(drop.sum(axis=1) > len(modalities) - 2):
            keep = rng.choice(len(modalities), size=2, replace=False)
            drop[i] = True
            drop[i, keep] = False
        for j, m in enumerate(modalities):
            present[m] = ~drop[:, j]
            features[m][drop[:, j]] = 0
    ids = np.array([f"syn-{i:07d}" for i in range(num_posts)])
    encoders = {
        m: {"name": "synthetic", "version": "1", "dim": d}
        for m, d in zip(modalities, dims, strict=True)
    }
    return FeatureSet(post_ids=ids, features=features, present=present, encoders=encoders)


def _fast_shard(
    rng: np.random.Generator,
    maps: dict[str, tuple[np.ndarray, np.ndarray]],
    num_posts: int,
    latent_dim: int,
    noise: float,
    dtype: str,
) -> dict[str, np.ndarray]:
    """One shard of :func:`write_synthetic_store`: the model of :func:`make_synthetic`
    (latent concept through fixed per-modality maps, plus noise) drawn in float32."""
    z = rng.standard_normal((num_posts, latent_dim), dtype=np.float32)
    out: dict[str, np.ndarray] = {}
    for m, (a, b) in maps.items():
        x = np.tanh(z @ a) @ b
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(noise)
        out[m] = x.astype(dtype)
    return out


def write_synthetic_store(
    path: str | Path,
    num_posts: int,
    modalities: Sequence[str] = ("text", "image", "video"),
    dim: int | Sequence[int] = 768,
    seed: int = 0,
    dtype: str = "float16",
    shard_size: int = 1024,
    latent_dim: int = 32,
    noise: float = 0.5,
) -> Path:
    """Write a synthetic store of ``num_posts`` posts shard by shard (memory: one shard),
    for benchmarks of collections larger than memory: :func:`make_synthetic`'s model (one
    map per modality for the whole store, a fresh latent and noise per shard), drawn
    directly in float32 so that a million posts take minutes, not an hour; ids are
    numbered across the store. Every artifact is present."""

    dims = [dim] * len(modalities) if isinstance(dim, int) else list(dim)
    ids = [f"syn-{i:08d}" for i in range(num_posts)]
    encoders = {
        m: {"dim": d, "encoder": {"name": "synthetic", "version": "1", "dim": d}}
        for m, d in zip(modalities, dims, strict=True)
    }
    maps = {}
    for m, d in zip(modalities, dims, strict=True):
        mrng = np.random.default_rng([seed, *m.encode()])
        a = mrng.standard_normal((latent_dim, 2 * latent_dim), dtype=np.float32)
        b = mrng.standard_normal((2 * latent_dim, d), dtype=np.float32)
        maps[m] = (a / np.float32(np.sqrt(latent_dim)), b / np.float32(np.sqrt(2 * latent_dim)))
    writer = StoreWriter(path, ids, encoders, shard_size=shard_size, dtype=dtype, overwrite=True)
    for k in writer.pending_shards():
        lo, hi = writer.shard_bounds(k)
        rng = np.random.default_rng([seed, k])
        features = _fast_shard(rng, maps, hi - lo, latent_dim, noise, dtype)
        present = {m: np.ones(hi - lo, dtype=bool) for m in modalities}
        writer.write_shard(k, features, present)
    writer.finish()
    return Path(path)

"""Input standardisation of the projection heads, fixed from the training posts.

Before training, every head with ``HeadConfig.standardize`` gets the mean of its
modality's training features and the scale ``1 / sqrt(mean variance per dimension)``
(:meth:`~nmodal.model.heads.ProjectionHead.set_input_statistics`), measured on the posts
the trainer trains on (``missing="drop"``: the complete ones; ``"mask"``: those with at
least two modalities, each modality on the posts that have it), on a seeded sample of at
most ``STATS_POSTS`` of them (read from disk for a store view).

Example:
    >>> fs = make_synthetic(200, dim=16)
    >>> from nmodal.model import ModelConfig
    >>> model = NModalModel(ModelConfig(fs.modalities, fs.dims()))
    >>> set_input_statistics(model, fs, fs.modalities, missing="drop", seed=0)
    >>> float(model.heads["text"].input_scale) != 1.0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from nmodal.features.featureset import FeatureSet
from nmodal.features.reader import StoreView
from nmodal.model import NModalModel
from nmodal.model.heads import ProjectionHead

STATS_POSTS = 20_000  # posts sampled per modality for the mean and the scale
CHUNK_ROWS = 2_048  # rows read at a time (a 2560-d modality: 42 MB in float64)


def set_input_statistics(
    model: NModalModel,
    train: FeatureSet | StoreView,
    modalities: Sequence[str],
    missing: str,
    seed: int,
) -> None:
    """Fix every standardising head's input mean and scale from ``train``."""
    present = np.stack([train.present[m] for m in modalities])
    trained = present.all(0) if missing == "drop" else present.sum(0) >= 2
    rng = np.random.default_rng(seed)
    for j, m in enumerate(modalities):
        head = cast(ProjectionHead, model.heads[m])
        if not head.standardize:
            continue
        rows = np.flatnonzero(trained & present[j])
        if len(rows) > STATS_POSTS:
            rows = np.sort(rng.choice(rows, STATS_POSTS, replace=False))
        head.set_input_moments(*_moments(train, rows, m))


def _moments(
    train: FeatureSet | StoreView, rows: np.ndarray, modality: str
) -> tuple[np.ndarray, float]:
    """Mean and mean variance per dimension of ``modality`` over ``rows``, reading
    ``CHUNK_ROWS`` rows at a time once (float64; each chunk's mean and squared deviations
    are combined exactly: a modality's sample is never held whole, nor read twice)."""
    if not len(rows):
        return np.zeros(train.dims()[modality]), 0.0
    counts, means, squares = [], [], 0.0
    for start in range(0, len(rows), CHUNK_ROWS):
        x = train.take(rows[start : start + CHUNK_ROWS], modalities=[modality])[modality]
        x = np.asarray(x, np.float64)
        counts.append(len(x))
        means.append(x.mean(axis=0))
        squares += float(((x - means[-1]) ** 2).sum())
    n = np.asarray(counts, np.float64)
    chunk_means = np.stack(means)
    mean = (n[:, None] * chunk_means).sum(axis=0) / n.sum()
    squares += float((n * ((chunk_means - mean) ** 2).sum(axis=1)).sum())
    return mean, squares / (n.sum() * len(mean))

"""Simulated missing modalities: drop artifacts at random (training posts only, in the
protocol), to measure how much retrieval suffers when training data is incomplete.

Each present artifact is dropped with probability ``rate``, independently, except that every
post keeps at least two modalities (a post with fewer has nothing to align): where the draw
would leave fewer than two, two of the post's present modalities are chosen at random and
kept. A dropped artifact becomes absent (``present`` False, its features zeroed), exactly as
a post that never had it. This is ``make_synthetic(..., missing_rate=...)``'s rule; with
three modalities and ``rate=0.3`` about 22% of the artifacts end up absent (the rescue
puts some back), and :func:`missing_fraction` reports the realised fraction.

Example:
    >>> fs = make_synthetic(1000, dim=8)
    >>> out = drop_artifacts(fs, 0.3, seed=0)
    >>> round(missing_fraction(out), 2)
    0.22
"""

from __future__ import annotations

import numpy as np

from nmodal.errors import InputError
from nmodal.features.featureset import FeatureSet


def drop_artifacts(fs: FeatureSet, rate: float, seed: int = 0) -> FeatureSet:
    """A copy of ``fs`` with each artifact dropped with probability ``rate`` (>= 2 kept)."""
    if not 0 <= rate < 1:
        raise InputError(f"missing rate must be in [0, 1), got {rate}")
    mods = fs.modalities
    present = np.stack([fs.present[m] for m in mods], axis=1)  # (P, M)
    if rate == 0 or len(mods) <= 2:
        return fs.subset(np.arange(fs.num_posts))
    rng = np.random.default_rng(seed)
    keep = present & (rng.random(present.shape) >= rate)
    short = (keep.sum(1) < 2) & (present.sum(1) >= 2)
    # for those posts: keep the two present modalities with the smallest random keys
    keys = np.where(present[short], rng.random((int(short.sum()), len(mods))), np.inf)
    two = np.argsort(keys, axis=1)[:, :2]
    rescued = np.zeros((int(short.sum()), len(mods)), dtype=bool)
    np.put_along_axis(rescued, two, True, axis=1)
    keep[short] = rescued
    features = {
        m: np.where(keep[:, j, None], fs.features[m], 0).astype(fs.features[m].dtype)
        for j, m in enumerate(mods)
    }
    return FeatureSet(
        post_ids=fs.post_ids.copy(),
        features=features,
        present={m: keep[:, j] for j, m in enumerate(mods)},
        encoders=dict(fs.encoders),
    )


def missing_fraction(fs: FeatureSet) -> float:
    """The fraction of (post, modality) artifacts that are absent."""
    return float(1 - np.mean([fs.present[m].mean() for m in fs.modalities]))

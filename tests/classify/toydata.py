"""Toy data for the classifier tests."""

from __future__ import annotations

import numpy as np


def blobs(n_per_class: int, num_classes: int, dim: int = 8, spread: float = 0.3, seed: int = 0):
    """Well-separated Gaussian blobs with string labels ``c0, c1, ...``."""
    rng = np.random.default_rng(seed)
    centers = 3.0 * rng.standard_normal((num_classes, dim))
    y_idx = np.repeat(np.arange(num_classes), n_per_class)
    X = centers[y_idx] + spread * rng.standard_normal((len(y_idx), dim))
    y = np.array([f"c{i}" for i in y_idx])
    perm = rng.permutation(len(y))
    return X[perm].astype(np.float32), y[perm]


def near_duplicate_posts(num_posts: int, artifacts: int = 3, dim: int = 16, seed: int = 0):
    """Posts whose artifacts are near-copies of one random vector, with random labels.

    Returns ``X (num_posts * artifacts, dim)``, ``y`` (the post's random label, repeated)
    and ``groups`` (the post id, repeated).
    """
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((num_posts, dim))
    labels = rng.permutation(np.arange(num_posts) % 2)
    post = np.repeat(np.arange(num_posts), artifacts)
    X = base[post] + 0.01 * rng.standard_normal((len(post), dim))
    return X.astype(np.float32), labels[post], np.array([f"p{i}" for i in post])


FAST_PARAMS = {
    "rf": {"n_estimators": 10},
    "mlp": {"hidden_sizes": (32,), "max_epochs": 60, "patience": 5},
}

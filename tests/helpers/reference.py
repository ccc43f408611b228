"""Slow, loop-based reference for the retrieval scoring rules beyond the paper.

Written from the formula (module doc of nmodal.retrieval), one scalar at a time in Python
floats. The loss references live with the loss tests (``tests/losses/reference.py``); the
masked-loss tests here reuse them.
"""

from __future__ import annotations

from tests.losses.reference import (  # noqa: F401  (re-exported for the scoring and masking tests)
    all_pairs,
    dot,
    mip,
    pair_clip_loop,
    siglip_loop,
    triplet_masked_loop,
    unit,
    volume,
)


def score_loop(query, candidate_vectors, scoring):
    """Score of one post for one query from the post's present candidate artifacts
    (none: 0 for sum and symile, -1 = -Vol(query alone) for gram)."""
    if not candidate_vectors:
        return -1.0 if scoring == "gram" else 0.0
    if scoring == "sum":
        return sum(dot(query, v) for v in candidate_vectors)
    if scoring == "symile":
        return mip(query, *candidate_vectors)
    return -volume([query, *candidate_vectors])

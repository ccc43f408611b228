"""Embedding a feature set's rows chunk by chunk, from memory or straight from disk.

:func:`embed_rows` reads ``chunk`` rows of one modality at a time (from a
:class:`~nmodal.features.FeatureSet` or a :class:`~nmodal.features.StoreView`, which reads
them from the store's shards), embeds them and keeps only the embeddings, so the features
of a collection never sit in memory at once. The default chunk equals
:meth:`nmodal.model.NModalModel.embed`'s batch size, so every batch the model sees is the
batch it would see embedding the whole matrix at once: the result is bit-identical to
``model.embed({m: features[m][rows]})[m]``.

Example:
    >>> fs = make_synthetic(10, dim=8)
    >>> class Twice:  # anything with embed({m: x}) -> {m: z}
    ...     def embed(self, feats): return {m: 2 * x for m, x in feats.items()}
    >>> embed_rows(Twice(), fs, "text", np.arange(3), chunk=2).shape
    (3, 8)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nmodal.features.featureset import FeatureSet
from nmodal.features.reader import StoreView

#: rows read and embedded at once: NModalModel.embed's batch size (same batches, same bits)
EMBED_CHUNK = 8192


def embed_rows(
    model: Any,
    data: FeatureSet | StoreView,
    modality: str,
    rows: np.ndarray,
    chunk: int = EMBED_CHUNK,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``(len(rows), p)`` float32 embeddings of ``modality`` for ``rows`` (positions in
    ``data``), read and embedded ``chunk`` rows at a time; written into the first
    ``len(rows)`` rows of ``out`` when given (returned: that part of ``out``)."""
    rows = np.asarray(rows, dtype=np.int64)
    if out is not None:
        out = out[: len(rows)]
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        z = model.embed(data.take(part, modalities=[modality]))[modality]
        if out is None:
            out = np.empty((len(rows), z.shape[1]), dtype=np.float32)
        out[start : start + len(part)] = z
    if out is None:  # no rows: ask the model for the width
        empty = data.take(rows, modalities=[modality])
        return np.asarray(model.embed(empty)[modality], dtype=np.float32)
    return out

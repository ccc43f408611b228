"""An index's post-aligned embedding files, written a chunk at a time.

``<m>.emb.npy`` holds one L2-normalised float32 row per post (zeros where the post lacks
modality ``m``). :func:`embed_into` streams a store's features through the model into an
:class:`EmbeddingFile`: ``batch_size`` present rows are read (from disk for a
:class:`~nmodal.features.StoreView`), embedded and written at their post positions, so the
embeddings of a collection are never all in memory; absent rows stay the file's zeros. The files are the bytes ``np.save`` writes for the same array; FAISS is then built
from a read-only memory map of them (:func:`open_embeddings`).

Example:
    >>> fs = make_synthetic(20, dim=8)
    >>> class Unit:  # anything with embed({m: x}) -> {m: z}
    ...     def embed(self, feats, batch_size=8192): return feats
    >>> out = EmbeddingFile(tmp / "text.emb.npy", fs.num_posts, 8)
    >>> embed_into(Unit(), fs, "text", out, batch_size=6)
    >>> out.close()
    >>> open_embeddings(tmp / "text.emb.npy").shape
    (20, 8)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.features import FeatureSet, StoreView

DTYPE = np.dtype("<f4")
COPY_ROWS = 65_536  # rows copied at once from an older index's file


class EmbeddingFile:
    """A ``(rows, dim)`` float32 ``.npy`` file created full of zeros (sparse) and written
    in blocks of rows with ``pwrite``: no memory map, so written pages are not held."""

    def __init__(self, path: str | Path, rows: int, dim: int) -> None:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header,
            {"descr": np.lib.format.dtype_to_descr(DTYPE), "fortran_order": False,
             "shape": (rows, dim)},
        )  # fmt: skip
        self.path = Path(path)
        self.offset = len(header.getvalue())
        self.row_bytes = dim * DTYPE.itemsize
        self.rows, self.dim = rows, dim
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(self.fd, header.getvalue())
        os.ftruncate(self.fd, self.offset + rows * self.row_bytes)

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        """``values[i]`` into row ``rows[i]`` (``rows`` increasing), one write per run of
        consecutive rows."""
        values = np.ascontiguousarray(values, dtype=DTYPE)
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(rows)], strict=True):
            if hi > lo:
                os.pwrite(
                    self.fd, values[lo:hi].tobytes(), self.offset + int(rows[lo]) * self.row_bytes
                )

    def copy_rows(self, source: Path, rows: int, start: int = 0) -> None:
        """Rows ``0..rows`` of the ``.npy`` file ``source`` (same width) into rows
        ``start..start + rows``, ``COPY_ROWS`` at a time."""
        src = open_embeddings(source)
        if src.shape[1] != self.dim or len(src) < rows:
            raise ValueError(f"{source}: shape {src.shape}, expected ({rows}, {self.dim})")
        for lo in range(0, rows, COPY_ROWS):
            hi = min(rows, lo + COPY_ROWS)
            self.write(np.arange(start + lo, start + hi), np.asarray(src[lo:hi]))
        del src

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


def open_embeddings(path: str | Path) -> np.ndarray:
    """A read-only memory map of an embedding file."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def embed_into(
    model: Any,
    fs: FeatureSet | StoreView,
    modality: str,
    out: EmbeddingFile,
    start: int = 0,
    batch_size: int = 8192,
    bar: Any = None,
) -> None:
    """Embed ``modality``'s present rows of ``fs`` ``batch_size`` rows at a time into
    ``out`` at their post positions plus ``start``. The chunks are the batches
    ``model.embed`` would use on the whole matrix, so the rows are bit-identical."""
    rows = np.flatnonzero(fs.present[modality])
    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo : lo + batch_size]
        x = fs.take(chunk, modalities=[modality])[modality]
        out.write(start + chunk, model.embed({modality: x}, batch_size=batch_size)[modality])
        if bar is not None:
            bar.update(len(chunk))

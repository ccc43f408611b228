"""The in-memory form of a feature store: per-modality matrices aligned by post.

Row ``i`` of every modality belongs to ``post_ids[i]``. A post that lacks a modality has
``present[m][i] == False``; its row holds zeros that no loss, metric or index may read.

Example:
    >>> fs = FeatureSet(
    ...     post_ids=np.array(["a", "b"]),
    ...     features={"text": np.ones((2, 4), np.float32), "video": np.ones((2, 8), np.float32)},
    ... )
    >>> fs.modalities, fs.num_posts
    (['text', 'video'], 2)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmodal.errors import InputError


@dataclass
class FeatureSet:
    post_ids: np.ndarray
    features: dict[str, np.ndarray]
    present: dict[str, np.ndarray] = field(default_factory=dict)
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    # True when the rows come from checked data (a subset or selection of a validated set,
    # or rows the store reader checked as it read them): the finiteness scan is skipped
    checked: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.post_ids = np.asarray(self.post_ids).astype(str)
        for m in self.features:
            if m not in self.present:
                self.present[m] = np.ones(len(self.post_ids), dtype=bool)
            else:
                self.present[m] = np.asarray(self.present[m], dtype=bool)
        self.validate(finite=not self.checked)

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    @property
    def num_posts(self) -> int:
        return len(self.post_ids)

    def dims(self) -> dict[str, int]:
        return {m: int(x.shape[1]) for m, x in self.features.items()}

    def validate(self, finite: bool = True) -> None:
        """Raise :class:`InputError` on shape mismatches, duplicate ids or (``finite``)
        non-finite values; scanned in blocks of rows, never a copy of a whole modality."""
        n = len(self.post_ids)
        if len(set(self.post_ids.tolist())) != n:
            raise InputError("feature set: post_ids are not unique")
        if not self.features:
            raise InputError("feature set: no modalities")
        for m, x in self.features.items():
            if x.ndim != 2 or x.shape[0] != n:
                raise InputError(
                    f"feature set: modality {m!r} has shape {x.shape}, expected ({n}, d)"
                )
            if self.present[m].shape != (n,):
                raise InputError(f"feature set: presence mask of {m!r} has the wrong shape")
            if finite:
                self._check_finite(m)

    def _check_finite(self, m: str, block: int = 8192) -> None:
        x, present = self.features[m], self.present[m]
        bad = [
            lo + np.flatnonzero(~np.isfinite(x[lo : lo + block]).all(axis=1))
            for lo in range(0, len(x), block)
        ]
        rows = np.concatenate([np.zeros(0, np.int64), *bad])
        rows = rows[present[rows]]
        if len(rows):
            ids = ", ".join(self.post_ids[rows[:5]])
            raise InputError(
                f"feature set: modality {m!r} has NaN/inf features in {len(rows)} posts "
                f"(e.g. {ids})"
            )

    def subset(self, index: np.ndarray | Sequence[int]) -> FeatureSet:
        """Rows ``index`` (integer positions or a boolean mask), all modalities."""
        idx = np.asarray(index)
        return FeatureSet(
            post_ids=self.post_ids[idx],
            features={m: x[idx] for m, x in self.features.items()},
            present={m: p[idx] for m, p in self.present.items()},
            encoders=dict(self.encoders),
            checked=True,
        )

    def select(self, modalities: Sequence[str]) -> FeatureSet:
        """The same posts restricted to ``modalities`` (in that order)."""
        unknown = [m for m in modalities if m not in self.features]
        if unknown:
            raise InputError(
                f"unknown modality {unknown[0]!r}; this feature set has {self.modalities}"
            )
        return FeatureSet(
            post_ids=self.post_ids,
            features={m: self.features[m] for m in modalities},
            present={m: self.present[m] for m in modalities},
            encoders={m: self.encoders[m] for m in modalities if m in self.encoders},
            checked=True,
        )

    def take(
        self, index: np.ndarray, dtype: Any = None, modalities: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Features of rows ``index`` per modality (as :meth:`StoreView.take`)."""
        mods = self.modalities if modalities is None else list(modalities)
        return {
            m: self.features[m][index] if dtype is None else self.features[m][index].astype(dtype)
            for m in mods
        }

    def complete(self, modalities: Sequence[str] | None = None) -> np.ndarray:
        """Boolean mask of posts that have every one of ``modalities`` (default: all)."""
        mods = list(modalities) if modalities is not None else self.modalities
        mask = np.ones(self.num_posts, dtype=bool)
        for m in mods:
            mask &= self.present[m]
        return mask

    def fingerprint(self) -> str:
        """A short hash of ids, presence and feature bytes: identifies the training data."""
        h = hashlib.sha256()
        h.update("\n".join(self.post_ids.tolist()).encode())
        for m in sorted(self.features):
            h.update(m.encode())
            h.update(np.ascontiguousarray(self.present[m]).data)
            h.update(np.ascontiguousarray(self.features[m]).data)  # no copy when contiguous
        return h.hexdigest()[:16]

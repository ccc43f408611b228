"""SMOTE that copes with tiny classes, for use as an imbalanced-learn pipeline step.

Inside a pipeline the sampler only ever sees the data passed to ``fit`` (the training
fold); the published code oversampled before splitting, so synthetic points built from
test posts leaked into training.

SMOTE needs ``k_neighbors + 1`` samples in every class it oversamples. A training fold of
an imbalanced provenance task often has a class with fewer: :class:`FoldSMOTE` lowers
``k_neighbors`` for that fit, leaves classes with a single sample as they are, and records
what it did in ``warnings_`` (cross-validation copies these into its result).

Example:
    >>> from imblearn.pipeline import make_pipeline
    >>> pipe = make_pipeline(FoldSMOTE(random_state=0), GaussianNB())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
from imblearn.over_sampling import SMOTE


class FoldSMOTE(SMOTE):
    """:class:`imblearn.over_sampling.SMOTE` with ``k_neighbors`` adapted to small classes.

    Only the default ``sampling_strategy="auto"`` (raise every class to the majority's
    count) is adapted; any other strategy is passed to SMOTE unchanged.
    """

    def fit_resample(self, X: Any, y: Any, **params: Any) -> Any:
        self.warnings_: list[str] = []
        if not (isinstance(self.sampling_strategy, str) and self.sampling_strategy == "auto"):
            return super().fit_resample(X, y, **params)
        y_arr = np.asarray(y)
        classes, counts = np.unique(y_arr, return_counts=True)
        target = int(counts.max())
        minority = counts < target
        single = minority & (counts < 2)
        if single.any():
            names = ", ".join(map(str, classes[single][:5]))
            self.warnings_.append(
                f"SMOTE: {int(single.sum())} class(es) with one training sample left as is ({names})"
            )
        grow = minority & ~single
        if not grow.any():
            if minority.any():
                self.warnings_.append("SMOTE: no class could be oversampled; fold left as is")
            return np.asarray(X), y_arr
        k_default = self.k_neighbors if isinstance(self.k_neighbors, int) else None
        k = int(counts[grow].min()) - 1
        if k_default is not None and k >= k_default:
            k = k_default
        elif k_default is not None:
            self.warnings_.append(
                f"SMOTE: k_neighbors lowered from {k_default} to {k} "
                f"(smallest oversampled class has {k + 1} training samples)"
            )
        inner = SMOTE(
            sampling_strategy={c: target for c in classes[grow].tolist()},
            random_state=self.random_state,
            k_neighbors=k if k_default is not None else self.k_neighbors,
        )
        return inner.fit_resample(X, y_arr, **params)

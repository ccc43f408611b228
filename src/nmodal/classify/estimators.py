"""The classifiers, by short name, and the (resampler ->) classifier pipeline.

Every classifier is a scikit-learn estimator with ``fit``, ``predict``, ``predict_proba``
and ``classes_``, so it drops into scikit-learn and imbalanced-learn pipelines.

Example:
    >>> clf = make_classifier("rf", seed=0, n_estimators=50)
    >>> pipe = make_pipeline("svm", seed=0, sampler=FoldSMOTE(random_state=0))  # doctest: +SKIP
    >>> pipe.fit(X_train, y_train).predict_proba(X_test)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from nmodal.classify.mlp import TorchMLPClassifier
from nmodal.errors import InputError

CLASSIFIERS: tuple[str, ...] = ("nb", "rf", "svm", "knn", "logreg", "mlp")
DISPLAY_NAMES: dict[str, str] = {
    "nb": "Naive Bayes",
    "rf": "Random Forest",
    "svm": "SVM",
    "knn": "KNN",
    "logreg": "Logistic regression",
    "mlp": "MLP",
}


class SVMClassifier(ClassifierMixin, BaseEstimator):
    """An SVC whose decision values are calibrated into probabilities (Platt-style).

    The calibrator is a logistic regression on the SVC's decision values, fitted on
    out-of-fold decision values from an internal stratified split of ``fit``'s data
    (``calibration_folds``, fewer when a class is small; in-sample when a class has a
    single sample, noted in ``calibration_``). ``predict`` is the argmax of
    ``predict_proba``, so labels and scores agree.

    Example:
        >>> SVMClassifier(C=1.0, kernel="rbf").fit(X, y).predict_proba(X)  # doctest: +SKIP
    """

    def __init__(
        self,
        C: float = 1.0,
        kernel: str = "rbf",
        gamma: str | float = "scale",
        calibration_folds: int = 3,
        seed: int = 0,
    ) -> None:
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.calibration_folds = calibration_folds
        self.seed = seed

    def _svc(self) -> SVC:
        return SVC(C=self.C, kernel=self.kernel, gamma=self.gamma, random_state=self.seed)

    @staticmethod
    def _as_2d(scores: np.ndarray) -> np.ndarray:
        return scores.reshape(-1, 1) if scores.ndim == 1 else scores

    def fit(self, X: Any, y: Any) -> SVMClassifier:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        self.classes_, counts = np.unique(y, return_counts=True)
        if len(self.classes_) < 2:
            raise InputError("SVM: need at least two classes to fit")
        self.n_features_in_ = X.shape[1]
        self.svc_ = self._svc().fit(X, y)
        folds = min(self.calibration_folds, int(counts.min()))
        if folds >= 2:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)
            scores = cross_val_predict(self._svc(), X, y, cv=cv, method="decision_function")
            self.calibration_ = f"out-of-fold ({folds} folds)"
        else:
            scores = self.svc_.decision_function(X)
            self.calibration_ = "in-sample (a class has a single training sample)"
        self.calibrator_ = LogisticRegression(max_iter=1000).fit(self._as_2d(scores), y)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "svc_")
        out: np.ndarray = self.svc_.decision_function(np.asarray(X, dtype=np.float64))
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        proba: np.ndarray = self.calibrator_.predict_proba(self._as_2d(self.decision_function(X)))
        return proba

    def predict(self, X: Any) -> np.ndarray:
        out: np.ndarray = self.classes_[self.predict_proba(X).argmax(axis=1)]
        return out


def make_classifier(name: str, seed: int = 0, **params: Any) -> BaseEstimator:
    """A fresh, unfitted classifier by short name (one of :data:`CLASSIFIERS`).

    ``params`` override the defaults: RF 200 trees, KNN 5 neighbours, logistic regression
    ``C=1``, RBF SVM ``C=1``, MLP one hidden layer of 256. A parameter the classifier does
    not have, or a value it refuses, is an :class:`InputError` naming it.
    """
    builders: dict[str, tuple[type, dict[str, Any]]] = {
        "nb": (GaussianNB, {}),
        "rf": (RandomForestClassifier, {"n_estimators": 200, "random_state": seed, "n_jobs": 1}),
        "svm": (SVMClassifier, {"seed": seed}),
        "knn": (KNeighborsClassifier, {"n_neighbors": 5}),
        "logreg": (LogisticRegression, {"max_iter": 1000, "random_state": seed}),
        "mlp": (TorchMLPClassifier, {"seed": seed}),
    }
    if name not in builders:
        raise InputError(f"unknown classifier {name!r}; choose from {', '.join(CLASSIFIERS)}")
    cls, defaults = builders[name]
    known = set(cls(**defaults).get_params())
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(
            f"--param {name}.{unknown[0]}: {cls.__name__} has no parameter {unknown[0]!r} "
            f"(it has {', '.join(sorted(known))})"
        )
    est = cls(**{**defaults, **params})
    validate = getattr(est, "_validate_params", None)  # scikit-learn's own value checks
    if callable(validate) and hasattr(est, "_parameter_constraints"):
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise InputError(f"--param {name}: {exc}") from None
    return est


def make_pipeline(
    classifier: str | BaseEstimator,
    seed: int = 0,
    sampler: BaseEstimator | None = None,
    **params: Any,
) -> Pipeline:
    """``[sampler ->] classifier`` as an imbalanced-learn pipeline (steps "sampler", "classifier").

    ``classifier`` is a short name or an estimator (cloned). The sampler runs only in
    ``fit``: it sees training data and never touches what ``predict`` is given.
    """
    if isinstance(classifier, str):
        est = make_classifier(classifier, seed=seed, **params)
    else:
        est = clone(classifier).set_params(**params) if params else clone(classifier)
    steps: list[tuple[str, Any]] = []
    if sampler is not None:
        steps.append(("sampler", clone(sampler)))
    steps.append(("classifier", est))
    return Pipeline(steps)


def classifier_name(classifier: str | BaseEstimator) -> str:
    """The short name, or the class name of an estimator passed directly."""
    return classifier if isinstance(classifier, str) else type(classifier).__name__

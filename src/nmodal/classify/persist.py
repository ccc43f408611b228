"""Saving and loading fitted classifiers without pickle.

A saved classifier is a directory:

    classifier.json       format, kind, constructor parameters, classes, fitted scalars,
                          and free-form metadata (which model, modality, label, results)
    estimator.skops       the scikit-learn estimator (nb, logreg, knn, rf; for svm the SVC
                          and its calibrator), in skops's format: scikit-learn's public
                          persistence path, loaded only if every type in it is on an
                          explicit allow-list, so loading never runs arbitrary code
    arrays.safetensors    the MLP's weights (nmodal's own torch network)

Version 1 folders (written before skops held every scikit-learn estimator) kept the fitted
arrays of nb / logreg / knn and the SVM's calibrator in ``arrays.safetensors``; they still
load (the arrays go back through each estimator's public fitted attributes and, for knn,
its public ``fit``). New folders are version 2.

Example:
    >>> save_classifier(clf, "runs/stance-rf", metadata={"label": "stance"})  # doctest: +SKIP
    >>> load_classifier("runs/stance-rf").predict_proba(X)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from nmodal.atomic import check_replaceable, recover_dir, replacing_dir
from nmodal.classify.estimators import SVMClassifier
from nmodal.classify.mlp import TorchMLPClassifier
from nmodal.errors import InputError, OutputExistsError
from nmodal.integrity import hash_files, verify_files
from nmodal.jsonfile import read_format_json

FORMAT = "nmodal-classifier"
VERSION = 2
READABLE_VERSIONS = (1, 2)
INFO_FILE = "classifier.json"
ARRAYS_FILE = "arrays.safetensors"
SKOPS_FILE = "estimator.skops"

# types skops may construct beyond its own default trusted set, per kind
SKOPS_ALLOWED: dict[str, set[str]] = {
    "nb": set(),
    "logreg": set(),
    # a KNN keeps its search tree and distance-metric object (plain data, no callables)
    "knn": {
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        *(
            f"sklearn.metrics._dist_metrics.{m}Distance{b}"
            for m in ("Euclidean", "Manhattan", "Chebyshev", "Minkowski")
            for b in ("64", "32")
        ),
    },
    "rf": {"sklearn.tree._tree.Tree"},
    "svm": set(),
}


def _kind(est: BaseEstimator) -> str:
    kinds: list[tuple[type, str]] = [
        (GaussianNB, "nb"),
        (LogisticRegression, "logreg"),
        (KNeighborsClassifier, "knn"),
        (TorchMLPClassifier, "mlp"),
        (SVMClassifier, "svm"),
        (RandomForestClassifier, "rf"),
    ]
    for cls, kind in kinds:
        if type(est) is cls:
            return kind
    raise InputError(
        f"cannot save a {type(est).__name__}; supported: nb, rf, svm, knn, logreg, mlp"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _params(est: BaseEstimator) -> dict[str, Any]:
    params = {k: _jsonable(v) for k, v in est.get_params(deep=False).items()}
    for k, v in params.items():
        try:
            json.dumps(v)
        except TypeError as exc:
            raise InputError(f"cannot save parameter {k}={v!r} of {type(est).__name__}") from exc
    return params


def _classes_json(classes: np.ndarray) -> dict[str, Any]:
    kind = "str" if classes.dtype.kind in "USO" else str(classes.dtype)
    return {"values": [_jsonable(c) for c in classes.tolist()], "dtype": kind}


def _classes_array(spec: Mapping[str, Any]) -> np.ndarray:
    return np.array(spec["values"], dtype=str if spec["dtype"] == "str" else spec["dtype"])


def _skops_dump(est: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(est, path)


def _skops_load(path: Path, kind: str) -> Any:
    import skops.io as sio

    if not path.is_file():
        raise InputError(f"{path}: missing")
    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - SKOPS_ALLOWED[kind])
    if refused:
        raise InputError(f"{path}: refusing to load unexpected types {refused}")
    return sio.load(path, trusted=untrusted)


def _fitted_state(
    est: BaseEstimator, kind: str, tmp: Path
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Write a fitted estimator's state into ``tmp``: arrays for safetensors (the MLP) and
    JSON scalars; scikit-learn estimators go to skops."""
    if kind == "mlp":
        state = {f"model.{k}": v.detach().cpu().numpy() for k, v in est.model_.state_dict().items()}
        return state, {"best_epoch_": int(est.best_epoch_)}
    if kind == "svm":
        _skops_dump({"svc": est.svc_, "calibrator": est.calibrator_}, tmp / SKOPS_FILE)
        return {}, {"calibration_": est.calibration_}
    _skops_dump(est, tmp / SKOPS_FILE)  # nb, logreg, knn, rf
    return {}, {}


def save_classifier(
    clf: BaseEstimator,
    path: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a fitted classifier (or a pipeline's final ``classifier`` step) to ``path``.

    A resampling step is not saved: it only acts while fitting.
    """
    path = Path(path)
    est = clf.named_steps["classifier"] if hasattr(clf, "named_steps") else clf
    kind = _kind(est)
    if not hasattr(est, "classes_"):
        raise InputError(f"cannot save an unfitted {type(est).__name__}")
    recover_dir(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists (pass overwrite=True / --overwrite)")
    check_replaceable(path, "classifier", INFO_FILE, FORMAT)
    with replacing_dir(path) as tmp:
        arrays, fitted = _fitted_state(est, kind, tmp)
        if arrays:
            save_file(
                {k: np.ascontiguousarray(v) for k, v in arrays.items()},
                str(tmp / ARRAYS_FILE),
                metadata={"format": FORMAT},
            )
        info = {
            "format": FORMAT,
            "version": VERSION,
            "kind": kind,
            "params": _params(est),
            "classes": _classes_json(np.asarray(est.classes_)),
            "n_features_in": int(est.n_features_in_),
            "fitted": fitted,
            "metadata": dict(metadata or {}),
            "files": hash_files(tmp, skip=INFO_FILE),
        }
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2))
    return path


def read_classifier_info(path: str | Path, verify: bool | None = None) -> dict[str, Any]:
    """The ``classifier.json`` of a saved classifier (kind, classes, metadata, ...).

    A swap killed half-way is recovered first; the SHA-256 recorded for each file is checked
    (``verify``: default on unless ``--no-verify``).
    """
    path = recover_dir(Path(path))
    info = read_format_json(
        path, INFO_FILE, format=FORMAT, versions=READABLE_VERSIONS, what="a saved classifier"
    )
    verify_files(path, info.get("files"), INFO_FILE, verify=verify)
    return info


def _arrays(path: Path) -> dict[str, np.ndarray]:
    file = path / ARRAYS_FILE
    if not file.is_file():
        raise InputError(f"{file}: missing")
    return load_file(str(file))


def _expect(obj: Any, cls: type, file: Path) -> Any:
    if type(obj) is not cls:
        raise InputError(f"{file}: holds a {type(obj).__name__}, not a {cls.__name__}")
    return obj


SKLEARN_KINDS: dict[str, type] = {
    "nb": GaussianNB,
    "logreg": LogisticRegression,
    "knn": KNeighborsClassifier,
    "rf": RandomForestClassifier,
}


def _load_v1_arrays(
    path: Path, kind: str, params: dict[str, Any], fitted: dict[str, Any], classes: np.ndarray
) -> Any:
    """A version-1 folder's nb / logreg / knn / svm calibrator, from its safetensors arrays."""
    arrays = _arrays(path)
    if kind == "nb":
        est: Any = GaussianNB(**params)
        for k, v in arrays.items():
            setattr(est, k, v)
        est.epsilon_ = fitted["epsilon_"]
        return est
    if kind == "logreg":
        est = LogisticRegression(**params)
        est.coef_, est.intercept_ = arrays["coef_"], arrays["intercept_"]
        est.n_iter_ = np.zeros(1, dtype=np.int32)
        return est
    if kind == "knn":
        return KNeighborsClassifier(**params).fit(arrays["fit_X"], classes[arrays["fit_y"]])
    cal = LogisticRegression(**fitted["calibrator_params"])  # svm
    cal.coef_, cal.intercept_ = arrays["calibrator.coef_"], arrays["calibrator.intercept_"]
    cal.classes_, cal.n_features_in_ = classes, arrays["calibrator.coef_"].shape[1]
    return cal


def load_classifier(path: str | Path, verify: bool | None = None) -> Any:
    """Rebuild a classifier saved by :func:`save_classifier`; executes no stored code.

    Hashes are checked (see :func:`read_classifier_info`); arrays of the wrong shape or
    parameters that do not fit the kind are an :class:`InputError` naming the folder.
    """
    path = Path(path)
    info = read_classifier_info(path, verify=verify)
    try:
        est = _rebuild(path, info)
        # a dry run on one row: arrays whose shapes do not fit each other fail here, clearly
        proba = est.predict_proba(np.zeros((1, est.n_features_in_), dtype=np.float32))
        if proba.shape != (1, len(est.classes_)):
            raise InputError(f"{path}: arrays do not fit {len(est.classes_)} classes")
        return est
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: saved classifier does not match {INFO_FILE} ({exc})") from exc


def _rebuild(path: Path, info: dict[str, Any]) -> Any:
    version, kind, params, fitted = info["version"], info["kind"], info["params"], info["fitted"]
    classes = _classes_array(info["classes"])
    n_features = int(info["n_features_in"])
    skops_file = path / SKOPS_FILE
    est: Any
    if kind == "mlp":
        if isinstance(params["hidden_sizes"], list):
            params["hidden_sizes"] = tuple(params["hidden_sizes"])
        est = TorchMLPClassifier(**params)
        state = {k.removeprefix("model."): torch.from_numpy(v) for k, v in _arrays(path).items()}
        est.model_ = est.build_network(n_features, len(classes))
        est.model_.load_state_dict(state)
        est.model_.eval()
        est.best_epoch_ = fitted["best_epoch_"]
    elif kind == "svm":
        est = SVMClassifier(**params)
        if version == 1:
            est.svc_ = _skops_load(skops_file, kind)
            est.calibrator_ = _load_v1_arrays(path, kind, params, fitted, classes)
        else:
            parts = _skops_load(skops_file, kind)
            if not isinstance(parts, dict) or set(parts) != {"svc", "calibrator"}:
                raise InputError(f"{skops_file}: not a saved SVM (svc and calibrator)")
            est.svc_, est.calibrator_ = parts["svc"], parts["calibrator"]
        _expect(est.svc_, SVC, skops_file)
        _expect(est.calibrator_, LogisticRegression, skops_file)
        est.calibration_ = fitted["calibration_"]
    elif kind in SKLEARN_KINDS:
        if version == 1 and kind != "rf":
            est = _load_v1_arrays(path, kind, params, fitted, classes)
        else:
            est = _expect(_skops_load(skops_file, kind), SKLEARN_KINDS[kind], skops_file)
    else:
        raise InputError(f"{path / INFO_FILE}: unknown classifier kind {kind!r}")
    if getattr(est, "n_features_in_", n_features) != n_features:
        raise InputError(
            f"{path}: the estimator expects {est.n_features_in_} features, "
            f"{INFO_FILE} says {n_features}"
        )
    est.classes_ = classes
    est.n_features_in_ = n_features
    return est

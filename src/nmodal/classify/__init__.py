"""Stance and account-provenance classifiers on the shared embedding space.

Unlike the paper's published code, evaluation here never leaks: folds are grouped by post
(or account, or split by time) so a post's artifacts are never on both sides, SMOTE is a
pipeline step fitted on training folds only, and the MLP early-stops on a validation split
of the training fold.

Example:
    >>> from nmodal.classify import cross_validate, embedding_rows, label_rows, read_posts_table  # doctest: +SKIP
    >>> rows = embedding_rows(model, fs)                       # one row per artifact  # doctest: +SKIP
    >>> data = label_rows(rows, read_posts_table("dataset"), label="stance")  # doctest: +SKIP
    >>> res = cross_validate(data.X, data.y, data.groups, classifier="rf", folds=5)  # doctest: +SKIP
    >>> res["accuracy"], res["baselines"]["majority"]["accuracy"]  # doctest: +SKIP
"""

from nmodal.classify.crossval import cross_validate
from nmodal.classify.estimators import (
    CLASSIFIERS,
    DISPLAY_NAMES,
    SVMClassifier,
    make_classifier,
    make_pipeline,
)
from nmodal.classify.metrics import classification_metrics, roc_curves
from nmodal.classify.mlp import TorchMLPClassifier
from nmodal.classify.persist import load_classifier, read_classifier_info, save_classifier
from nmodal.classify.plots import plot_confusion, plot_roc
from nmodal.classify.rows import (
    EmbeddingRows,
    LabelledRows,
    embedding_rows,
    label_rows,
    labelled_rows,
    read_label_mapping,
    read_posts_table,
)
from nmodal.classify.sampling import FoldSMOTE
from nmodal.classify.splits import group_kfold, time_splits
from nmodal.classify.tables import format_metric, results_table

__all__ = [
    "CLASSIFIERS",
    "DISPLAY_NAMES",
    "EmbeddingRows",
    "FoldSMOTE",
    "LabelledRows",
    "SVMClassifier",
    "TorchMLPClassifier",
    "classification_metrics",
    "cross_validate",
    "embedding_rows",
    "format_metric",
    "group_kfold",
    "label_rows",
    "labelled_rows",
    "load_classifier",
    "make_classifier",
    "make_pipeline",
    "plot_confusion",
    "plot_roc",
    "read_classifier_info",
    "read_label_mapping",
    "read_posts_table",
    "results_table",
    "roc_curves",
    "save_classifier",
    "time_splits",
]

"""The whole classification experiment behind ``nmodal classify``: embed, label, cross-
validate every classifier, fit and save the final classifiers, write JSON, tables, plots.

Output directory::

    results.json              config, data summary, per-classifier cross-validation results
    results.md                the paper-style table (mean ± std over folds) and baselines
    roc.png                   ROC curves of all classifiers (Figures 3-4 of the paper)
    confusion-<clf>.png       pooled out-of-fold confusion matrix per classifier
    classifiers/<clf>/        the final classifier fitted on all rows (no pickle)

The experiment is read (:func:`read_rows`), computed (:func:`evaluate_classifier` per
classifier) and presented (:func:`results_markdown`, :func:`write_results`) by separate
functions; :func:`run_classification` runs them in order from one :class:`ClassifyConfig`.

Example:
    >>> config = ClassifyConfig("runs/m1", "data/store", "data/dataset", label="stance",
    ...                         out_dir="runs/stance", classifiers=("rf", "logreg"))
    >>> run_classification(config)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nmodal.atomic import check_replaceable, check_separate, recover_dir, replacing_dir
from nmodal.classify.crossval import cross_validate
from nmodal.classify.estimators import CLASSIFIERS, DISPLAY_NAMES, make_pipeline
from nmodal.classify.persist import save_classifier
from nmodal.classify.plots import plot_confusion, plot_roc
from nmodal.classify.rows import (
    LabelledRows,
    labelled_rows,
    read_label_mapping,
    read_posts_table,
)
from nmodal.classify.sampling import FoldSMOTE
from nmodal.classify.tables import results_table
from nmodal.errors import InputError, OutputExistsError
from nmodal.features import StoreReader
from nmodal.model import NModalModel, model_fingerprint

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

MODALITY_CHOICES = ("all", "fused")


def parse_modality(spec: str, available: Sequence[str]) -> tuple[list[str], str | None]:
    """``"all"`` -> every modality, one row per artifact; ``"fused"`` -> one mean row per post;
    ``"text"`` or ``"text,video"`` -> those modalities, one row per artifact."""
    if spec == "all":
        return list(available), None
    if spec == "fused":
        return list(available), "mean"
    mods = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in mods if m not in available]
    if not mods or unknown:
        raise InputError(
            f"--modality {spec!r}: use all, fused or modalities among {', '.join(available)}"
        )
    return mods, None


def _check_out(out_dir: Path, overwrite: bool) -> None:
    recover_dir(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir}: exists and is not empty (use --overwrite)")
    check_replaceable(out_dir, "classification run", "results.json")


@dataclass(frozen=True)
class ClassifyConfig:
    """One classification experiment: where its inputs are, what to classify and how, and
    where its outputs go (``nmodal classify`` builds it from its arguments)."""

    model_dir: str | Path
    store_dir: str | Path
    posts: str | Path
    label: str
    out_dir: str | Path
    #: folds grouped by ``post``, by ``account``, or split by ``time``
    by: str = "post"
    classifiers: Sequence[str] = CLASSIFIERS
    smote: bool = False
    #: ``all``, ``fused`` or a comma list of modalities (:func:`parse_modality`)
    modality: str = "all"
    folds: int = 5
    seed: int = 0
    #: account -> label file used instead of the posts table's label column
    mapping: str | Path | None = None
    classifier_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    overwrite: bool = False
    progress: bool = True
    #: check the store's shards against their recorded sha256 (``--no-verify`` turns it off;
    #: None: on unless $NMODAL_NO_VERIFY)
    verify: bool | None = None

    def params_of(self) -> dict[str, dict[str, Any]]:
        """The per-classifier keyword arguments as plain dicts."""
        return {k: dict(v) for k, v in self.classifier_params.items()}


@dataclass(frozen=True)
class ClassifyRows:
    """What the experiment reads: the labelled rows and the model they were embedded with."""

    data: LabelledRows
    modalities: list[str]
    fusion: str | None
    fingerprint: str


def check_classifiers(classifiers: Sequence[str]) -> None:
    """Refuse an empty list or an unknown classifier name."""
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise InputError(f"unknown classifier {unknown[:1]}; choose from {', '.join(CLASSIFIERS)}")


def read_rows(config: ClassifyConfig) -> ClassifyRows:
    """Read: load the model, the feature store and the posts table, label the chosen
    modalities' artifacts and embed the labelled ones (only their shards are read)."""

    model = NModalModel.load(config.model_dir)
    reader = StoreReader(config.store_dir, verify=config.verify)
    table = read_posts_table(config.posts)
    mapping = config.mapping
    label_map = read_label_mapping(mapping, config.label) if mapping is not None else None
    shared = [m for m in model.modalities if m in reader.modalities]
    mods, fusion = parse_modality(config.modality, shared)
    # labelled first: only the labelled posts' shards are opened, their features read in chunks
    data = labelled_rows(model, reader, table, config.label, mods, fusion, config.by, label_map)
    return ClassifyRows(data, mods, fusion, model_fingerprint(config.model_dir))


def config_json(config: ClassifyConfig, rows: ClassifyRows) -> dict[str, Any]:
    """The ``config`` member of ``results.json``."""
    return {
        "model": str(config.model_dir),
        "model_fingerprint": rows.fingerprint,
        "store": str(config.store_dir),
        "posts": str(config.posts),
        "label": config.label,
        "label_mapping": None if config.mapping is None else str(config.mapping),
        "by": config.by,
        "modality": config.modality,
        "modalities": rows.modalities,
        "fusion": rows.fusion,
        "classifiers": list(config.classifiers),
        "smote": config.smote,
        "folds": config.folds,
        "seed": config.seed,
        "classifier_params": config.params_of(),
    }


def data_summary(data: LabelledRows) -> dict[str, Any]:
    """The ``data`` member of ``results.json``: rows, posts, groups, per-modality and
    per-class counts, and what was dropped (``dropped_unit``: counted in posts or rows)."""
    classes, counts = np.unique(data.y, return_counts=True)
    mod_names, mod_counts = np.unique(data.modality, return_counts=True)
    return {
        "num_rows": len(data),
        "num_posts": len(np.unique(data.post_ids)),
        "num_groups": len(np.unique(data.groups)),
        "rows_per_modality": dict(zip(mod_names.tolist(), mod_counts.tolist(), strict=True)),
        "class_counts": dict(zip(classes.tolist(), counts.tolist(), strict=True)),
        "dropped": data.dropped,
        "dropped_unit": data.dropped_unit,
    }


def evaluate_classifier(
    name: str, config: ClassifyConfig, data: LabelledRows
) -> tuple[dict[str, Any], Pipeline]:
    """Compute: ``name``'s cross-validation results and the final pipeline fitted on all
    rows (SMOTE, when asked, inside the pipeline: training rows only)."""
    params = config.params_of()
    seed, smote = config.seed, config.smote
    result = cross_validate(
        data.X, data.y, data.groups, classifier=name, folds=config.folds, smote=smote,
        seed=seed, times=data.times, classifier_params=params.get(name), progress=config.progress,
    )  # fmt: skip
    sampler = FoldSMOTE(random_state=seed) if smote else None
    final = make_pipeline(name, seed=seed, sampler=sampler, **params.get(name, {}))
    final.fit(data.X, data.y)
    return result, final


def classifier_metadata(
    name: str, config: ClassifyConfig, rows: ClassifyRows, result: Mapping[str, Any]
) -> dict[str, Any]:
    """What a saved classifier records about how it was made and how well it did."""
    return {
        "classifier": name,
        "label": config.label,
        "model_fingerprint": rows.fingerprint,
        "modalities": rows.modalities,
        "fusion": rows.fusion,
        "by": config.by,
        "smote": config.smote,
        "cv": {m: result[m] for m in ("accuracy", "roc_auc")},
    }


def results_title(config: ClassifyConfig) -> str:
    """The experiment in one line (the title of ``results.md``)."""
    label, smote = config.label, config.smote
    return (
        f"{label} ({'provenance' if label == 'account' else 'classification'}), "
        f"modality {config.modality}, split by {config.by}, {config.folds} folds"
        f"{', SMOTE' if smote else ''}"
    )


def results_markdown(config: ClassifyConfig, doc: Mapping[str, Any]) -> str:
    """Present: ``results.md``, the paper-style table with the data summary and warnings."""
    summary, results = doc["data"], doc["results"]
    display = {DISPLAY_NAMES[n]: results[n] for n in config.classifiers}
    md = [
        f"# {results_title(config)}",
        "",
        f"{summary['num_rows']} rows from {summary['num_posts']} posts, "
        f"{len(summary['class_counts'])} classes, {summary['num_groups']} groups.",
        "",
        results_table(display),
    ]
    notes = [
        f"- {DISPLAY_NAMES[n]}: {w}" for n in config.classifiers for w in results[n]["warnings"]
    ]
    if notes:
        md += ["", "Warnings:", "", *notes]
    return "\n".join(md) + "\n"


def write_results(config: ClassifyConfig, doc: Mapping[str, Any], out: Path) -> None:
    """Present: ``results.json``, ``results.md``, the ROC plot and a confusion matrix per
    classifier, into ``out``."""
    results = doc["results"]
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    (out / "results.md").write_text(results_markdown(config, doc))
    display = {DISPLAY_NAMES[n]: results[n] for n in config.classifiers}
    plot_roc(display, out / "roc.png", title=f"ROC: {config.label}")
    for name in config.classifiers:
        plot_confusion(results[name], out / f"confusion-{name}.png", title=DISPLAY_NAMES[name])


def run_classification(config: ClassifyConfig) -> dict[str, Any]:
    """Run the experiment and write its outputs into ``config.out_dir`` (atomically);
    returns the content of ``results.json``."""
    check_classifiers(config.classifiers)
    out_dir = Path(config.out_dir)
    check_separate(out_dir, config.model_dir, config.store_dir, config.posts)
    rows = read_rows(config)
    settings = config_json(config, rows)
    summary = data_summary(rows.data)
    _check_out(out_dir, config.overwrite)
    with replacing_dir(out_dir) as tmp:
        results: dict[str, Any] = {}
        for name in config.classifiers:
            results[name], final = evaluate_classifier(name, config, rows.data)
            meta = classifier_metadata(name, config, rows, results[name])
            save_classifier(final, tmp / "classifiers" / name, metadata=meta)
        doc = {"config": settings, "data": summary, "results": results}
        write_results(config, doc, tmp)
    return doc

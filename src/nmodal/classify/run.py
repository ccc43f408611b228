"""The whole classification experiment behind ``nmodal classify``: embed, label, cross-
validate every classifier, fit and save the final classifiers, write JSON, tables, plots.

Output directory::

    results.json              config, data summary, per-classifier cross-validation results
    results.md                the paper-style table (mean ± std over folds) and baselines
    roc.png                   ROC curves of all classifiers (Figures 3-4 of the paper)
    confusion-<clf>.png       pooled out-of-fold confusion matrix per classifier
    classifiers/<clf>/        the final classifier fitted on all rows (no pickle)

Example:
    >>> run_classification("runs/m1", "data/store", "data/dataset", label="stance",
    ...                    out_dir="runs/stance", classifiers=["rf", "logreg"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.atomic import recover_dir, replacing_dir
from nmodal.classify.crossval import cross_validate
from nmodal.classify.estimators import CLASSIFIERS, DISPLAY_NAMES, make_pipeline
from nmodal.classify.persist import save_classifier
from nmodal.classify.plots import plot_confusion, plot_roc
from nmodal.classify.rows import embedding_rows, label_rows, read_label_mapping, read_posts_table
from nmodal.classify.sampling import FoldSMOTE
from nmodal.classify.tables import results_table
from nmodal.errors import InputError, OutputExistsError
from nmodal.model import model_fingerprint

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


def run_classification(
    model_dir: str | Path,
    store_dir: str | Path,
    posts: str | Path,
    label: str,
    out_dir: str | Path,
    *,
    by: str = "post",
    classifiers: Sequence[str] = CLASSIFIERS,
    smote: bool = False,
    modality: str = "all",
    folds: int = 5,
    seed: int = 0,
    mapping: str | Path | None = None,
    classifier_params: Mapping[str, Mapping[str, Any]] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the experiment and write its outputs into ``out_dir`` (atomically); returns the
    content of ``results.json``."""
    from nmodal.features import read_featureset
    from nmodal.model import NModalModel

    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise InputError(f"unknown classifier {unknown[:1]}; choose from {', '.join(CLASSIFIERS)}")
    out_dir = Path(out_dir)
    model = NModalModel.load(model_dir)
    fs = read_featureset(store_dir)
    table = read_posts_table(posts)
    label_map = read_label_mapping(mapping, label) if mapping is not None else None
    shared = [m for m in model.modalities if m in fs.features]
    mods, fusion = parse_modality(modality, shared)
    rows = embedding_rows(model, fs, mods, fusion)
    data = label_rows(rows, table, label, by=by, mapping=label_map)
    params = {k: dict(v) for k, v in (classifier_params or {}).items()}
    fingerprint = model_fingerprint(model_dir)
    config = {
        "model": str(model_dir),
        "model_fingerprint": fingerprint,
        "store": str(store_dir),
        "posts": str(posts),
        "label": label,
        "label_mapping": None if mapping is None else str(mapping),
        "by": by,
        "modality": modality,
        "modalities": mods,
        "fusion": fusion,
        "classifiers": list(classifiers),
        "smote": smote,
        "folds": folds,
        "seed": seed,
        "classifier_params": params,
    }
    classes, counts = np.unique(data.y, return_counts=True)
    mod_names, mod_counts = np.unique(data.modality, return_counts=True)
    summary = {
        "num_rows": len(data),
        "num_posts": len(np.unique(data.post_ids)),
        "num_groups": len(np.unique(data.groups)),
        "rows_per_modality": dict(zip(mod_names.tolist(), mod_counts.tolist(), strict=True)),
        "class_counts": dict(zip(classes.tolist(), counts.tolist(), strict=True)),
        "dropped": data.dropped,
    }
    _check_out(out_dir, overwrite)
    with replacing_dir(out_dir) as tmp:
        results: dict[str, Any] = {}
        for name in classifiers:
            results[name] = cross_validate(
                data.X, data.y, data.groups, classifier=name, folds=folds, smote=smote,
                seed=seed, times=data.times, classifier_params=params.get(name), progress=progress,
            )  # fmt: skip
            sampler = FoldSMOTE(random_state=seed) if smote else None
            final = make_pipeline(name, seed=seed, sampler=sampler, **params.get(name, {}))
            final.fit(data.X, data.y)
            meta = {
                "classifier": name,
                "label": label,
                "model_fingerprint": fingerprint,
                "modalities": mods,
                "fusion": fusion,
                "by": by,
                "smote": smote,
                "cv": {m: results[name][m] for m in ("accuracy", "roc_auc")},
            }
            save_classifier(final, tmp / "classifiers" / name, metadata=meta)
        doc = {"config": config, "data": summary, "results": results}
        (tmp / "results.json").write_text(json.dumps(doc, indent=2))
        display = {DISPLAY_NAMES[n]: results[n] for n in classifiers}
        title = (
            f"{label} ({'provenance' if label == 'account' else 'classification'}), "
            f"modality {modality}, split by {by}, {folds} folds{', SMOTE' if smote else ''}"
        )
        md = [
            f"# {title}",
            "",
            f"{summary['num_rows']} rows from {summary['num_posts']} posts, "
            f"{len(classes)} classes, {summary['num_groups']} groups.",
            "",
            results_table(display),
        ]
        notes = [f"- {DISPLAY_NAMES[n]}: {w}" for n in classifiers for w in results[n]["warnings"]]
        if notes:
            md += ["", "Warnings:", "", *notes]
        (tmp / "results.md").write_text("\n".join(md) + "\n")
        plot_roc(display, tmp / "roc.png", title=f"ROC: {label}")
        for name in classifiers:
            plot_confusion(results[name], tmp / f"confusion-{name}.png", title=DISPLAY_NAMES[name])
    return doc

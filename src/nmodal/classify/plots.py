"""ROC curves (the paper's Figures 3-4) and confusion matrices, drawn with matplotlib (Agg).

Both read the result dicts of :func:`nmodal.classify.cross_validate`, so a plot can be
redrawn from ``results.json`` alone.

Example:
    >>> plot_roc({"rf": res_rf, "svm": res_svm}, "out/roc.png", title="Stance")  # doctest: +SKIP
    >>> plot_confusion(res_rf, "out/confusion-rf.png")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.atomic import writing_file


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _auc_label(result: Mapping[str, Any]) -> str:
    auc = result.get("roc_auc", {})
    if auc.get("mean") is None:
        return "AUC n/a"
    return f"AUC {auc['mean']:.3f} ± {auc['std']:.3f}"


def plot_roc(
    results: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "ROC"
) -> Path:
    """One ROC curve per classifier (binary), or its macro (solid) and micro (dashed)
    one-vs-rest averages (multiclass), with the chance diagonal; legend: mean ± std AUC."""
    plt = _pyplot()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, res) in enumerate(results.items()):
        curve = res["roc_curve"]
        color = colors[i % len(colors)]
        if "binary" in curve:
            c = curve["binary"]
            ax.plot(c["fpr"], c["tpr"], color=color, label=f"{name} ({_auc_label(res)})")
        else:
            ax.plot(
                curve["macro"]["fpr"],
                curve["macro"]["tpr"],
                color=color,
                label=f"{name} macro ({_auc_label(res)})",
            )
            ax.plot(
                curve["micro"]["fpr"],
                curve["micro"]["tpr"],
                color=color,
                linestyle="--",
                label=f"{name} micro",
            )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set(
        xlabel="False positive rate",
        ylabel="True positive rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with writing_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def plot_confusion(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """The pooled out-of-fold confusion matrix, rows normalised to recall; counts annotated
    for up to 20 classes."""
    plt = _pyplot()
    path = Path(path)
    cm = np.asarray(result["confusion_matrix"], dtype=np.float64)
    classes = result["classes"]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(classes)
    size = min(4 + 0.35 * k, 16)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_xticks(range(k), classes, rotation=90 if k > 6 else 0, fontsize="small")
    ax.set_yticks(range(k), classes, fontsize="small")
    ax.set(xlabel="predicted", ylabel="true", title=title or str(result.get("classifier", "")))
    if k <= 20:
        for (i, j), n in np.ndenumerate(cm):
            ax.text(
                j,
                i,
                f"{int(n)}",
                ha="center",
                va="center",
                fontsize="x-small",
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with writing_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path

"""Results as Markdown tables in the paper's format: classifier x metric, mean ± std.

Accuracy-like metrics are percentages (as in the paper's "80.91%"), AUC a fraction.
The majority-class and stratified-random baselines of the first result are appended.

Example:
    >>> print(results_table({"Random Forest": res_rf}))  # doctest: +SKIP
    | Classifier | Accuracy | Balanced accuracy | Macro-F1 | ROC AUC |
    |---|---|---|---|---|
    | Random Forest | 80.91 ± 1.02 % | ... |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nmodal.classify.metrics import SCALAR_METRICS

METRIC_NAMES: dict[str, str] = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro-F1",
    "roc_auc": "ROC AUC",
}
PERCENT_METRICS = frozenset({"accuracy", "balanced_accuracy", "macro_f1"})
BASELINE_NAMES: dict[str, str] = {
    "majority": "Baseline: majority class",
    "stratified_random": "Baseline: stratified random",
}


def format_metric(summary: Mapping[str, Any] | None, metric: str) -> str:
    """``{"mean": .8091, "std": .0102}`` -> ``"80.91 ± 1.02 %"`` (AUC: ``"0.861 ± 0.010"``)."""
    if not summary or summary.get("mean") is None:
        return "n/a"
    mean, std = summary["mean"], summary.get("std") or 0.0
    if metric in PERCENT_METRICS:
        return f"{100 * mean:.2f} ± {100 * std:.2f} %"
    return f"{mean:.3f} ± {std:.3f}"


def results_table(
    results: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] = SCALAR_METRICS,
    baselines: bool = True,
) -> str:
    """A Markdown table, one row per classifier (keys of ``results``), plus baseline rows."""
    header = "| Classifier | " + " | ".join(METRIC_NAMES.get(m, m) for m in metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 1)]
    for name, res in results.items():
        lines.append(
            f"| {name} | " + " | ".join(format_metric(res.get(m), m) for m in metrics) + " |"
        )
    first = next(iter(results.values()), None)
    if baselines and first is not None:
        for key, label in BASELINE_NAMES.items():
            base = first.get("baselines", {}).get(key)
            if base is not None:
                lines.append(
                    f"| {label} | "
                    + " | ".join(format_metric(base.get(m), m) for m in metrics)
                    + " |"
                )
    return "\n".join(lines) + "\n"

"""Recall tables in the paper's format (Tables 2-5), as Markdown.

A recall summary is ``{"1": {"mean": 0.42, "std": 0.03}, "5": ...}`` (fractions), as
returned by :func:`nmodal.evaluation.run_protocol`. Cells print as percentages with the
standard deviation over trials.

Example:
    >>> r = {"1": {"mean": 0.6047, "std": 0.021}, "5": {"mean": 0.7627, "std": 0.01}}
    >>> print(recall_table({"triCLIP-10k": r}, ks=(1, 5)))
    | Model | @1 | @5 |
    | --- | --- | --- |
    | triCLIP-10k | 60.47% ± 2.10 | 76.27% ± 1.00 |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nmodal.retrieval import DEFAULT_KS

Summary = Mapping[str, Any]


def format_cell(stat: Summary | float | None, std: bool = True) -> str:
    """``{"mean": .6047, "std": .021}`` -> ``"60.47% ± 2.10"``; a bare float -> ``"60.47%"``."""
    if stat is None:
        return "–"
    if not isinstance(stat, Mapping):
        return f"{100 * float(stat):.2f}%"
    text = f"{100 * stat['mean']:.2f}%"
    if std and "std" in stat:
        text += f" ± {100 * stat['std']:.2f}"
    return text


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def recall_table(
    rows: Mapping[str, Mapping[str, Summary | float]],
    ks: Sequence[int] = DEFAULT_KS,
    label: str = "Model",
    std: bool = True,
) -> str:
    """One row per model, one column per K (the paper's Tables 3 and 5 layout)."""
    lines = [_row([label, *[f"@{k}" for k in ks]]), _row(["---"] * (len(ks) + 1))]
    for name, recall in rows.items():
        lines.append(_row([name, *[format_cell(recall.get(str(k)), std) for k in ks]]))
    return "\n".join(lines)


def recall_grid_table(
    rows: Mapping[str, Mapping[str, Mapping[str, Summary | float]]],
    ks: Sequence[int] = DEFAULT_KS,
    group: str = "Epochs",
    label: str = "Model",
    std: bool = False,
) -> str:
    """Rows x column groups x K (the paper's Tables 2 and 4 layout).

    ``rows[row][group_value]`` is a recall summary, e.g. ``rows["triCLIP-1k"]["50"]``.
    """
    groups: list[str] = []
    for cols in rows.values():
        groups += [g for g in cols if g not in groups]
    header = [f"{label} \\ {group}", *[f"{g} @{k}" for g in groups for k in ks]]
    lines = [_row(header)]
    lines.append(_row(["---"] * len(header)))
    for name, cols in rows.items():
        cells = [
            format_cell(cols[g].get(str(k)) if g in cols else None, std) for g in groups for k in ks
        ]
        lines.append(_row([name, *cells]))
    return "\n".join(lines)

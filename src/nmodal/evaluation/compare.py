"""Compare N-modal objectives fairly: the paper's protocol for several losses on the same
features, the same splits and the same training seeds, in one table.

For every loss, :func:`~nmodal.evaluation.protocol.run_protocol` runs ``trials`` trials
(trial ``t``: split seed and training seed ``seed + t``, identical across losses) and
evaluates retrieval on the held-out posts with the loss's scoring rule
(:func:`~nmodal.retrieval.matched_scoring`: Symile's multilinear score for
``symile``, GRAM's volume for ``gram``, the paper's sum of cosines otherwise), or with one
rule for all (``scoring="sum"``). With ``missing_rate > 0`` every loss is also trained on
training data with that rate of artifacts dropped at random
(:func:`~nmodal.evaluation.missing.drop_artifacts`; test posts untouched) with
``missing="mask"``, and the table shows the change in recall against the full data.

The closed-form baselines ``gcca`` and ``ridge`` (:mod:`nmodal.evaluation.baselines`) are
"losses" too: fitted on the same training posts, scored with the same rule, one row each.

Example:
    >>> out = compare_losses(make_synthetic(1500, dim=32), TrainConfig(epochs=3),
    ...                      losses=["clip", "symile"], trials=2, progress=False)
    >>> print(out["table"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nmodal.errors import InputError
from nmodal.evaluation.baselines import BASELINE_NAMES
from nmodal.evaluation.protocol import run_protocol
from nmodal.evaluation.sweep import model_label
from nmodal.evaluation.tables import format_cell
from nmodal.features.featureset import FeatureSet
from nmodal.losses import LOSS_NAMES
from nmodal.retrieval import DEFAULT_KS, SCORINGS, matched_scoring
from nmodal.train import TrainConfig


def _spec(loss: str | Mapping[str, Any]) -> dict[str, Any]:
    spec = {"name": loss} if isinstance(loss, str) else dict(loss)
    if spec.get("name") not in (*LOSS_NAMES, *BASELINE_NAMES):
        known = sorted(LOSS_NAMES) + list(BASELINE_NAMES)
        raise InputError(f"unknown loss {spec.get('name')!r}; known: {known}")
    return spec


def _label(spec: Mapping[str, Any], num_modalities: int) -> str:
    options = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    base = model_label(str(spec["name"]), num_modalities)
    return f"{base} ({options})" if options else base


def compare_losses(
    fs: FeatureSet,
    base: TrainConfig,
    losses: Sequence[str | Mapping[str, Any]] = ("clip", "triplet", "symile", "gram", "anchor"),
    trials: int = 5,
    test_size: int = 100,
    val_fraction: float = 0.1,
    missing_rate: float = 0.0,
    scoring: str = "auto",
    groups: np.ndarray | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    queries: str | int = "all",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the protocol for each loss (and each training-data condition); returns
    ``{"runs": {key: protocol result + label/loss/condition}, "table": Markdown, ...}``."""
    if scoring != "auto" and scoring not in SCORINGS:
        raise InputError(f"unknown scoring {scoring!r}; use auto or one of {list(SCORINGS)}")
    if not 0 <= missing_rate < 1:
        raise InputError(f"missing rate must be in [0, 1), got {missing_rate}")
    specs = [_spec(loss) for loss in losses]
    if not specs:
        raise InputError("no losses to compare")
    mods = list(base.modalities or fs.modalities)
    conditions = [("full", 0.0)] + ([("missing", missing_rate)] if missing_rate > 0 else [])
    runs: dict[str, Any] = {}
    for spec in specs:
        label = _label(spec, len(mods))
        rule = matched_scoring(spec["name"]) if scoring == "auto" else scoring
        for condition, rate in conditions:
            cfg = base.to_dict()
            cfg.update(loss=spec, modalities=mods)
            if rate > 0:
                cfg["missing"] = "mask"
            result = run_protocol(
                fs,
                TrainConfig.from_dict(cfg),
                trials=trials,
                test_size=test_size,
                val_fraction=val_fraction,
                groups=groups,
                ks=ks,
                queries=queries,
                seed=seed,
                progress=progress,
                scoring=rule,
                train_missing_rate=rate,
            )
            result.update(label=label, loss=spec, condition=condition)
            runs[f"{label}/{condition}"] = result
    return {
        "runs": runs,
        "table": compare_table(runs, ks),
        "missing_table": missing_table(runs, ks) if missing_rate > 0 else "",
        "modalities": mods,
        "trials": trials,
        "test_size": test_size,
        "missing_rate": missing_rate,
        "seed": seed,
    }


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _training_data(run: Mapping[str, Any]) -> str:
    if run["condition"] == "full":
        return "full"
    fraction = np.mean([t["train_missing_fraction"] for t in run["trials"]])
    return f"{100 * run['train_missing_rate']:.0f}% dropped ({100 * fraction:.0f}% absent)"


def compare_table(runs: Mapping[str, Mapping[str, Any]], ks: Sequence[int] = DEFAULT_KS) -> str:
    """One row per (loss, training data): recall@K mean ± std over trials and the
    training time per trial."""
    header = ["Loss", "Training data", "Scoring", *[f"@{k}" for k in ks], "Train s/trial"]
    lines = [_row(header), _row(["---"] * len(header))]
    for run in runs.values():
        t = run["train_seconds"]
        cells = [format_cell(run["recall"][str(k)]) for k in ks]
        lines.append(
            _row(
                [
                    run["label"],
                    _training_data(run),
                    run["scoring"],
                    *cells,
                    f"{t['mean']:.1f} ± {t['std']:.1f}",
                ]
            )
        )
    return "\n".join(lines)


def missing_table(runs: Mapping[str, Mapping[str, Any]], ks: Sequence[int] = DEFAULT_KS) -> str:
    """Change in mean recall@K (percentage points) from full to missing training data."""
    header = ["Loss", *[f"Δ@{k} (pp)" for k in ks]]
    lines = [_row(header), _row(["---"] * len(header))]
    for run in runs.values():
        if run["condition"] != "missing":
            continue
        full = runs[f"{run['label']}/full"]
        deltas = [
            100 * (run["recall"][str(k)]["mean"] - full["recall"][str(k)]["mean"]) for k in ks
        ]
        lines.append(_row([run["label"], *[f"{d:+.2f}" for d in deltas]]))
    return "\n".join(lines)

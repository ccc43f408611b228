"""Compare N-modal objectives fairly: the paper's protocol for several losses on the same
features, the same splits and the same training seeds, in one table.

For every loss, :func:`~nmodal.evaluation.protocol.run_protocol` runs ``trials`` trials
(trial ``t``: split seed and training seed ``seed + t``, identical across losses) and
evaluates retrieval on the held-out posts with the loss's scoring rule
(:func:`~nmodal.retrieval.matched_scoring`: Symile's multilinear score for
``symile``, GRAM's volume for ``gram``, the paper's sum of cosines otherwise), or with one
rule for all (``scoring="sum"``). The comparison is one frozen :class:`CompareConfig`: the
losses, the missing rate and the :class:`~nmodal.evaluation.protocol.ProtocolConfig` every
run shares. With ``missing_rate > 0`` every loss is also trained on
training data with that rate of artifacts dropped at random
(:func:`~nmodal.evaluation.missing.drop_artifacts`; test posts untouched) with
``missing="mask"``, and the table shows the change in recall against the full data.

The closed-form baselines ``gcca`` and ``ridge`` (:mod:`nmodal.evaluation.baselines`) are
"losses" too: fitted on the same training posts, scored with the same rule, one row each.

Example:
    >>> protocol = ProtocolConfig(TrainConfig(epochs=3), trials=2, progress=False)
    >>> out = compare_losses(make_synthetic(1500, dim=32), CompareConfig(protocol, ("clip", "symile")))
    >>> [(run["label"], run["scoring"]) for run in out["runs"].values()]
    [('triCLIP', 'sum'), ('triSYMILE', 'symile')]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nmodal.errors import InputError
from nmodal.evaluation.baselines import BASELINE_NAMES
from nmodal.evaluation.protocol import ProtocolConfig, run_protocol
from nmodal.evaluation.sweep import model_label
from nmodal.evaluation.tables import format_cell
from nmodal.features.featureset import FeatureSet
from nmodal.losses import LOSS_NAMES
from nmodal.retrieval import DEFAULT_KS
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


DEFAULT_LOSSES = ("clip", "triplet", "symile", "gram", "anchor")


@dataclass(frozen=True)
class CompareConfig:
    """Several losses under one protocol: the same features, splits and seeds for each.

    ``missing_rate > 0`` adds a second training-data condition per loss (that fraction of
    training artifacts dropped, ``missing="mask"``); ``protocol.train_missing_rate`` is set
    by the conditions. ``protocol.scoring == "auto"`` scores each loss with its own rule.
    """

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    losses: Sequence[str | Mapping[str, Any]] = DEFAULT_LOSSES
    missing_rate: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "losses", tuple(self.losses))  # frozen: normalise once
        if not 0 <= self.missing_rate < 1:
            raise InputError(f"missing rate must be in [0, 1), got {self.missing_rate}")


def compare_losses(
    fs: FeatureSet, config: CompareConfig | None = None, groups: np.ndarray | None = None
) -> dict[str, Any]:
    """Run the protocol for each loss (and each training-data condition); returns
    ``{"runs": {key: protocol result + label/loss/condition}, "table": Markdown, ...}``.

    ``groups`` (one id per post of ``fs``) keeps whole groups on one side of every split."""
    config = config or CompareConfig()
    protocol, missing_rate = config.protocol, config.missing_rate
    specs = [_spec(loss) for loss in config.losses]
    if not specs:
        raise InputError("no losses to compare")
    base = protocol.train
    mods = list(base.modalities or fs.modalities)
    conditions = [("full", 0.0)] + ([("missing", missing_rate)] if missing_rate > 0 else [])
    runs: dict[str, Any] = {}
    for spec in specs:
        label = _label(spec, len(mods))
        for condition, rate in conditions:
            cfg = base.to_dict()
            cfg.update(loss=spec, modalities=mods)
            if rate > 0:
                cfg["missing"] = "mask"
            run = replace(protocol, train=TrainConfig.from_dict(cfg), train_missing_rate=rate)
            result = run_protocol(fs, run, groups=groups)
            result.update(label=label, loss=spec, condition=condition)
            runs[f"{label}/{condition}"] = result
    ks = protocol.ks
    return {
        "runs": runs,
        "table": compare_table(runs, ks),
        "missing_table": missing_table(runs, ks) if missing_rate > 0 else "",
        "modalities": mods,
        "trials": protocol.trials,
        "test_size": protocol.test_size,
        "missing_rate": missing_rate,
        "seed": protocol.seed,
    }


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _training_data(run: Mapping[str, Any]) -> str:
    if run["condition"] == "full":
        return "full"
    fraction = np.mean([t["train_missing_fraction"] for t in run["trials"]])
    return f"{100 * run['train_missing_rate']:.0f}% dropped ({100 * fraction:.0f}% absent)"


def starts_kept(run: Mapping[str, Any]) -> str:
    """The heads' start of a protocol run's trials: ``"closed form"`` for a baseline, the
    configured ``init`` when it was not ``"auto"``, else what ``init="auto"`` kept, counted
    over trials (``"gcca 5/5"``, ``"random 3/5, gcca 2/5"``)."""
    if str((run.get("loss") or {}).get("name")) in BASELINE_NAMES:
        return "closed form"
    chosen = [(t.get("init_choice") or {}).get("chosen") for t in run.get("trials", [])]
    if not any(chosen):
        return str((run.get("config") or {}).get("init", "random"))
    ordered = sorted(Counter(map(str, chosen)).items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{c} {n}/{len(chosen)}" for c, n in ordered)


def compare_table(runs: Mapping[str, Mapping[str, Any]], ks: Sequence[int] = DEFAULT_KS) -> str:
    """One row per (loss, training data): recall@K mean ± std over trials, the heads' start
    (:func:`starts_kept`) and the training time per trial."""
    header = ["Loss", "Training data", "Scoring", *[f"@{k}" for k in ks], "Start"]
    header.append("Train s/trial")
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
                    starts_kept(run),
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

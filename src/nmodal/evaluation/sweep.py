"""Grids of protocol runs: losses x training-set sizes x epochs x projection dims.

Produces the paper's tables: Table 2 (size x epochs), Table 4 (dims x epochs), Table 5
(quadmodal), Table 3 rows (bimodal evaluation of trimodal models, "bi-tri").

Example:
    >>> out = run_sweep(make_synthetic(3000, dim=64), TrainConfig(), losses=["clip"],
    ...                 epochs=[1, 5], trials=2, progress=False)
    >>> list(out["runs"])[0]
    'triCLIP/all/1/256'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nmodal.evaluation.baselines import BASELINE_LABELS
from nmodal.evaluation.protocol import run_protocol
from nmodal.evaluation.tables import recall_grid_table, recall_table
from nmodal.features.featureset import FeatureSet
from nmodal.retrieval import DEFAULT_KS, matched_scoring
from nmodal.train import TrainConfig

ARITY = {2: "bi", 3: "tri", 4: "quad", 5: "penta"}
LOSS_SUFFIX = {"clip": "CLIP", "triplet": "TRIP"}


def size_label(n: int | None) -> str:
    """100 -> "100", 1000 -> "1k", 50000 -> "50k", None -> "all"."""
    if n is None:
        return "all"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def model_label(loss: str, num_modalities: int, train_size: int | None = None) -> str:
    """The paper's names: ("clip", 3, 10000) -> "triCLIP-10k"; ("triplet", 3) -> "triTRIP";
    closed-form baselines by their own name: ("gcca", 3) -> "GCCA (closed form)"."""
    if loss in BASELINE_LABELS:
        base = BASELINE_LABELS[loss]
        return base if train_size is None else f"{base}-{size_label(train_size)}"
    name = ARITY.get(num_modalities, f"{num_modalities}-modal ") + LOSS_SUFFIX.get(
        loss, loss.upper()
    )
    return name if train_size is None else f"{name}-{size_label(train_size)}"


def _loss_spec(loss: str | Mapping[str, Any]) -> dict[str, Any]:
    return {"name": loss} if isinstance(loss, str) else dict(loss)


def run_sweep(
    fs: FeatureSet,
    base: TrainConfig,
    losses: Sequence[str | Mapping[str, Any]] = ("clip",),
    train_sizes: Sequence[int | None] = (None,),
    epochs: Sequence[int] | None = None,
    dims: Sequence[int] | None = None,
    trials: int = 5,
    test_size: int = 100,
    groups: np.ndarray | None = None,
    eval_modalities: Sequence[Sequence[str]] = (),
    ks: Sequence[int] = DEFAULT_KS,
    queries: str | int = "all",
    seed: int = 0,
    progress: bool = True,
    scoring: str = "auto",
) -> dict[str, Any]:
    """Run :func:`run_protocol` for every combination; returns runs keyed
    ``"<label>/<size>/<epochs>/<dim>"`` plus Markdown tables in the paper's layouts.

    ``scoring="auto"`` evaluates each loss with its own retrieval rule
    (:func:`~nmodal.retrieval.matched_scoring`: Symile's multilinear score,
    GRAM's volume, the sum of cosines otherwise)."""
    mods = list(base.modalities or fs.modalities)
    epoch_list = list(epochs or [base.epochs])
    dim_list = list(dims or [base.head.projection_dim])
    runs: dict[str, Any] = {}
    for loss in losses:
        spec = _loss_spec(loss)
        for size in train_sizes:
            for ep in epoch_list:
                for dim in dim_list:
                    cfg = base.to_dict()
                    cfg.update(loss=spec, epochs=ep, modalities=mods)
                    cfg["head"] = {**cfg["head"], "projection_dim": dim}
                    label = model_label(spec["name"], len(mods))
                    key = f"{label}/{size_label(size)}/{ep}/{dim}"
                    result = run_protocol(
                        fs,
                        TrainConfig.from_dict(cfg),
                        trials=trials,
                        test_size=test_size,
                        train_size=size,
                        groups=groups,
                        eval_modalities=eval_modalities,
                        ks=ks,
                        queries=queries,
                        seed=seed,
                        progress=progress,
                        scoring=matched_scoring(spec["name"]) if scoring == "auto" else scoring,
                    )
                    result.update(label=label, loss=spec, train_size=size, epochs=ep, dim=dim)
                    runs[key] = result
    return {"runs": runs, "tables": sweep_tables(runs, ks)}


def sweep_tables(
    runs: Mapping[str, Mapping[str, Any]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, str]:
    """Markdown tables of a sweep: by size x epochs (Table 2), by dim x epochs (Table 4),
    a flat table with std (Tables 3/5, including restricted "bi-" evaluations)."""
    by_size: dict[str, dict[str, Any]] = {}
    by_dim: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for r in runs.values():
        name = f"{r['label']}-{size_label(r['train_size'])}" if r["train_size"] else r["label"]
        by_size.setdefault(name, {})[str(r["epochs"])] = r["recall"]
        by_dim.setdefault(f"{name} {r['dim']}D", {})[str(r["epochs"])] = r["recall"]
        flat[f"{name} ({r['epochs']} ep, {r['dim']}D)"] = r["recall"]
        for sub, rec in r.get("restricted", {}).items():
            flat[f"bi-{name} on {sub} ({r['epochs']} ep, {r['dim']}D)"] = rec
    return {
        "by_size_and_epochs": recall_grid_table(by_size, ks, group="Epochs"),
        "by_dim_and_epochs": recall_grid_table(by_dim, ks, group="Epochs"),
        "all": recall_table(flat, ks),
    }

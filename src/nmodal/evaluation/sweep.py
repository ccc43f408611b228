"""Grids of protocol runs: losses x training-set sizes x epochs x projection dims.

Produces the paper's tables: Table 2 (size x epochs), Table 4 (dims x epochs), Table 5
(quadmodal), Table 3 rows (bimodal evaluation of trimodal models, "bi-tri").

A sweep is one frozen :class:`SweepConfig`: the grid's axes and the
:class:`~nmodal.evaluation.protocol.ProtocolConfig` every run starts from (an axis left
empty takes the protocol's own value).

Example:
    >>> protocol = ProtocolConfig(TrainConfig(), trials=2, progress=False)
    >>> out = run_sweep(make_synthetic(3000, dim=64), SweepConfig(protocol, epochs=[1, 5]))
    >>> list(out["runs"])
    ['triCLIP/all/1/256', 'triCLIP/all/5/256']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nmodal.evaluation.baselines import BASELINE_LABELS
from nmodal.evaluation.protocol import ProtocolConfig, run_protocol
from nmodal.evaluation.tables import recall_grid_table, recall_table
from nmodal.features.featureset import FeatureSet
from nmodal.retrieval import DEFAULT_KS
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


@dataclass(frozen=True)
class SweepConfig:
    """A grid of protocol runs: losses x training-set sizes x epochs x projection dims.

    ``train_sizes``, ``epochs`` and ``dims`` default to the protocol's own single value
    (``protocol.train_size``, ``protocol.train.epochs``, ``protocol.train.head.projection_dim``).
    With ``protocol.scoring == "auto"`` each loss is evaluated with its own retrieval rule
    (:func:`~nmodal.retrieval.matched_scoring`: Symile's multilinear score, GRAM's volume,
    the sum of cosines otherwise).
    """

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    losses: Sequence[str | Mapping[str, Any]] = ("clip",)
    train_sizes: Sequence[int | None] | None = None
    epochs: Sequence[int] | None = None
    dims: Sequence[int] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once
        set_(self, "losses", tuple(self.losses))
        for name in ("train_sizes", "epochs", "dims"):
            value = getattr(self, name)
            set_(self, name, None if not value else tuple(value))


def run_sweep(
    fs: FeatureSet, config: SweepConfig | None = None, groups: np.ndarray | None = None
) -> dict[str, Any]:
    """Run :func:`run_protocol` for every combination; returns runs keyed
    ``"<label>/<size>/<epochs>/<dim>"`` plus Markdown tables in the paper's layouts.

    ``groups`` (one id per post of ``fs``) keeps whole groups on one side of every split."""
    config = config or SweepConfig()
    protocol = config.protocol
    base = protocol.train
    mods = list(base.modalities or fs.modalities)
    size_list = list(config.train_sizes or [protocol.train_size])
    epoch_list = list(config.epochs or [base.epochs])
    dim_list = list(config.dims or [base.head.projection_dim])
    runs: dict[str, Any] = {}
    for loss in config.losses:
        spec = _loss_spec(loss)
        for size in size_list:
            for ep in epoch_list:
                for dim in dim_list:
                    cfg = base.to_dict()
                    cfg.update(loss=spec, epochs=ep, modalities=mods)
                    cfg["head"] = {**cfg["head"], "projection_dim": dim}
                    label = model_label(spec["name"], len(mods))
                    key = f"{label}/{size_label(size)}/{ep}/{dim}"
                    run = replace(protocol, train=TrainConfig.from_dict(cfg), train_size=size)
                    result = run_protocol(fs, run, groups=groups)
                    result.update(label=label, loss=spec, train_size=size, epochs=ep, dim=dim)
                    runs[key] = result
    return {"runs": runs, "tables": sweep_tables(runs, protocol.ks)}


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

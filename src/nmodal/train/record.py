"""What a trained model folder records beside its weights: the split and the history.

``nmodal train`` and the library write the same folder with :func:`save_trained`:
``config.json`` + ``model.safetensors`` (:meth:`nmodal.model.NModalModel.save`), plus
``split.json`` (the post ids of train / val / test, covered by the model's recorded
hashes) and ``history.json`` (per-epoch figures and timings, not covered). The demo's models
record their ids in ``config.json``'s ``extra`` instead (``extra.demo.test_post_ids`` ...);
:func:`recorded_split` reads either.

Example:
    >>> result = train_model(fs.subset(split.train), TrainConfig(epochs=5))  # doctest: +SKIP
    >>> save_trained(result, "models/m", split, fs.post_ids)  # doctest: +SKIP
    >>> recorded_split("models/m")["test"][:2]  # doctest: +SKIP
    ['chan/17', 'chan/4']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nmodal.train.splits import Split
    from nmodal.train.trainer import TrainResult

SPLIT_FILE = "split.json"
HISTORY_FILE = "history.json"
PARTS = ("train", "val", "test")


def history_record(result: TrainResult) -> dict[str, Any]:
    """``history.json``: per-epoch figures, the best epoch, timings and the start chosen."""
    return {
        "history": result.history,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "seconds": result.seconds,
        "samples_per_second": result.samples_per_second,
        "init_choice": result.init_choice,
    }


def split_record(split: Split, post_ids: Sequence[str] | np.ndarray) -> dict[str, list[str]]:
    """``split.json``: the post ids of each part of ``split`` (positions into ``post_ids``)."""
    ids = np.asarray(post_ids, dtype=str)
    return {part: ids[np.asarray(getattr(split, part), dtype=np.int64)].tolist() for part in PARTS}


def save_trained(
    result: TrainResult,
    path: str | Path,
    split: Split,
    post_ids: Sequence[str] | np.ndarray,
    overwrite: bool = False,
) -> Path:
    """Write ``result``'s model to ``path`` with its ``split.json`` and ``history.json``, in
    one atomic folder: weights, config, split and history appear together or not at all."""
    return result.model.save(
        path,
        overwrite=overwrite,
        extras={SPLIT_FILE: split_record(split, post_ids)},
        notes={HISTORY_FILE: history_record(result)},
    )


def recorded_split(
    model_dir: str | Path, extra: dict[str, Any] | None = None
) -> dict[str, list[str]] | None:
    """The train/val/test post ids recorded with a model: ``split.json`` (:func:`save_trained`)
    or a block of ``config.json``'s ``extra`` holding ``test_post_ids`` (the demo's); None
    when the model records none. ``extra``: the model's ``config.extra`` (default: read from
    ``config.json``)."""
    model_dir = Path(model_dir)
    split_file = model_dir / SPLIT_FILE
    if split_file.is_file():
        data = json.loads(split_file.read_text(encoding="utf-8"))
        return {part: [str(p) for p in data.get(part) or []] for part in PARTS}
    if extra is None:
        config = model_dir / "config.json"
        extra = json.loads(config.read_text(encoding="utf-8")).get("extra") or {}
    for block in (extra.get("split"), *(v for v in extra.values() if isinstance(v, dict))):
        if isinstance(block, dict) and "test_post_ids" in block:
            return {part: [str(p) for p in block.get(f"{part}_post_ids") or []] for part in PARTS}
    return None


def training_overlap(ids: Sequence[str], split: dict[str, list[str]] | None) -> int | None:
    """How many of ``ids`` the model was trained (or validated) on; None when unknown."""
    if split is None:
        return None
    seen = set(split["train"]) | set(split["val"])
    return sum(1 for p in ids if p in seen)

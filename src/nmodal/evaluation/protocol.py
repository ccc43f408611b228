"""The paper's evaluation protocol as one call.

``run_protocol`` repeats, for each of N trials, a fresh split (a held-out test population
of 100 posts by default), a fresh training run and the retrieval evaluation on the test
population; it reports mean and std of R@K over trials. ``eval_modalities`` adds a
restricted evaluation of the same models (the paper's "bi-tri" rows: a trimodal model
evaluated on image-text pairs only). ``scoring`` picks the retrieval scoring rule
(``"sum"``, the paper's, or ``"symile"`` / ``"gram"``, see :mod:`nmodal.retrieval`).
``train_missing_rate`` drops that fraction of the training and validation artifacts at
random (:func:`nmodal.evaluation.missing.drop_artifacts`, seeded per trial) while the test
population stays as it is: set ``TrainConfig(missing="mask")`` to train on what remains.

Example:
    >>> fs = make_synthetic(3000, dim=64)
    >>> out = run_protocol(fs, TrainConfig(epochs=3), trials=2, progress=False)
    >>> sorted(out["recall"])
    ['1', '10', '25', '5']
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from nmodal.errors import InputError
from nmodal.evaluation.baselines import LinearEmbedder, fit_baseline, is_baseline
from nmodal.evaluation.missing import drop_artifacts, missing_fraction
from nmodal.features.embedding import embed_rows
from nmodal.features.featureset import FeatureSet
from nmodal.features.reader import StoreView
from nmodal.model import NModalModel
from nmodal.retrieval import DEFAULT_KS, retrieval_report
from nmodal.train import TrainConfig, split_posts, train_model


def evaluate_model(
    model: NModalModel | LinearEmbedder,
    fs: FeatureSet | StoreView,
    modalities: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    queries: str | int = "all",
    seed: int = 0,
    scoring: str = "sum",
) -> dict[str, Any]:
    """Embed ``fs`` with ``model`` and run :func:`retrieval_report` over ``modalities``
    (default: the model's), on the posts that have at least two of them.

    ``fs`` may be a :class:`StoreView`: only the evaluated posts' features are read, a chunk
    at a time (:func:`nmodal.features.embedding.embed_rows`), and only their embeddings are
    kept; the report is the same as for the same posts in memory."""
    mods = list(modalities or model.modalities)
    unknown = [m for m in mods if m not in model.modalities or m not in fs.modalities]
    if unknown:
        raise InputError(
            f"modality {unknown[0]!r} is not in both the model {model.modalities} "
            f"and the features {fs.modalities}"
        )
    present = np.stack([fs.present[m] for m in mods])
    rows = present.sum(axis=0) >= 2
    sub = fs.subset(np.flatnonzero(rows))
    every = np.arange(sub.num_posts)
    return retrieval_report(
        [embed_rows(model, sub, m, every) for m in mods],
        names=mods,
        ks=ks,
        queries=queries,
        seed=seed,
        present=[sub.present[m] for m in mods],
        scoring=scoring,
    )


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and (population) std of a list of floats, as a JSON-ready dict."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": len(a)}


def run_protocol(
    fs: FeatureSet,
    config: TrainConfig | None = None,
    trials: int = 5,
    test_size: int = 100,
    val_fraction: float = 0.1,
    train_size: int | None = None,
    groups: np.ndarray | None = None,
    eval_modalities: Sequence[Sequence[str]] = (),
    ks: Sequence[int] = DEFAULT_KS,
    queries: str | int = "all",
    seed: int = 0,
    progress: bool = True,
    scoring: str = "sum",
    train_missing_rate: float = 0.0,
) -> dict[str, Any]:
    """N trials of (fresh split, fresh training, retrieval on the held-out population).

    ``train_size`` subsamples the training part (the paper's -100/-1k/-10k/-50k models).
    ``groups`` keeps whole groups (e.g. concepts) on one side of every split. Each trial
    uses seed ``seed + trial`` for the split and the training run.
    """
    config = config or TrainConfig()
    if trials < 1:
        raise InputError(f"trials must be >= 1, got {trials}")
    mods = list(config.modalities or fs.modalities)
    fs = fs.select(mods)
    trial_results: list[dict[str, Any]] = []
    for t in range(trials):
        trial_seed = seed + t
        split = split_posts(
            fs.num_posts,
            test_size=test_size,
            val_fraction=val_fraction,
            seed=trial_seed,
            groups=groups,
        )
        train_idx = split.train
        if train_size is not None:
            if train_size > len(train_idx):
                raise InputError(
                    f"train_size {train_size} exceeds the {len(train_idx)} training posts"
                )
            rng = np.random.default_rng(trial_seed)
            train_idx = np.sort(rng.choice(train_idx, size=train_size, replace=False))
        trial_config = TrainConfig.from_dict({**config.to_dict(), "seed": trial_seed})
        train_fs = fs.subset(train_idx)
        val_fs = fs.subset(split.val) if len(split.val) >= 2 else None
        if train_missing_rate > 0:
            train_fs = drop_artifacts(train_fs, train_missing_rate, seed=trial_seed)
            if val_fs is not None:
                val_fs = drop_artifacts(val_fs, train_missing_rate, seed=trial_seed + 1)
        start = time.perf_counter()
        model: NModalModel | LinearEmbedder
        if is_baseline(str(config.loss.get("name"))):
            # closed form: no epochs, no validation set (k and reg are chosen inside train)
            model = fit_baseline(train_fs, config.loss, mods, seed=trial_seed)
            history: list[dict[str, float]] = []
            best_epoch, train_seconds = 0, float(model.info["seconds"])
        else:
            result = train_model(train_fs, trial_config, val=val_fs, progress=progress)
            model, history = result.model, result.history
            best_epoch, train_seconds = result.best_epoch, result.seconds
        test = fs.subset(split.test)
        report = evaluate_model(
            model, test, ks=ks, queries=queries, seed=trial_seed, scoring=scoring
        )
        restricted = {
            "+".join(sub): evaluate_model(
                model,
                test,
                modalities=sub,
                ks=ks,
                queries=queries,
                seed=trial_seed,
                scoring=scoring,
            )
            for sub in eval_modalities
        }
        trial_results.append(
            {
                "trial": t,
                "seed": trial_seed,
                "sizes": {"train": len(train_idx), "val": len(split.val), "test": len(split.test)},
                "train_missing_fraction": missing_fraction(train_fs),
                "report": report,
                "restricted": restricted,
                "history": history,
                "best_epoch": best_epoch,
                "baseline": model.info if isinstance(model, LinearEmbedder) else None,
                "train_seconds": train_seconds,
                "seconds": time.perf_counter() - start,
            }
        )

    def agg(get: Any) -> dict[str, dict[str, float]]:
        return {str(k): summarize([get(tr)[str(k)] for tr in trial_results]) for k in ks}

    return {
        "modalities": mods,
        "config": config.to_dict(),
        "trials": trial_results,
        "num_trials": trials,
        "test_size": test_size,
        "train_size": train_size,
        "scoring": scoring,
        "train_missing_rate": train_missing_rate,
        "recall": agg(lambda tr: tr["report"]["recall"]),
        "restricted": {
            name: agg(lambda tr, name=name: tr["restricted"][name]["recall"])
            for name in trial_results[0]["restricted"]
        },
        "train_seconds": summarize([tr["train_seconds"] for tr in trial_results]),
    }

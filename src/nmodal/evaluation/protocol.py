"""The paper's evaluation protocol as one call.

``run_protocol`` repeats, for each of N trials, a fresh split (a held-out test population
of 100 posts by default), a fresh training run and the retrieval evaluation on the test
population; it reports mean and std of R@K over trials. Everything it does is one frozen
:class:`ProtocolConfig` (the training run's :class:`~nmodal.train.TrainConfig` included),
built once by the caller (``nmodal protocol`` / ``nmodal compare``:
``nmodal.cli._common.protocol_config_from_args``) and shared by the sweep and the loss
comparison, which vary it with :func:`dataclasses.replace`.

``eval_modalities`` adds a restricted evaluation of the same models (the paper's "bi-tri"
rows: a trimodal model evaluated on image-text pairs only). ``scoring`` picks the retrieval
scoring rule (``"auto"``, the default: the rule matching the loss, see
:func:`~nmodal.retrieval.matched_scoring`; or ``"sum"``, the paper's, ``"symile"``,
``"gram"``, see :mod:`nmodal.retrieval`). ``train_missing_rate`` drops that fraction of the
training and validation artifacts at random (:func:`nmodal.evaluation.missing.drop_artifacts`,
seeded per trial) while the test population stays as it is: set
``TrainConfig(missing="mask")`` to train on what remains.

Example:
    >>> fs = make_synthetic(3000, dim=64)
    >>> config = ProtocolConfig(TrainConfig(epochs=3), trials=2, progress=False)
    >>> out = run_protocol(fs, config)
    >>> sorted(out["recall"])
    ['1', '10', '25', '5']
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmodal.errors import InputError
from nmodal.evaluation.baselines import LinearEmbedder, fit_baseline, is_baseline
from nmodal.evaluation.missing import drop_artifacts, missing_fraction
from nmodal.features.embedding import embed_rows
from nmodal.features.featureset import FeatureSet
from nmodal.features.reader import StoreView
from nmodal.model import NModalModel
from nmodal.retrieval import DEFAULT_KS, SCORINGS, matched_scoring, retrieval_report
from nmodal.train import TrainConfig, split_trainable, train_model


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


@dataclass(frozen=True)
class ProtocolConfig:
    """One run of the protocol: the training run and how each trial splits and evaluates.

    Sequences are stored as tuples (the config is frozen and hashable field by field except
    ``train``); invalid settings raise :class:`InputError` when the config is built.
    """

    #: the training run of every trial (its ``seed`` is replaced by ``seed + trial``)
    train: TrainConfig = field(default_factory=TrainConfig)
    trials: int = 5
    #: held-out test population per trial, in posts
    test_size: int = 100
    #: fraction of the remaining posts used for validation
    val_fraction: float = 0.1
    #: subsample the training part to this many posts (the paper's -100/-1k/-10k models)
    train_size: int | None = None
    #: also evaluate on these modality subsets only (the paper's "bi-tri" rows)
    eval_modalities: Sequence[Sequence[str]] = ()
    ks: Sequence[int] = DEFAULT_KS
    #: ``"all"`` (every artifact once) or a number of random queries
    queries: str | int = "all"
    #: trial ``t`` uses seed ``seed + t`` for its split and its training run
    seed: int = 0
    #: ``"auto"`` (the loss's own rule) or one of :data:`nmodal.retrieval.SCORINGS`
    scoring: str = "auto"
    #: fraction of training/validation artifacts dropped at random (test posts untouched)
    train_missing_rate: float = 0.0
    progress: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once
        set_(self, "eval_modalities", tuple(tuple(sub) for sub in self.eval_modalities))
        set_(self, "ks", tuple(int(k) for k in self.ks))
        if self.trials < 1:
            raise InputError(f"trials must be >= 1, got {self.trials}")
        if self.scoring != "auto" and self.scoring not in SCORINGS:
            raise InputError(
                f"unknown scoring {self.scoring!r}; use auto or one of {list(SCORINGS)}"
            )
        if not 0 <= self.train_missing_rate < 1:
            raise InputError(f"missing rate must be in [0, 1), got {self.train_missing_rate}")

    @property
    def scoring_rule(self) -> str:
        """The rule retrieval uses: ``scoring``, or the training loss's own for ``"auto"``."""
        if self.scoring == "auto":
            return matched_scoring(str(self.train.loss.get("name")))
        return self.scoring


def run_protocol(
    fs: FeatureSet,
    config: ProtocolConfig | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """N trials of (fresh split, fresh training, retrieval on the held-out population).

    ``groups`` (one id per post of ``fs``) keeps whole groups (e.g. concepts) on one side
    of every split.
    """
    config = config or ProtocolConfig()
    train_config, ks, scoring = config.train, config.ks, config.scoring_rule
    mods = list(train_config.modalities or fs.modalities)
    fs = fs.select(mods)
    trial_results = [_run_trial(fs, config, t, mods, scoring, groups) for t in range(config.trials)]

    def agg(get: Any) -> dict[str, dict[str, float]]:
        return {str(k): summarize([get(tr)[str(k)] for tr in trial_results]) for k in ks}

    return {
        "modalities": mods,
        "config": train_config.to_dict(),
        "trials": trial_results,
        "num_trials": config.trials,
        "test_size": config.test_size,
        "train_size": config.train_size,
        "scoring": scoring,
        "train_missing_rate": config.train_missing_rate,
        "recall": agg(lambda tr: tr["report"]["recall"]),
        "restricted": {
            name: agg(lambda tr, name=name: tr["restricted"][name]["recall"])
            for name in trial_results[0]["restricted"]
        },
        "train_seconds": summarize([tr["train_seconds"] for tr in trial_results]),
    }


def _run_trial(
    fs: FeatureSet,
    config: ProtocolConfig,
    t: int,
    mods: list[str],
    scoring: str,
    groups: np.ndarray | None,
) -> dict[str, Any]:
    """Trial ``t``: split with seed ``seed + t``, train (or fit a baseline), evaluate."""
    trial_seed = config.seed + t
    # among the posts with two of the modalities (all with missing="drop"): the others can
    # be neither trained on nor queried; on a complete store this is split_posts' split
    split, _ = split_trainable(
        {m: fs.present[m] for m in mods},
        mods,
        config.train.missing,
        test_size=config.test_size,
        val_fraction=config.val_fraction,
        seed=trial_seed,
        groups=groups,
    )
    train_idx = split.train
    if config.train_size is not None:
        if config.train_size > len(train_idx):
            raise InputError(
                f"train_size {config.train_size} exceeds the {len(train_idx)} training posts"
            )
        rng = np.random.default_rng(trial_seed)
        train_idx = np.sort(rng.choice(train_idx, size=config.train_size, replace=False))
    trial_config = TrainConfig.from_dict({**config.train.to_dict(), "seed": trial_seed})
    train_fs = fs.subset(train_idx)
    val_fs = fs.subset(split.val) if len(split.val) >= 2 else None
    if config.train_missing_rate > 0:
        train_fs = drop_artifacts(train_fs, config.train_missing_rate, seed=trial_seed)
        if val_fs is not None:
            val_fs = drop_artifacts(val_fs, config.train_missing_rate, seed=trial_seed + 1)
    start = time.perf_counter()
    model: NModalModel | LinearEmbedder
    if is_baseline(str(config.train.loss.get("name"))):
        # closed form: no epochs, no validation set (k and reg are chosen inside train)
        model = fit_baseline(train_fs, config.train.loss, mods, seed=trial_seed)
        history: list[dict[str, float]] = []
        best_epoch, train_seconds = 0, float(model.info["seconds"])
        init_choice = None
    else:
        train_groups = groups[train_idx] if groups is not None else None  # the auto start's
        result = train_model(
            train_fs, trial_config, val=val_fs, progress=config.progress, groups=train_groups
        )
        model, history, init_choice = result.model, result.history, result.init_choice
        best_epoch, train_seconds = result.best_epoch, result.seconds
    test = fs.subset(split.test)
    report = evaluate_model(
        model, test, ks=config.ks, queries=config.queries, seed=trial_seed, scoring=scoring
    )
    restricted = {
        "+".join(sub): evaluate_model(
            model, test, sub, ks=config.ks, queries=config.queries, seed=trial_seed,
            scoring=scoring,
        )
        for sub in config.eval_modalities
    }  # fmt: skip
    return {
        "trial": t,
        "seed": trial_seed,
        "sizes": {"train": len(train_idx), "val": len(split.val), "test": len(split.test)},
        "train_missing_fraction": missing_fraction(train_fs),
        "report": report,
        "restricted": restricted,
        "history": history,
        "best_epoch": best_epoch,
        "init_choice": init_choice,  # init="auto": the start kept and the candidates' scores
        "baseline": model.info if isinstance(model, LinearEmbedder) else None,
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
    }

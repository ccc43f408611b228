"""Closed-form baselines for N-modal retrieval: generalised CCA and ridge regression.

They are fitted on the same training posts as the trained heads and scored with the same
retrieval rule, so a table can show what a linear method reaches without training (the
way classifier tables show majority and random baselines). Both are first-class "losses"
of :func:`~nmodal.evaluation.protocol.run_protocol`, ``compare`` and ``protocol``:
``{"name": "gcca"}`` and ``{"name": "ridge"}``.

* **GCCA** (MAXVAR generalised CCA, Carroll 1968), regularised: one shared ``k``-d space
  that every modality maps into linearly (maths: :mod:`nmodal.train.closed_form`).
* **Ridge**: every modality is regressed onto the centred features of an anchor modality
  (default: the first); the anchor maps to itself (centred).

``k`` and ``reg`` are chosen inside the training data: a held-out fifth of the training
posts (``select_fraction``) scores every grid point by post-retrieval recall (mean of
R@1/5/10, the protocol's rule), and the winner is refitted on all training posts.

Example:
    >>> fs = make_synthetic(600, dim=32)
    >>> model = fit_baseline(fs, {"name": "gcca"})
    >>> model.embed({m: fs.features[m][:4] for m in model.modalities})["text"].shape[0]
    4
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmodal.errors import InputError
from nmodal.features.featureset import FeatureSet
from nmodal.retrieval import post_retrieval_recall
from nmodal.train.closed_form import SVD, centred_svds, gcca_fit, ridge_fit

BASELINE_NAMES = ("gcca", "ridge")
BASELINE_LABELS = {"gcca": "GCCA (closed form)", "ridge": "ridge (closed form)"}
DEFAULT_DIMS = (32, 64, 128, 256)
DEFAULT_REGS = (1e-3, 1e-2, 1e-1, 1.0)
SELECT_FRACTION = 0.2  # training posts held out to choose k and reg


def is_baseline(name: str) -> bool:
    """Whether ``name`` is a closed-form baseline rather than a trainable loss."""
    return name in BASELINE_NAMES


@dataclass
class LinearEmbedder:
    """Per-modality affine maps ``z = (x - mean) @ weight``, L2-normalised: the fitted
    baseline, with the :meth:`embed` interface of :class:`~nmodal.model.NModalModel`."""

    modalities: list[str]
    means: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    def embed(
        self, features: Mapping[str, np.ndarray], normalize: bool = True
    ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for m, x in features.items():
            z = (np.asarray(x, dtype=np.float64) - self.means[m]) @ self.weights[m]
            if normalize:
                z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
            out[m] = z.astype(np.float32)
        return out


def _centred(fs: FeatureSet, mods: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, SVD]]:
    return centred_svds({m: fs.features[m] for m in mods})


def _fit(
    name: str,
    fs: FeatureSet,
    decomposed: tuple[dict[str, np.ndarray], dict[str, Any]],
    dim: int,
    reg: float,
    anchor: str,
) -> LinearEmbedder:
    means, svds = decomposed
    mods = list(svds)
    if name == "gcca":
        weights, evals = gcca_fit(svds, dim, reg)
        info: dict[str, Any] = {"dim": int(evals.size), "reg": reg}
    else:
        targets = fs.features[anchor].astype(np.float64) - means[anchor]
        weights = ridge_fit(svds, targets, anchor, reg)
        info = {"reg": reg, "anchor": anchor}
    return LinearEmbedder(list(mods), means, weights, info)


def _score(model: LinearEmbedder, fs: FeatureSet) -> float:
    emb = model.embed({m: fs.features[m] for m in model.modalities})
    recall = post_retrieval_recall([emb[m] for m in model.modalities], ks=(1, 5, 10))
    return float(np.mean(list(recall.values())))


def fit_baseline(
    train: FeatureSet,
    spec: Mapping[str, Any],
    modalities: Sequence[str] | None = None,
    seed: int = 0,
) -> LinearEmbedder:
    """Fit the baseline ``spec`` (``{"name": "gcca" | "ridge", ...}``) on the training
    posts having every modality.

    Options: ``dims`` (GCCA grid of k, default 32/64/128/256), ``regs`` (grid of the
    relative regulariser, default 1e-3..1), ``dim``/``reg`` (fix one value), ``anchor``
    (ridge's target modality, default the first). Grid points are scored on a held-out
    ``select_fraction`` (0.2) of the training posts; the winner is refitted on all of them.
    """
    name = str(spec.get("name"))
    if not is_baseline(name):
        raise InputError(f"unknown baseline {name!r}; known: {list(BASELINE_NAMES)}")
    unknown = set(spec) - {"name", "dims", "regs", "dim", "reg", "anchor", "select_fraction"}
    if unknown:
        raise InputError(f"unknown {name} option(s) {sorted(unknown)}")
    mods = list(modalities or train.modalities)
    if len(mods) < 2:
        raise InputError(f"a baseline needs at least two modalities, got {mods}")
    anchor = str(spec.get("anchor", mods[0]))
    if anchor not in mods:
        raise InputError(f"ridge anchor {anchor!r} is not one of the modalities {mods}")
    complete = train.select(mods).complete(mods)
    fs = train.select(mods).subset(np.flatnonzero(complete))
    if fs.num_posts < 10:
        raise InputError(f"only {fs.num_posts} training posts have all of {mods}; need 10")
    dims = [int(spec["dim"])] if "dim" in spec else list(spec.get("dims", DEFAULT_DIMS))
    regs = [float(spec["reg"])] if "reg" in spec else list(spec.get("regs", DEFAULT_REGS))
    if name == "ridge":
        dims = [0]
    if any(d < 1 for d in dims if name == "gcca") or any(r <= 0 for r in regs):
        raise InputError(f"{name}: dims must be >= 1 and regs > 0, got {dims} and {regs}")
    start = time.perf_counter()
    scores: dict[str, float] = {}
    if len(dims) * len(regs) > 1:
        fraction = float(spec.get("select_fraction", SELECT_FRACTION))
        order = np.random.default_rng(seed).permutation(fs.num_posts)
        n_val = max(2, round(fraction * fs.num_posts))
        inner, held = fs.subset(np.sort(order[n_val:])), fs.subset(np.sort(order[:n_val]))
        best = (-1.0, dims[0], regs[0])
        decomposed = _centred(inner, mods)  # one SVD per modality for the whole grid
        for d in dims:
            for r in regs:
                score = _score(_fit(name, inner, decomposed, d, r, anchor), held)
                scores[f"dim={d},reg={r:g}" if name == "gcca" else f"reg={r:g}"] = score
                if score > best[0]:
                    best = (score, d, r)
        _, dim, reg = best
    else:
        dim, reg = dims[0], regs[0]
    model = _fit(name, fs, _centred(fs, mods), dim, reg, anchor)
    model.info.update(selection=scores, seconds=time.perf_counter() - start)
    return model

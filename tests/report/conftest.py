"""A small but complete results dict, as ``nmodal demo`` writes it, for the report tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from nmodal.classify import cross_validate
from nmodal.report import ReportFiles, render_report

KS = (1, 5, 10, 25)


def _recall(rng: np.random.Generator, base: float) -> dict[str, dict[str, float]]:
    out = {}
    for i, k in enumerate(KS):
        out[str(k)] = {"mean": min(1.0, base + 0.15 * i), "std": float(rng.uniform(0.005, 0.03))}
    return out


def _run(
    rng: np.random.Generator, family: str, epochs: int, dim: int, main: bool
) -> dict[str, Any]:
    mods = ["text", "image", "video"] + (["audio"] if family.startswith("quad") else [])
    base = {"triCLIP": 0.40, "triTRIP": 0.25, "quadCLIP": 0.30}[family] * (epochs / 10) ** 0.3
    ks = list(range(1, 101))
    mean = np.minimum(1.0, base + (1 - base) * (1 - np.exp(-np.asarray(ks) / 20)))
    run: dict[str, Any] = {
        "name": family,
        "family": family,
        "modalities": mods,
        "epochs": epochs,
        "dim": dim,
        "main": main,
        "trials": 2,
        "test_size": 100,
        "train_posts": 400,
        "recall": _recall(rng, base),
        "curve": {"ks": ks, "mean": mean.tolist(), "std": (0.02 * np.ones(100)).tolist()},
    }
    if main:
        run["by_query_modality"] = {m: _recall(rng, base - 0.05) for m in mods}
        if family.startswith("tri"):
            run["restricted"] = {"text+image": _recall(rng, base / 2)}
        run["histories"] = [
            [
                {"epoch": e, "train_loss": 3 * np.exp(-e / 5) + t, "val_loss": 3.2 * np.exp(-e / 6)}
                for e in range(1, epochs + 1)
            ]
            for t in range(2)
        ]
    return run


@pytest.fixture(scope="session")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """(results, out_dir): thumbnails live under out_dir/thumbs, referenced relatively."""
    out = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    runs = []
    for family in ("triCLIP", "triTRIP", "quadCLIP"):
        for epochs in (1, 10):
            runs.append(_run(rng, family, epochs, 256, main=epochs == 10))
    runs += [_run(rng, "triCLIP", 10, d, main=False) for d in (64, 512)]

    thumbs = out / "thumbs"
    thumbs.mkdir()
    for i in range(6):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        Image.new("RGB", (96, 96), colour).save(thumbs / f"p{i}.png")
    examples = [
        {
            "model": "triCLIP",
            "query": {
                "post_id": "p0",
                "modality": "text",
                "text": "Смотрите: сова на красном фоне",
            },
            "hits": [
                {
                    "rank": r + 1,
                    "post_id": f"p{r}",
                    "score": 1.5 - 0.1 * r,
                    "correct": r == 0,
                    "text": f"post {r} | text",
                    "thumbnail": f"thumbs/p{r}.png",
                }
                for r in range(5)
            ],
        },
        {
            "model": "triCLIP",
            "query": {"post_id": "p5", "modality": "image", "thumbnail": "thumbs/p5.png"},
            "hits": [
                {
                    "rank": 1,
                    "post_id": "p4",
                    "score": 0.9,
                    "correct": False,
                    "thumbnail": "thumbs/p4.png",
                }
            ],
            "caption": "image query",
        },
    ]

    # classifier results from the real cross-validation code, on separable toy embeddings
    x = rng.normal(size=(90, 8))
    y_stance = np.where(x[:, 0] > 0, "living", "made")
    y_account = np.array(["a", "b", "c"])[np.argmax(x[:, :3], axis=1)]
    groups = np.arange(90) // 3
    classifiers = {
        "stance": {
            "title": "Stance (living vs made)",
            "caption": "toy data",
            "results": {
                "Random Forest": cross_validate(x, y_stance, groups, classifier="rf", folds=3),
                "Naive Bayes": cross_validate(x, y_stance, groups, classifier="nb", folds=3),
            },
        },
        "provenance": {
            "title": "Account provenance",
            "results": {"KNN": cross_validate(x, y_account, groups, classifier="knn", folds=3)},
        },
    }
    points = rng.normal(size=(60, 2))
    res = {
        "title": "nmodal demo report",
        "subtitle": "test fixture <b>escaped</b>",
        "summary": {"posts": 500, "encoders": {"text": "e5-small"}, "seconds": 12.345},
        "warnings": ["a warning & an ampersand"],
        "notes": ["Image queries are easy <here>."],
        "population": 100,
        "retrieval": {r["name"]: r["recall"] for r in runs if r["main"]},
        "runs": runs,
        "embedding_map": {
            "points": points.tolist(),
            "modality": (["text", "image", "video"] * 20),
            "account": [f"acct{i % 4}" for i in range(60)],
            "caption": "t-SNE of the test population",
        },
        "examples": examples,
        "classifiers": classifiers,
        "timings": {"corpus": 10.0, "extract": 100.5},
    }
    return res, out


@pytest.fixture(scope="session")
def rendered(results: tuple[dict[str, Any], Path]) -> ReportFiles:
    res, out = results
    return render_report(res, out)

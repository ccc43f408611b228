"""The benchmarks' synthetic store writer: a readable, deterministic float16 store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nmodal.features import StoreReader
from nmodal.features.synthetic import write_synthetic_store


def test_synthetic_store_is_readable_deterministic_and_linked(tmp_path: Path) -> None:
    dims = (16, 24)
    a = write_synthetic_store(tmp_path / "a", 2500, ("text", "image"), dims, shard_size=1024)
    b = write_synthetic_store(tmp_path / "b", 2500, ("text", "image"), dims, shard_size=1024)
    sha = [[s["sha256"] for s in json.loads((p / "manifest.json").read_text())["shards"]]
           for p in (a, b)]  # fmt: skip
    assert sha[0] == sha[1] and len(set(sha[0])) == 3  # same seed, same bytes; shards differ
    fs = StoreReader(a).read(dtype=None)
    assert fs.num_posts == 2500 and fs.features["image"].dtype == np.float16
    assert fs.dims() == {"text": 16, "image": 24} and all(p.all() for p in fs.present.values())
    assert fs.post_ids[-1] == "syn-00002499"
    # the modalities share the latent concept: a linear map from one predicts the other
    # better than it predicts another post's (the control)
    x, y = (fs.features[m].astype(np.float64) for m in ("text", "image"))
    coef, *_ = np.linalg.lstsq(x[:2000], y[:2000], rcond=None)

    def residual(target: np.ndarray) -> float:
        return float(((x[2000:] @ coef - target) ** 2).mean() / target.var(axis=0).mean())

    assert residual(y[2000:]) < 0.9 < 1.0 < residual(y[2000:][::-1])

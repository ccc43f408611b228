"""`evaluate` reads only the posts it scores, chunk by chunk, with the in-memory results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nmodal.cli import main
from nmodal.evaluation import evaluate_model
from nmodal.features import StoreReader, make_synthetic, read_featureset, write_featureset
from nmodal.features.embedding import EMBED_CHUNK
from nmodal.model import HeadConfig, ModelConfig, NModalModel

DIMS = (8, 12, 10)
POSTS = EMBED_CHUNK + 1500  # two embedding chunks


@pytest.fixture(scope="module")
def store_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evaldisk")
    fs = make_synthetic(POSTS, dim=DIMS, missing_rate=0.2, seed=2, dtype=np.float16)
    store = write_featureset(root / "store", fs, shard_size=512)
    torch.manual_seed(0)
    config = ModelConfig(
        modalities=fs.modalities,
        input_dims=fs.dims(),
        head=HeadConfig(projection_dim=16),
    )
    model = NModalModel(config)
    order = np.random.default_rng(0).permutation(fs.post_ids)
    # held-out posts from a few shards only: the others must never be read
    test = sorted(p for p in order if int(p.split("-")[-1]) < 1500)[::3]
    split = {"train": [p for p in order if p not in set(test)], "val": [], "test": test}
    model.save(root / "model", extras={"split.json": split})
    return store, root / "model"


def test_view_report_equals_memory_report(store_and_model: tuple[Path, Path]) -> None:
    store, model_dir = store_and_model
    model = NModalModel.load(model_dir)
    rows = np.arange(0, POSTS, 1)  # every post: embeddings span two chunks
    memory = read_featureset(store).subset(rows)
    view = StoreReader(store).view(None, rows)
    for scoring in ("sum", "symile"):
        a = evaluate_model(model, memory, queries=400, seed=1, scoring=scoring)
        b = evaluate_model(model, view, queries=400, seed=1, scoring=scoring)
        assert a == b
    assert a["population"] > EMBED_CHUNK


def test_cli_reads_only_the_held_out_posts_shards(
    store_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    store = shutil.copytree(store_and_model[0], tmp_path / "store")
    model_dir = store_and_model[1]
    split = json.loads((model_dir / "split.json").read_text())
    # an independent in-memory evaluation of the held-out posts
    fs = read_featureset(store)
    pos = {p: i for i, p in enumerate(fs.post_ids.tolist())}
    expected = evaluate_model(
        NModalModel.load(model_dir), fs.subset([pos[p] for p in split["test"]])
    )
    # shards holding no held-out post are never opened: remove their feature files
    reader = StoreReader(store)
    wanted = {pos[p] for p in split["test"]}
    removed = 0
    for shard in reader.shards:
        if not wanted & set(range(shard.start, shard.start + shard.num_posts)):
            shard.file.unlink()
            removed += 1
    assert removed >= 10
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(model_dir), "--store", str(store), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["population"] == expected["population"] > 300
    for key in ("recall", "by_query_modality", "by_pair", "mean_rank", "num_queries"):
        assert report[key] == expected[key]

"""`classify` and `predict` embed a store on disk chunk by chunk, with the in-memory rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nmodal.classify import embedding_rows, label_rows, make_classifier, save_classifier
from nmodal.classify.predict import label_table, predict_store
from nmodal.classify.run import ClassifyConfig, model_fingerprint, read_rows
from nmodal.features import StoreReader, make_synthetic, read_featureset, write_featureset
from nmodal.features.embedding import EMBED_CHUNK
from nmodal.model import HeadConfig, ModelConfig, NModalModel

POSTS = EMBED_CHUNK + 700  # text's present artifacts span two embedding chunks


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("classifydisk")
    fs = make_synthetic(POSTS, ("text", "image"), (6, 10), missing_rate=0.05, seed=4,
                        dtype=np.float16)  # fmt: skip
    store = write_featureset(root / "store", fs, shard_size=1024)
    torch.manual_seed(0)
    config = ModelConfig(["text", "image"], fs.dims(), head=HeadConfig(projection_dim=8))
    NModalModel(config).save(root / "model")
    rng = np.random.default_rng(1)
    posts = pd.DataFrame(
        {
            "post_id": fs.post_ids,
            "stance": np.where(rng.random(POSTS) < 0.1, None, rng.choice(["a", "b"], POSTS)),
        }
    )
    posts.to_parquet(root / "posts.parquet")
    return store, root / "model", posts


@pytest.mark.parametrize("fusion", [None, "mean"])
def test_rows_from_disk_equal_rows_in_memory(setup, fusion: str | None) -> None:
    store, model_dir, _ = setup
    model = NModalModel.load(model_dir)
    memory = embedding_rows(model, read_featureset(store), fusion=fusion)  # float32 in memory
    disk = embedding_rows(model, StoreReader(store).view(), fusion=fusion)  # float16 chunks
    assert len(memory) > EMBED_CHUNK
    np.testing.assert_array_equal(memory.X, disk.X)
    np.testing.assert_array_equal(memory.post_ids, disk.post_ids)
    np.testing.assert_array_equal(memory.modality, disk.modality)


def test_classify_reads_the_rows_the_memory_path_labels(setup, tmp_path: Path) -> None:
    store, model_dir, posts = setup
    config = ClassifyConfig(model_dir, store, tmp_path / "posts.parquet", "stance", tmp_path)
    posts.to_parquet(tmp_path / "posts.parquet")
    got = read_rows(config).data
    model = NModalModel.load(model_dir)
    want = label_rows(embedding_rows(model, read_featureset(store)), posts, "stance")
    np.testing.assert_array_equal(got.X, want.X)
    np.testing.assert_array_equal(got.y, want.y)
    np.testing.assert_array_equal(got.groups, want.groups)
    assert want.dropped["no_label"] > 0  # artifacts (rows) of unlabelled posts
    # classify counts the unlabelled posts instead (their artifacts are never read)
    assert got.dropped == {"unknown_post": 0, "no_label": int(posts["stance"].isna().sum())}
    assert got.dropped_unit == "posts"


def test_predict_reads_only_the_asked_posts(setup, tmp_path: Path) -> None:
    store = Path(shutil.copytree(setup[0], tmp_path / "store"))
    model_dir = setup[1]
    model = NModalModel.load(model_dir)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 8)).astype(np.float32)
    clf = make_classifier("logreg").fit(X, np.where(X[:, 0] > 0, "pos", "neg"))
    meta = {"model_fingerprint": model_fingerprint(model_dir), "modalities": ["text", "image"],
            "fusion": None}  # fmt: skip
    save_classifier(clf, tmp_path / "clf", metadata=meta)
    fs = read_featureset(store)
    asked = [fs.post_ids[i] for i in (5, 700, 3, 1500)]  # in the first two shards
    pos = {p: i for i, p in enumerate(fs.post_ids.tolist())}
    want = label_table(clf, embedding_rows(model, fs.subset([pos[p] for p in asked])))
    for shard in StoreReader(store).shards[2:]:
        shard.file.unlink()  # never opened: only the asked posts' shards are read
    got = predict_store(tmp_path / "clf", model_dir, store, asked)
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("fusion", [None, "mean"])
def test_classify_embeds_only_the_labelled_posts(setup, tmp_path: Path, fusion) -> None:
    """Labelled first: the rows equal the embed-everything path's labelled rows (X bit for
    bit, labels, groups, order), with the shards holding no labelled post deleted."""
    store = Path(shutil.copytree(setup[0], tmp_path / "store"))
    model_dir, posts = setup[1], setup[2]
    reader = StoreReader(store)
    labelled_shards = (1, 4)  # posts elsewhere: no label, or not in the posts table
    inside = np.zeros(reader.num_posts, dtype=bool)
    for k in labelled_shards:
        s = reader.shards[k]
        inside[s.start : s.start + s.num_posts] = True
    table = posts.copy()
    table.loc[~inside, "stance"] = None
    table = table[inside | (np.arange(len(table)) % 3 != 0)]  # a third of the others unknown
    table.to_parquet(tmp_path / "posts.parquet")
    model = NModalModel.load(model_dir)
    want = label_rows(embedding_rows(model, read_featureset(store), fusion=fusion), table,
                      "stance")  # fmt: skip
    for k, shard in enumerate(reader.shards):
        if k not in labelled_shards:
            shard.file.unlink()  # unlabelled posts' features are never read
    modality = "fused" if fusion else "all"
    config = ClassifyConfig(model_dir, store, tmp_path / "posts.parquet", "stance", tmp_path,
                            modality=modality)  # fmt: skip
    got = read_rows(config).data
    assert want.dropped["no_label"] > 0 and want.dropped["unknown_post"] > 0
    known = np.isin(reader.post_ids, table["post_id"])
    labelled = np.isin(reader.post_ids, table["post_id"][table["stance"].notna()])
    assert got.dropped == {"unknown_post": int((~known).sum()),
                           "no_label": int((known & ~labelled).sum())}  # fmt: skip
    assert len(got) == len(want) > 0
    np.testing.assert_array_equal(got.X, want.X)
    for name in ("y", "groups", "post_ids", "modality"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert set(got.post_ids) <= set(reader.post_ids[inside])

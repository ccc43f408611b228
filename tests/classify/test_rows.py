"""Rows from a model + store, and their labels, groups and dates from the posts table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nmodal.classify import embedding_rows, label_rows, read_label_mapping, read_posts_table
from nmodal.classify.rows import EmbeddingRows
from nmodal.errors import InputError
from nmodal.features import make_synthetic
from nmodal.model import HeadConfig, ModelConfig, NModalModel


@pytest.fixture(scope="module")
def model_and_store():
    fs = make_synthetic(30, modalities=("text", "image", "video"), dim=12, missing_rate=0.3, seed=0)
    model = NModalModel(
        ModelConfig(modalities=["text", "image", "video"], input_dims=fs.dims(),
                    head=HeadConfig(projection_dim=8))
    )  # fmt: skip
    return model, fs


def test_one_row_per_present_artifact(model_and_store):
    model, fs = model_and_store
    rows = embedding_rows(model, fs)
    assert len(rows) == sum(int(fs.present[m].sum()) for m in fs.modalities)
    for m in fs.modalities:
        sel = rows.modality == m
        assert np.array_equal(rows.post_ids[sel], fs.post_ids[fs.present[m]])
        expected = model.embed({m: fs.features[m][fs.present[m]]})[m]
        np.testing.assert_allclose(rows.X[sel], expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(rows.X, axis=1), 1.0, rtol=1e-5)


def test_fused_row_is_the_mean_of_available_embeddings(model_and_store):
    model, fs = model_and_store
    rows = embedding_rows(model, fs, fusion="mean")
    assert len(rows) == fs.num_posts and set(rows.modality) == {"fused"}
    emb = model.embed(fs.features)  # every row, present or not
    for i, pid in enumerate(fs.post_ids):  # small loop: an independent reference
        avail = [emb[m][i] for m in fs.modalities if fs.present[m][i]]
        np.testing.assert_allclose(
            rows.X[rows.post_ids == pid][0], np.mean(avail, axis=0), rtol=1e-5, atol=1e-6
        )


def test_modality_subset_and_errors(model_and_store):
    model, fs = model_and_store
    rows = embedding_rows(model, fs, modalities=["video"])
    assert set(rows.modality) == {"video"}
    with pytest.raises(InputError, match="no 'audio' head"):
        embedding_rows(model, fs, modalities=["audio"])
    with pytest.raises(InputError, match="unknown fusion"):
        embedding_rows(model, fs, fusion="max")


def _rows() -> EmbeddingRows:
    ids = np.array(["a", "a", "b", "c", "c", "d", "zz"])
    return EmbeddingRows(
        X=np.arange(14, dtype=np.float32).reshape(7, 2),
        post_ids=ids,
        modality=np.array(["text", "image", "text", "text", "image", "text", "text"]),
    )


def _posts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "post_id": ["a", "b", "c", "d"],
            "account": ["acc1", "acc1", "acc2", "acc3"],
            "date": ["2024-01-03", "2024-01-01", None, "2024-01-02"],
            "stance": [1.0, 0.0, 1.0, np.nan],
        }
    )


def test_label_rows_by_post_drops_unlabelled_and_unknown():
    data = label_rows(_rows(), _posts(), "stance")
    assert data.post_ids.tolist() == ["a", "a", "b", "c", "c"]
    assert data.y.tolist() == ["1", "1", "0", "1", "1"]  # NaN-forced floats read as ints
    assert data.groups.tolist() == data.post_ids.tolist()
    assert data.dropped == {"unknown_post": 1, "no_label": 1}
    assert data.times is None


def test_label_rows_by_account_and_time():
    acc = label_rows(_rows(), _posts(), "stance", by="account")
    assert acc.groups.tolist() == ["acc1", "acc1", "acc1", "acc2", "acc2"]
    t = label_rows(_rows(), _posts(), "account", by="time")
    assert t.post_ids.tolist() == ["a", "a", "b", "d"] and t.dropped["no_date"] == 2
    assert t.times is not None and str(t.times[2])[:10] == "2024-01-01"
    assert t.y.tolist() == ["acc1", "acc1", "acc1", "acc3"]
    with pytest.raises(InputError, match="cannot group by account"):
        label_rows(_rows(), _posts(), "account", by="account")
    with pytest.raises(InputError, match="no 'topic' column"):
        label_rows(_rows(), _posts(), "topic")


def test_label_mapping_from_csv_and_json(tmp_path):
    (tmp_path / "m.csv").write_text("account,stance\nacc1,pro-a\nacc2,pro-b\n")
    (tmp_path / "m.json").write_text(json.dumps({"acc1": "pro-a", "acc3": "pro-b"}))
    csv_map = read_label_mapping(tmp_path / "m.csv", "stance")
    assert csv_map == {"acc1": "pro-a", "acc2": "pro-b"}
    data = label_rows(_rows(), _posts(), "stance", mapping=csv_map)
    assert data.y.tolist() == ["pro-a", "pro-a", "pro-a", "pro-b", "pro-b"]
    data = label_rows(_rows(), _posts(), "stance", mapping=read_label_mapping(tmp_path / "m.json"))
    assert data.post_ids.tolist() == ["a", "a", "b", "d"]
    with pytest.raises(InputError, match="not found"):
        read_label_mapping(tmp_path / "nope.csv")


def test_read_posts_table(tmp_path):
    _posts().to_parquet(tmp_path / "posts.parquet")
    assert read_posts_table(tmp_path)["post_id"].tolist() == ["a", "b", "c", "d"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no posts table"):
        read_posts_table(tmp_path / "empty")
    pd.DataFrame({"id": [1]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="no post_id column"):
        read_posts_table(tmp_path / "bad.parquet")
    pd.DataFrame({"post_id": ["x", "x"]}).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(InputError, match="'x' appears more than once"):
        read_posts_table(tmp_path / "dup.csv")

"""``nmodal classify`` and ``nmodal predict`` end to end on a tiny synthetic model + store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nmodal.classify import load_classifier, read_classifier_info
from nmodal.cli import main
from nmodal.features import make_synthetic, write_featureset
from nmodal.model import HeadConfig, ModelConfig, NModalModel

MODALITIES = ("text", "image", "video")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A store whose features carry the stance, a random-init model, and posts.parquet."""
    root = tmp_path_factory.mktemp("classify")
    n = 80
    fs = make_synthetic(n, modalities=MODALITIES, dim=16, missing_rate=0.2, seed=0)
    rng = np.random.default_rng(0)
    accounts = np.array([f"acc{i}" for i in rng.integers(0, 8, size=n)])
    stance = np.where(np.isin(accounts, ["acc0", "acc1", "acc2", "acc3"]), "pro-a", "pro-b")
    shift = 4.0 * rng.standard_normal(16).astype(np.float32)
    for m in MODALITIES:  # stance moves every artifact along one direction
        fs.features[m][(stance == "pro-a") & fs.present[m]] += shift
    write_featureset(root / "store", fs)
    torch.manual_seed(0)
    model = NModalModel(
        ModelConfig(modalities=list(MODALITIES), input_dims=fs.dims(),
                    head=HeadConfig(projection_dim=16))
    )  # fmt: skip
    model.save(root / "model")
    dataset = root / "dataset"
    dataset.mkdir()
    pd.DataFrame(
        {
            "post_id": fs.post_ids,
            "account": accounts,
            "date": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="h"),
            "text": ["a post"] * n,
            "stance": stance,
        }
    ).to_parquet(dataset / "posts.parquet")
    return root, fs, stance


FAST = ["--param", "rf.n_estimators=10", "--param", "mlp.max_epochs=30",
        "--param", "mlp.hidden_sizes=16", "--param", "mlp.lr=0.01"]  # fmt: skip


def _classify(root, out, *extra):
    return main([
        "classify", "--model", str(root / "model"), "--store", str(root / "store"),
        "--posts", str(root / "dataset"), "--out", str(out), *FAST, *extra,
    ])  # fmt: skip


def test_classify_then_predict_from_the_store(workspace, capsys):
    root, fs, stance = workspace
    out = root / "stance"
    rc = _classify(root, out, "--label", "stance", "--classifiers", "nb,rf,logreg")
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| Random Forest |" in printed and str(out / "results.json") in printed
    doc = json.loads((out / "results.json").read_text())
    n_artifacts = sum(int(fs.present[m].sum()) for m in MODALITIES)
    assert doc["data"]["num_rows"] == n_artifacts and doc["data"]["num_groups"] == fs.num_posts
    for name in ("nb", "rf", "logreg"):
        res = doc["results"][name]
        assert res["split"] == "stratified-group-kfold" and res["folds"] == 5
        # labels joined to the right rows: the stance direction is easy to learn
        assert res["accuracy"]["mean"] > 0.85
        assert res["accuracy"]["mean"] > res["baselines"]["majority"]["accuracy"]["mean"] + 0.2
        assert (out / "classifiers" / name / "classifier.json").is_file()
        assert (out / f"confusion-{name}.png").stat().st_size > 0
    assert (out / "roc.png").stat().st_size > 0
    table = (out / "results.md").read_text()
    assert "| Logistic regression |" in table and "Baseline: majority class" in table

    # predict two posts from the store: one line per artifact, probabilities sum to 1
    ids = fs.post_ids[:2].tolist()
    rc = main([
        "predict", "--classifier", str(out / "classifiers" / "logreg"), "--model", str(root / "model"),
        "--store", str(root / "store"), "--posts", ",".join(ids), "--out", str(root / "p.csv"),
    ])  # fmt: skip
    assert rc == 0
    pred = pd.read_csv(root / "p.csv")
    assert set(pred["post_id"]) == set(ids)
    assert len(pred) == sum(int(fs.present[m][:2].sum()) for m in MODALITIES)
    p = pred[["p(pro-a)", "p(pro-b)"]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    truth = dict(zip(fs.post_ids, stance, strict=True))
    assert (pred["label"] == pred["post_id"].map(truth)).mean() >= 0.5
    # the same numbers as the loaded classifier on the model's embeddings
    clf = load_classifier(out / "classifiers" / "logreg")
    model = NModalModel.load(root / "model")
    first = pred.iloc[0]
    i = int(np.flatnonzero(fs.post_ids == first["post_id"])[0])
    emb = model.embed({first["modality"]: fs.features[first["modality"]][i : i + 1]})
    np.testing.assert_allclose(clf.predict_proba(emb[first["modality"]])[0], p[0], rtol=1e-5)


def test_provenance_by_time_with_smote_and_fused_rows(workspace):
    root, fs, _ = workspace
    out = root / "provenance"
    rc = _classify(root, out, "--label", "account", "--by", "time", "--smote",
                   "--modality", "fused", "--classifiers", "knn,mlp", "--folds", "3")  # fmt: skip
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["data"]["num_rows"] == fs.num_posts
    assert doc["data"]["rows_per_modality"] == {"fused": fs.num_posts}
    res = doc["results"]["knn"]
    assert res["split"] == "time" and res["smote"] and len(res["classes"]) == 8
    assert res["baselines"]["chance_accuracy"] == pytest.approx(1 / 8)
    info = read_classifier_info(out / "classifiers" / "mlp")
    assert info["metadata"]["fusion"] == "mean" and info["metadata"]["label"] == "account"
    rc = main(["predict", "--classifier", str(out / "classifiers" / "knn"), "--model",
               str(root / "model"), "--store", str(root / "store"), "--out", str(root / "f.jsonl")])  # fmt: skip
    assert rc == 0
    lines = pd.read_json(root / "f.jsonl", lines=True)
    assert len(lines) == fs.num_posts and set(lines["modality"]) == {"fused"}


@pytest.mark.slow
def test_all_classifiers_by_account_single_modality(workspace):
    root, _, _ = workspace
    out = root / "by-account"
    rc = _classify(root, out, "--label", "stance", "--by", "account", "--modality", "video",
                   "--folds", "4")  # fmt: skip
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["results"]) == {"nb", "rf", "svm", "knn", "logreg", "mlp"}
    assert doc["data"]["num_groups"] == 8
    for res in doc["results"].values():
        assert res["accuracy"]["mean"] > 0.8  # unseen accounts: stance still a direction


def test_user_errors_are_one_line(workspace, capsys):
    root, _, _ = workspace
    out = root / "errors"
    assert _classify(root, out, "--label", "stance", "--classifiers", "xgb") == 1
    assert "unknown ['xgb']" in capsys.readouterr().err
    assert _classify(root, out, "--label", "topic", "--classifiers", "nb") == 1
    assert "no 'topic' column" in capsys.readouterr().err
    out.mkdir()
    (out / "x").write_text("keep")
    assert _classify(root, out, "--label", "stance", "--classifiers", "nb") == 1
    assert "exists" in capsys.readouterr().err and (out / "x").read_text() == "keep"
    # the synthetic store's encoders cannot encode raw text
    assert _classify(root, root / "s2", "--label", "stance", "--classifiers", "nb") == 0
    rc = main(["predict", "--classifier", str(root / "s2" / "classifiers" / "nb"),
               "--model", str(root / "model"), "--text", "hello"])  # fmt: skip
    assert rc == 1
    assert "encoder" in capsys.readouterr().err
    rc = main(["predict", "--classifier", str(root / "s2" / "classifiers" / "nb"),
               "--model", str(root / "model")])  # fmt: skip
    assert rc == 1 and "give either --store" in capsys.readouterr().err

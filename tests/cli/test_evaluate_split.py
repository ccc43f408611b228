"""`nmodal evaluate` uses the held-out posts recorded with a model, and refuses (or labels)
a population holding training posts."""

from __future__ import annotations

import json
import shutil

import pytest

from nmodal.cli import main
from nmodal.features import make_synthetic, write_featureset

COMMON = ["--epochs", "1", "--batch-size", "64", "--dim", "16"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalsplit")
    write_featureset(root / "store", make_synthetic(300, dim=16, latent_dim=8, seed=1))
    assert main(["train", str(root / "store"), "--out", str(root / "m"), *COMMON]) == 0
    return root


def test_held_out_ids_in_config_json(trained, capsys) -> None:
    """A demo-style model: no split.json, the ids in config.json's extra."""
    demo = trained / "demo-model"
    shutil.copytree(trained / "m", demo)
    split = json.loads((demo / "split.json").read_text())
    (demo / "split.json").unlink()
    config = json.loads((demo / "config.json").read_text())
    config.setdefault("extra", {})["demo"] = {f"{k}_post_ids": v for k, v in split.items()}
    config.get("files", {}).pop("split.json", None)  # such a folder never listed one
    (demo / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["evaluate", str(demo), "--store", str(trained / "store")]) == 0
    out = capsys.readouterr().out
    assert f"population {len(split['test'])} posts" in out and "WARNING" not in out


def test_training_posts_refused_then_labelled(trained, capsys) -> None:
    model, store = str(trained / "m"), str(trained / "store")
    capsys.readouterr()
    assert main(["evaluate", model, "--store", store, "--split", "all"]) == 1
    err = capsys.readouterr().err
    assert "were used to train" in err and "--allow-training-posts" in err
    report = trained / "all.json"
    argv = ["evaluate", model, "--store", store, "--split", "all", "--allow-training-posts"]
    assert main([*argv, "--out", str(report)]) == 0
    out = capsys.readouterr().out
    split = json.loads((trained / "m" / "split.json").read_text())
    trained_on = len(split["train"]) + len(split["val"])
    assert f"WARNING: {trained_on} of these 300 posts were used in training" in out
    assert json.loads(report.read_text())["training_posts_in_population"] == trained_on
    ids = trained / "ids.txt"
    ids.write_text("\n".join(split["test"][:50]))
    assert main(["evaluate", model, "--store", store, "--split", str(ids)]) == 0
    assert "population 50 posts" in capsys.readouterr().out

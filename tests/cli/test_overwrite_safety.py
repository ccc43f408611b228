"""``--overwrite`` replaces a previous output of the same kind, and nothing else: never the
command's own input, a folder holding it, another kind of output or someone's files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmodal.atomic import check_replaceable, check_separate
from nmodal.cli import main
from nmodal.errors import OutputExistsError
from nmodal.features import make_synthetic, read_featureset, write_featureset
from nmodal.features.store import FORMAT as STORE_FORMAT
from tests.features.datasets import write_dataset


def test_check_replaceable(tmp_path: Path) -> None:
    check_replaceable(tmp_path / "missing", "model", "config.json", "nmodal-model")
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", "model", "config.json", "nmodal-model")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"format": "nmodal-model"}))
    check_replaceable(model, "model", "config.json", "nmodal-model")
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "thesis.docx").write_text("years of work")
    with pytest.raises(OutputExistsError, match="other than an nmodal model"):
        check_replaceable(other, "model", "config.json", "nmodal-model")
    (other / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(OutputExistsError):
        check_replaceable(other, "model", "config.json", "nmodal-model")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="not a directory"):
        check_replaceable(tmp_path / "file", "model", "config.json")


def test_check_separate(tmp_path: Path) -> None:
    store = tmp_path / "data" / "store"
    store.mkdir(parents=True)
    check_separate(tmp_path / "data" / "model", store)  # a sibling
    check_separate(store / "inside", store)  # inside the input: nothing of it is deleted
    check_separate(tmp_path / "x", None)
    with pytest.raises(OutputExistsError, match="is the input"):
        check_separate(store, store)
    with pytest.raises(OutputExistsError, match="holds the input"):
        check_separate(tmp_path / "data", store)
    with pytest.raises(OutputExistsError, match="is the input"):
        check_separate(tmp_path / "data" / ".." / "data" / "store", store)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    fs = make_synthetic(120, dim=12, latent_dim=4, seed=1)
    return write_featureset(tmp_path / "store", fs)


def test_train_never_replaces_its_own_store(store: Path, capsys) -> None:
    before = read_featureset(store)
    argv = ["train", str(store), "--out", str(store), "--overwrite", "--epochs", "1"]
    assert main(argv) == 1
    assert "is the input" in capsys.readouterr().err
    np.testing.assert_array_equal(read_featureset(store).features["text"], before.features["text"])
    assert (
        main(["train", str(store), "--out", str(store.parent), "--overwrite", "--epochs", "1"]) == 1
    )
    assert "holds the input" in capsys.readouterr().err
    assert (store / "manifest.json").is_file()


def test_overwrite_refuses_a_folder_of_other_files(store: Path, tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.docx").write_text("years of work")
    argv = [
        "train",
        str(store),
        "--out",
        str(home),
        "--overwrite",
        "--epochs",
        "1",
        "--test-size",
        "10",
    ]
    assert main(argv) == 1
    assert "other than an nmodal model" in capsys.readouterr().err
    assert (home / "thesis.docx").read_text() == "years of work"
    # a model over a model is what --overwrite is for
    model = tmp_path / "model"
    assert main([*argv[:3], str(model), *argv[4:]]) == 0
    assert main([*argv[:3], str(model), *argv[4:]]) == 0
    capsys.readouterr()
    # a store is not a model: training with --out at another store is refused too
    other_store = write_featureset(tmp_path / "other", make_synthetic(20, dim=12, seed=2))
    assert main([*argv[:3], str(other_store), *argv[4:]]) == 1
    assert (other_store / "manifest.json").is_file()
    assert json.loads((other_store / "manifest.json").read_text())["format"] == STORE_FORMAT


def test_extract_never_replaces_its_dataset_or_other_files(tmp_path: Path, capsys) -> None:
    dataset = write_dataset(tmp_path / "ds", 4)
    notes = dataset / "notes.txt"
    notes.write_text("my notes")
    base = [
        "extract",
        str(dataset),
        "--encoders",
        "offline",
        "--modalities",
        "text",
        "--workers",
        "0",
        "--no-progress",
    ]
    assert main([*base[:2], "--out", str(dataset), "--overwrite", *base[2:]]) == 1
    assert "is the input" in capsys.readouterr().err
    assert (dataset / "posts.parquet").is_file() and notes.read_text() == "my notes"
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "a.pdf").write_text("pdf")
    assert main([*base[:2], "--out", str(folder), "--overwrite", *base[2:]]) == 1
    assert "other than an nmodal feature store" in capsys.readouterr().err
    assert (folder / "a.pdf").is_file()
    assert pd.read_parquet(dataset / "posts.parquet").shape[0] >= 4

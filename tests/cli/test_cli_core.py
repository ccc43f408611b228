"""The train / evaluate / protocol sub-commands end to end on a small synthetic store."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nmodal.cli import main
from nmodal.features import make_synthetic, write_featureset

COMMON = ["--epochs", "2", "--batch-size", "64", "--dim", "16"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    fs = make_synthetic(600, dim=24, latent_dim=8, noise=0.4, seed=0)
    write_featureset(root / "store", fs)
    pd.DataFrame(
        {"post_id": fs.post_ids, "concept": [f"c{i // 4}" for i in range(600)]}
    ).to_parquet(root / "posts.parquet")
    return root


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("train", "evaluate", "protocol"):
        assert cmd in out


def test_train_then_evaluate(store, capsys):
    model = store / "model"
    assert (
        main(
            [
                "train",
                str(store / "store"),
                "--out",
                str(model),
                *COMMON,
                "--posts",
                str(store),
                "--group-by",
                "concept",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"model written to {model}" in out
    split = json.loads((model / "split.json").read_text())
    assert len(split["test"]) == 100
    concept = lambda p: int(p.split("-")[1]) // 4  # noqa: E731
    assert not {concept(p) for p in split["test"]} & {concept(p) for p in split["train"]}
    history = json.loads((model / "history.json").read_text())
    assert len(history["history"]) == 2

    report = store / "eval.json"
    assert (
        main(["evaluate", str(model), "--store", str(store / "store"), "--out", str(report)]) == 0
    )
    out = capsys.readouterr().out
    assert "population 100 posts, 300 queries, scoring sum" in out and "| all queries |" in out
    data = json.loads(report.read_text())
    assert set(data["recall"]) == {"1", "5", "10", "25"}

    assert (
        main(
            [
                "evaluate",
                str(model),
                "--store",
                str(store / "store"),
                "--modalities",
                "text,image",
                "--queries",
                "50",
            ]
        )
        == 0
    )
    assert "50 queries" in capsys.readouterr().out


def test_existing_output_is_a_clear_error(store, capsys):
    out = store / "taken"
    out.mkdir()
    assert main(["train", str(store / "store"), "--out", str(out), *COMMON]) == 1
    err = capsys.readouterr().err
    assert "exists (use --overwrite" in err
    assert list(out.iterdir()) == []


def test_unknown_modality_is_a_clear_error(store, capsys):
    assert (
        main(
            [
                "train",
                str(store / "store"),
                "--out",
                str(store / "x"),
                *COMMON,
                "--modalities",
                "text,smell",
            ]
        )
        == 1
    )
    assert "unknown modality 'smell'" in capsys.readouterr().err
    assert not (store / "x").exists()


def test_missing_store_is_a_clear_error(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]) == 1
    assert "not a feature store" in capsys.readouterr().err


def test_protocol_grid(store, capsys):
    out = store / "proto"
    assert (
        main(
            [
                "protocol",
                str(store / "store"),
                "--out",
                str(out),
                "--trials",
                "2",
                "--losses",
                "clip,triplet",
                "--bimodal",
                "text,image",
                *COMMON,
            ]
        )
        == 0
    )
    data = json.loads((out / "protocol.json").read_text())
    assert set(data["runs"]) == {"triCLIP/all/2/16", "triTRIP/all/2/16"}
    tables = (out / "tables.md").read_text()
    assert "bi-triCLIP on text+image" in tables
    assert f"results written to {out / 'protocol.json'}" in capsys.readouterr().out


def test_bad_queries_value_is_a_usage_error(store, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(store / "model"), "--store", str(store / "store"), "--queries", "x"])
    assert exc.value.code == 2
    assert "expected 'all' or a positive integer, got 'x'" in capsys.readouterr().err


def test_evaluate_scores_a_symile_model_with_the_symile_rule(store, capsys):
    model = store / "symile"
    assert (
        main(["train", str(store / "store"), "--out", str(model), *COMMON, "--loss", "symile"]) == 0
    )
    assert main(["evaluate", str(model), "--store", str(store / "store")]) == 0
    assert "scoring symile" in capsys.readouterr().out
    assert main(["evaluate", str(model), "--store", str(store / "store"), "--scoring", "sum"]) == 0
    assert "scoring sum" in capsys.readouterr().out


@pytest.mark.parametrize(
    "option", [["--dropout", "1.5"], ["--threads", "-1"], ["--dim", "0"], ["--lr", "0"]]
)
def test_bad_training_numbers_are_one_line_errors(tmp_path, capsys, option):
    store = tmp_path / "store"
    write_featureset(store, make_synthetic(300, dim=8, seed=0))
    code = main(["train", str(store), "--out", str(tmp_path / "m"), "--epochs", "1", *option])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("nmodal train: error:") and "Traceback" not in err
    assert not (tmp_path / "m").exists()

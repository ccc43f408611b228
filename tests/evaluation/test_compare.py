"""``nmodal compare`` and compare_losses: same splits for every loss, tables, outputs."""

from __future__ import annotations

import json

import pytest

from nmodal.cli import main
from nmodal.cli.compare import loss_list
from nmodal.errors import InputError
from nmodal.evaluation.compare import CompareConfig, compare_losses, starts_kept
from nmodal.evaluation.protocol import ProtocolConfig
from nmodal.features import make_synthetic, write_featureset
from nmodal.model import HeadConfig
from nmodal.train import TrainConfig


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cmp") / "store"
    write_featureset(path, make_synthetic(600, dim=16, latent_dim=4, noise=0.4, seed=0))
    return path


def test_loss_list_parses_options():
    assert loss_list("clip, symile:negative_sampling=n_squared:temperature=0.1") == [
        {"name": "clip"},
        {"name": "symile", "negative_sampling": "n_squared", "temperature": 0.1},
    ]


def test_compare_cli_writes_one_table_for_all_losses(store, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [str(store), "--out", str(out), "--losses", "clip,symile,gram", "--trials", "2"]
    args += ["--epochs", "2", "--dim", "16", "--batch-size", "64", "--test-size", "50"]
    assert main(["compare", *args, "--missing-rate", "0.3", "--device", "cpu"]) == 0
    result = json.loads((out / "results.json").read_text())
    runs = result["runs"]
    assert list(runs) == [
        f"tri{n}/{c}" for n in ("CLIP", "SYMILE", "GRAM") for c in ("full", "missing")
    ]
    splits = {json.dumps([t["sizes"] for t in r["trials"]]) for r in runs.values()}
    seeds = {tuple(t["seed"] for t in r["trials"]) for r in runs.values()}
    assert len(splits) == 1 and seeds == {(0, 1)}  # same splits and seeds for every loss
    assert [r["scoring"] for r in runs.values()] == ["sum"] * 2 + ["symile"] * 2 + ["gram"] * 2
    # mask is the default (the full data are complete: no masks), and what "missing" trains with
    assert [r["config"]["missing"] for r in runs.values()] == ["mask", "mask"] * 3
    for run in runs.values():
        expected = 0.0 if run["condition"] == "full" else 0.15
        assert all(t["train_missing_fraction"] >= expected for t in run["trials"])
        assert all(0 <= r["mean"] <= 1 for r in run["recall"].values())
    assert runs["triCLIP/full"]["recall"]["10"]["mean"] > 0.25  # chance: 10 / 50
    table = (out / "table.md").read_text()
    assert "| triGRAM | 30% dropped (" in table and "Train s/trial" in table
    # the start init="auto" (the default) kept, counted over the 2 trials, in its column
    kept = [t["init_choice"]["chosen"] for t in runs["triCLIP/full"]["trials"]]
    row = next(line for line in table.splitlines() if line.startswith("| triCLIP | full |"))
    assert f" {kept[0]} " in row and "/2" in row.split("|")[-3]
    assert "Δ@1 (pp)" in table
    printed = capsys.readouterr().out
    assert "results written to" in printed and "| triSYMILE | full | symile |" in printed
    assert main(["compare", *args]) == 1  # exists without --overwrite


def test_compare_errors(store, tmp_path):
    fs = make_synthetic(300, dim=8)
    with pytest.raises(InputError, match="unknown loss 'vicreg'"):
        compare_losses(fs, CompareConfig(ProtocolConfig(TrainConfig(epochs=1)), ["vicreg"]))
    with pytest.raises(InputError, match="no losses"):
        compare_losses(fs, CompareConfig(ProtocolConfig(TrainConfig(epochs=1)), []))
    with pytest.raises(InputError, match="unknown scoring"):
        ProtocolConfig(TrainConfig(epochs=1), scoring="max")
    with pytest.raises(InputError, match="missing rate"):
        CompareConfig(missing_rate=1.5)
    bad = ["compare", str(store), "--out", str(tmp_path / "x"), "--loss-option", "a=1"]
    assert main(bad) == 1


def test_compare_one_scoring_for_all():
    fs = make_synthetic(300, dim=8, latent_dim=4, seed=1)
    cfg = TrainConfig(epochs=1, head=HeadConfig(projection_dim=8), device="cpu")
    protocol = ProtocolConfig(cfg, trials=1, test_size=50, scoring="sum", progress=False)
    out = compare_losses(fs, CompareConfig(protocol, losses=["symile"]))
    (run,) = out["runs"].values()
    assert run["scoring"] == "sum" and out["missing_table"] == ""


def test_starts_kept_counts_the_auto_choice_over_trials():
    def trial(chosen):
        return {"init_choice": None if chosen is None else {"chosen": chosen}}

    auto = {"loss": {"name": "clip"}, "config": {"init": "auto"}}
    runs = [
        {**auto, "trials": [trial("gcca")] * 5},
        {**auto, "trials": [trial("random"), trial("gcca"), trial("random")]},
        {"loss": {"name": "clip"}, "config": {"init": "random"}, "trials": [trial(None)] * 2},
        {"loss": {"name": "gcca"}, "config": {}, "trials": [trial(None)]},
    ]
    assert [starts_kept(r) for r in runs] == [
        "gcca 5/5",
        "random 2/3, gcca 1/3",
        "random",
        "closed form",
    ]

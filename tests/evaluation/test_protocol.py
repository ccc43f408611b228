from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nmodal.errors import InputError
from nmodal.evaluation import ProtocolConfig, recall_grid_table, recall_table, run_protocol
from nmodal.evaluation.sweep import SweepConfig, model_label, run_sweep, size_label
from nmodal.features import make_synthetic
from nmodal.model import HeadConfig
from nmodal.train import TrainConfig

CFG = TrainConfig(epochs=2, batch_size=64, head=HeadConfig(projection_dim=16))


@pytest.fixture(scope="module")
def fs():
    return make_synthetic(900, dim=24, latent_dim=8, noise=0.4, seed=0)


def test_protocol_aggregates_trials(fs):
    config = ProtocolConfig(
        CFG, trials=3, test_size=100, eval_modalities=[["text", "image"]], progress=False
    )
    out = run_protocol(fs, config)
    assert out["num_trials"] == 3 and len(out["trials"]) == 3
    for k in ("1", "5", "10", "25"):
        per_trial = [t["report"]["recall"][k] for t in out["trials"]]
        assert out["recall"][k]["mean"] == pytest.approx(np.mean(per_trial))
        assert out["recall"][k]["std"] == pytest.approx(np.std(per_trial))
    # each trial is a fresh split and a fresh training run
    assert len({t["seed"] for t in out["trials"]}) == 3
    assert all(t["sizes"]["test"] == 100 for t in out["trials"])
    # the bimodal evaluation only queries text and image artifacts: 200 queries
    assert out["trials"][0]["restricted"]["text+image"]["num_queries"] == 200
    assert "text+image" in out["restricted"]


def test_protocol_train_size_and_groups(fs):
    groups = np.arange(fs.num_posts) // 3
    config = ProtocolConfig(CFG, trials=1, train_size=200, progress=False)
    out = run_protocol(fs, config, groups=groups)
    assert out["trials"][0]["sizes"]["train"] == 200


def test_labels():
    assert model_label("clip", 3, 10_000) == "triCLIP-10k"
    assert model_label("triplet", 4) == "quadTRIP"
    assert size_label(1500) == "1500" and size_label(None) == "all"


def test_sweep_and_tables(fs):
    protocol = ProtocolConfig(CFG, trials=1, progress=False)
    out = run_sweep(fs, SweepConfig(protocol, losses=["clip", "triplet"], epochs=[1, 2]))
    assert set(out["runs"]) == {f"tri{n}/all/{e}/16" for n in ("CLIP", "TRIP") for e in (1, 2)}
    table = out["tables"]["by_size_and_epochs"]
    assert table.splitlines()[0].startswith("| Model \\ Epochs | 1 @1 |")
    assert "triTRIP" in table and "triCLIP" in table


def test_table_formats():
    r = {"1": {"mean": 0.6047, "std": 0.021}, "5": {"mean": 0.7627, "std": 0.01}}
    assert (
        recall_table({"m": r}, ks=(1, 5)).splitlines()[-1]
        == "| m | 60.47% ± 2.10 | 76.27% ± 1.00 |"
    )
    grid = recall_grid_table({"m": {"10": r}, "n": {"50": r}}, ks=(1,))
    assert grid.splitlines()[2] == "| m | 60.47% | – |"


def test_sweep_scores_each_loss_with_its_own_rule(fs):
    protocol = ProtocolConfig(CFG, trials=1, progress=False)
    out = run_sweep(fs, SweepConfig(protocol, losses=["clip", "symile"]))
    assert {k: r["scoring"] for k, r in out["runs"].items()} == {
        "triCLIP/all/2/16": "sum",
        "triSYMILE/all/2/16": "symile",
    }
    forced = run_sweep(fs, SweepConfig(replace(protocol, scoring="sum"), losses=["symile"]))
    assert next(iter(forced["runs"].values()))["scoring"] == "sum"


def test_protocol_config_checks_and_resolves():
    """Invalid settings fail when the config is built; ``auto`` scoring follows the loss."""
    with pytest.raises(InputError, match="trials must be >= 1"):
        ProtocolConfig(trials=0)
    with pytest.raises(InputError, match="unknown scoring"):
        ProtocolConfig(scoring="max")
    with pytest.raises(InputError, match="missing rate"):
        ProtocolConfig(train_missing_rate=1.0)
    assert ProtocolConfig().scoring_rule == "sum"
    assert ProtocolConfig(TrainConfig(loss={"name": "gram"})).scoring_rule == "gram"
    assert ProtocolConfig(TrainConfig(loss={"name": "gram"}), scoring="sum").scoring_rule == "sum"
    config = ProtocolConfig(eval_modalities=[["text", "image"]], ks=[1, 5])
    assert config.eval_modalities == (("text", "image"),) and config.ks == (1, 5)

"""DDP on 2 CPU processes (gloo): gradients and trained weights equal the single-process run
on the concatenated batch; the autograd all-gather's backward."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from nmodal.features import make_synthetic
from nmodal.losses.distributed import all_gather_with_grad
from nmodal.train.distributed import DistContext, is_main_process

from . import ddp_worker

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker.run, args=(WORLD, free_port(), str(out)), nprocs=WORLD, join=True)
    return out


@pytest.mark.parametrize("name", list(ddp_worker.LOSSES))
def test_gradients_equal_single_process_on_the_full_batch(ddp_run, name):
    fs = ddp_worker.dataset()
    single = ddp_worker.gradients(ddp_worker.fresh_model(ddp_worker.LOSSES[name], fs), fs, None)
    assert set(single) - {"__loss__"}, "no parameter received a gradient"
    for rank in range(WORLD):
        grads = load_file(str(ddp_run / f"grads-{name}-rank{rank}.safetensors"))
        assert set(grads) == set(single)
        for key, value in single.items():
            torch.testing.assert_close(grads[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_training_gives_the_single_process_weights_on_every_rank(ddp_run):
    single = ddp_worker.train_weights(ddp_worker.dataset())
    ranks = [load_file(str(ddp_run / f"weights-rank{r}.safetensors")) for r in range(WORLD)]
    for key, value in single.items():
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0, msg=key)
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_without_process_group_nothing_is_gathered():
    x = torch.randn(3, 4)
    assert all_gather_with_grad(x) is x
    assert DistContext.from_process_group() is None
    assert is_main_process()


def test_shards_are_contiguous_and_cover_the_batch():
    index = torch.arange(11)
    shards = [DistContext(rank=r, world_size=3).shard(index) for r in range(3)]
    assert torch.equal(torch.cat(shards), index)
    assert [len(s) for s in shards] == DistContext(rank=0, world_size=3).shard_sizes(11)


def test_dataset_has_missing_artifacts():
    fs = make_synthetic(240, dim=12, latent_dim=4, missing_rate=0.3, seed=5)
    assert not fs.complete().all() and fs.complete().any()


@pytest.mark.slow
def test_torchrun_entry_point_writes_the_single_process_model(tmp_path):
    """``torchrun -m nmodal train`` = ``nmodal train`` on one process."""
    import os
    import subprocess
    import sys

    from nmodal.cli import main as cli_main
    from nmodal.features import write_featureset
    from nmodal.model import NModalModel

    store = tmp_path / "store"
    write_featureset(store, make_synthetic(400, dim=12, latent_dim=4, missing_rate=0.3, seed=2))
    args = ["--epochs", "2", "--batch-size", "32", "--dim", "16", "--dropout", "0"]
    args += ["--missing", "mask", "--device", "cpu", "--test-size", "50", "--amp", "off"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "nmodal", "train", str(store), "--out", str(tmp_path / "ddp"), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model written to") == 1  # rank 0 only
    assert cli_main(["train", str(store), "--out", str(tmp_path / "single"), *args]) == 0
    ddp = NModalModel.load(tmp_path / "ddp").state_dict()
    single = NModalModel.load(tmp_path / "single").state_dict()
    for key, value in single.items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-5, msg=key)

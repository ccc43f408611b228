"""The per-process body of the DDP tests (spawned by tests/train/test_distributed.py).

Each rank: one forward/backward of several losses on its shard of a fixed global batch
(gradients saved), then a short :func:`train_model` run (final weights saved). The test
compares both with a single process on the full batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file

from nmodal.features import FeatureSet, make_synthetic
from nmodal.losses import build_loss
from nmodal.model import HeadConfig, ModelConfig, NModalModel
from nmodal.train import TrainConfig, train_model
from nmodal.train.distributed import DistContext
from nmodal.train.trainer import _Batches, batch_loss

MODALITIES = ["text", "image", "video"]
HEAD = HeadConfig(projection_dim=16, dropout=0.0)
GLOBAL_BATCH = 13  # odd: the two shards differ in size (7 + 6)
LOSSES = {
    "clip": {"name": "clip"},
    "soft": {"name": "clip", "targets": "soft", "temperature": 1.0, "normalize": False},
    "triplet_hardest": {"name": "triplet", "negatives": "hardest"},
    "symile": {"name": "symile", "negative_sampling": "n_squared"},
    "gram": {"name": "gram"},
    "siglip": {"name": "siglip"},
    "anchor": {"name": "anchor", "anchor": 1},
}


def dataset() -> FeatureSet:
    """Synthetic features with 30% of the artifacts missing (masks go to the losses)."""
    return make_synthetic(240, dim=12, latent_dim=4, missing_rate=0.3, seed=5)


def fresh_model(loss: dict, fs: FeatureSet) -> NModalModel:
    torch.manual_seed(0)
    config = ModelConfig(modalities=MODALITIES, input_dims=fs.dims(), head=HEAD, loss=loss)
    return NModalModel(config, loss=build_loss(loss))


def global_index() -> torch.Tensor:
    return torch.randperm(240, generator=torch.Generator().manual_seed(1))[:GLOBAL_BATCH]


def train_config() -> TrainConfig:
    # float32: bf16 rounding would turn the summation-order differences between one
    # process and two into more than the tolerance of the comparison
    return TrainConfig(
        epochs=3,
        batch_size=32,
        head=HEAD,
        missing="mask",
        seed=3,
        device="cpu",
        lr=3e-3,
        amp="off",
    )


def gradients(
    model: NModalModel, fs: FeatureSet, distributed: DistContext | None
) -> dict[str, torch.Tensor]:
    data = _Batches(fs, MODALITIES, torch.device("cpu"), missing="mask")
    forward = distributed.wrap(model, torch.device("cpu")) if distributed else model
    loss = batch_loss(model, data, global_index(), forward, distributed)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    grads["__loss__"] = loss.detach().reshape(1)
    return grads


def train_weights(fs: FeatureSet) -> dict[str, torch.Tensor]:
    split = np.arange(fs.num_posts)
    result = train_model(
        fs.subset(split[:200]), train_config(), val=fs.subset(split[200:]), progress=False
    )
    return {k: v.detach().clone().contiguous() for k, v in result.model.state_dict().items()}


def run(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        ctx = DistContext.from_process_group()
        assert ctx is not None and ctx.world_size == world
        fs = dataset()
        for name, spec in LOSSES.items():
            grads = gradients(fresh_model(spec, fs), fs, ctx)
            save_file(grads, str(Path(out) / f"grads-{name}-rank{rank}.safetensors"))
        save_file(train_weights(fs), str(Path(out) / f"weights-rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()

"""Training throughput on synthetic 768-d feature tuples (the paper's Table 1 setting).

Measures nmodal's training loop (features as tensors, batches by indexing, fused Adam)
against a baseline measured in the same run: the per-item ``Dataset`` + ``DataLoader``
loop of the published code (a dict per post, default collation). Prints samples/s, the
ratio, and the time 100 epochs on 50k posts would take (the paper: 5m15s on a GPU).

    .venv/bin/python bench/bench_train.py            # full: 50k posts, times 3 epochs
    .venv/bin/python bench/bench_train.py --epochs 100   # the whole paper workload
    .venv/bin/python bench/bench_train.py --quick
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from nmodal.features import make_synthetic
from nmodal.losses import build_loss
from nmodal.model import ModelConfig, NModalModel
from nmodal.train import TrainConfig, train_model

PAPER_GPU_SECONDS_50K_100_EPOCHS = 5 * 60 + 15


class _PerItemDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The published code's data path: one dict of tensors per post."""

    def __init__(self, features: dict[str, torch.Tensor]) -> None:
        self.features = features
        self.n = len(next(iter(features.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {m: x[i] for m, x in self.features.items()}


def baseline_samples_per_second(fs: Any, steps: int) -> float:
    mods = fs.modalities
    feats = {m: torch.as_tensor(fs.features[m]) for m in mods}
    loader = torch.utils.data.DataLoader(
        _PerItemDataset(feats), batch_size=128, shuffle=True, drop_last=True
    )
    cfg = ModelConfig(modalities=mods, input_dims=fs.dims())
    model = NModalModel(cfg, loss=build_loss({"name": "clip"}))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen, start = 0, time.perf_counter()
    for step, batch in enumerate(loader):
        if step == steps:
            break
        out = model(batch)
        assert model.loss is not None
        loss = model.loss([out[m] for m in mods])
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += 128
    return seen / (time.perf_counter() - start)


def run(quick: bool = False, posts: int | None = None, epochs: int | None = None) -> dict[str, Any]:
    posts = posts or (5_000 if quick else 50_000)
    epochs = epochs or (2 if quick else 3)
    fs = make_synthetic(posts, dim=768, seed=0)
    result = train_model(fs, TrainConfig(epochs=epochs, batch_size=128), progress=not quick)
    ours = result.samples_per_second
    base = baseline_samples_per_second(fs, steps=40 if quick else 150)
    projected = 100 * 50_000 / ours
    return {
        "posts": posts,
        "epochs": epochs,
        "threads": torch.get_num_threads(),
        "nmodal_samples_per_s": ours,
        "baseline_samples_per_s": base,
        "speedup_vs_per_item_dataloader": ours / base,
        "measured_seconds": result.seconds,
        "projected_seconds_50k_x_100_epochs": projected,
        "paper_gpu_seconds_50k_x_100_epochs": PAPER_GPU_SECONDS_50K_100_EPOCHS,
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"training throughput ({r['posts']} posts x 3 modalities x 768-d, batch 128, "
            f"{r['epochs']} epochs, {r['threads']} threads)",
            f"  nmodal loop:            {r['nmodal_samples_per_s']:10.0f} samples/s",
            f"  per-item DataLoader:    {r['baseline_samples_per_s']:10.0f} samples/s",
            f"  ratio nmodal/baseline:  {r['speedup_vs_per_item_dataloader']:10.2f}x",
            f"  100 epochs x 50k posts: {r['projected_seconds_50k_x_100_epochs']:10.0f} s "
            f"(paper, GPU: {r['paper_gpu_seconds_50k_x_100_epochs']} s; target < 300 s)",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--posts", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    a = parser.parse_args()
    print(report(run(a.quick, a.posts, a.epochs)))

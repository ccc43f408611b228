"""Training throughput on synthetic 768-d feature tuples (the paper's Table 1 setting).

Measures nmodal's training loop (features as tensors, batches by indexing, fused Adam) in
float32 (``amp="off"``) and in its default precision (``amp="auto"``: bf16 autocast of the
heads on CPUs with native bf16, else float32 again), against a baseline measured in the
same run: the per-item ``Dataset`` + ``DataLoader`` loop of the published code (a dict
per post, default collation, float32). Prints samples/s, the ratios, and the time 100
epochs on 50k posts take (the paper: 5m15s on a GPU; target here: < 300 s on the CPU).

The measurement runs in a child process with ``OMP_WAIT_POLICY=PASSIVE`` (unless the
environment sets it), the setting ``nmodal train`` runs under.

    .venv/bin/python bench/bench_train.py                 # 50k posts, 3 epochs, projected
    .venv/bin/python bench/bench_train.py --epochs 100    # the whole paper workload
    .venv/bin/python bench/bench_train.py --epochs 100 --amp auto   # one precision only
    .venv/bin/python bench/bench_train.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PAPER_GPU_SECONDS_50K_100_EPOCHS = 5 * 60 + 15
TARGET_SECONDS = 300
PRECISIONS = ("off", "auto")


def baseline_samples_per_second(fs: Any, steps: int) -> float:
    """The published code's data path: one dict of tensors per post, DataLoader collation."""
    import torch

    from nmodal.losses import build_loss
    from nmodal.model import ModelConfig, NModalModel

    class PerItem(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, features: dict[str, torch.Tensor]) -> None:
            self.features = features
            self.n = len(next(iter(features.values())))

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {m: x[i] for m, x in self.features.items()}

    mods = fs.modalities
    feats = {m: torch.as_tensor(fs.features[m]) for m in mods}
    loader = torch.utils.data.DataLoader(
        PerItem(feats), batch_size=128, shuffle=True, drop_last=True
    )
    model = NModalModel(
        ModelConfig(modalities=mods, input_dims=fs.dims()), loss=build_loss({"name": "clip"})
    )
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


def measure(posts: int, epochs: int, precisions: list[str], baseline_steps: int) -> dict[str, Any]:
    """The measurement itself, in this process with its OpenMP settings."""
    import torch

    from nmodal.features import make_synthetic
    from nmodal.train import TrainConfig, train_model
    from nmodal.train.trainer import autocast_dtype, default_threads

    fs = make_synthetic(posts, dim=768, seed=0)
    out: dict[str, Any] = {
        "posts": posts,
        "epochs": epochs,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "torch_threads": torch.get_num_threads(),
        "runs": {},
    }
    for amp in precisions:
        # one training loop (init="auto", the default, would train two to three)
        config = TrainConfig(epochs=epochs, batch_size=128, amp=amp, init="random")
        result = train_model(fs, config, progress=sys.stderr.isatty())
        dtype = autocast_dtype(amp, torch.device("cpu")) or torch.float32
        out["runs"][amp] = {
            "precision": str(dtype).removeprefix("torch."),
            "threads": default_threads(config) or torch.get_num_threads(),
            "seconds": result.seconds,
            "samples_per_s": result.samples_per_second,
            "seconds_50k_x_100_epochs": 100 * 50_000 / result.samples_per_second,
            "final_train_loss": result.history[-1]["train_loss"],
        }
    out["baseline_samples_per_s"] = baseline_samples_per_second(fs, baseline_steps)
    return out


def run(
    quick: bool = False,
    posts: int | None = None,
    epochs: int | None = None,
    precisions: list[str] | None = None,
) -> dict[str, Any]:
    """Measure in a child process (``OMP_WAIT_POLICY=PASSIVE`` unless set) and return the
    figures plus the ratios against the per-item baseline."""
    args = [
        f"--posts={posts or (5_000 if quick else 50_000)}",
        f"--epochs={epochs or (2 if quick else 3)}",
        f"--baseline-steps={40 if quick else 150}",
        *[f"--amp={amp}" for amp in precisions or PRECISIONS],
    ]
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-train-") as tmp:
        out_json = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(out_json), *args]
        subprocess.run(cmd, env=env, check=True)
        result: dict[str, Any] = json.loads(out_json.read_text())
    base = result["baseline_samples_per_s"]
    for r in result["runs"].values():
        r["speedup_vs_per_item_dataloader"] = r["samples_per_s"] / base
    result["paper_gpu_seconds_50k_x_100_epochs"] = PAPER_GPU_SECONDS_50K_100_EPOCHS
    return result


def report(r: dict[str, Any]) -> str:
    whole = r["posts"] == 50_000 and r["epochs"] == 100
    lines = [
        f"training throughput ({r['posts']} posts x 3 modalities x 768-d, batch 128, "
        f"{r['epochs']} epochs, OMP_WAIT_POLICY={r['omp_wait_policy']})",
        f"  per-item DataLoader (float32): {r['baseline_samples_per_s']:8.0f} samples/s",
    ]
    for amp, run_ in r["runs"].items():
        label = f"nmodal amp={amp} ({run_['precision']}, {run_['threads']} thr)"
        lines.append(
            f"  {label:<34} {run_['samples_per_s']:8.0f} samples/s  "
            f"{run_['speedup_vs_per_item_dataloader']:5.2f}x baseline  "
            f"100 epochs x 50k: {run_['seconds_50k_x_100_epochs']:4.0f} s"
            + (f" (measured {run_['seconds']:.0f} s)" if whole else " (projected)")
        )
    lines.append(
        f"  (paper, GPU: {r['paper_gpu_seconds_50k_x_100_epochs']} s; "
        f"target on this CPU: < {TARGET_SECONDS} s)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--posts", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--amp", action="append", choices=PRECISIONS, help="precision(s) to measure (default both)"
    )
    parser.add_argument("--baseline-steps", type=int, default=150, help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child is not None:
        figures = measure(a.posts, a.epochs, a.amp or list(PRECISIONS), a.baseline_steps)
        a.child.write_text(json.dumps(figures))
    else:
        print(report(run(a.quick, a.posts, a.epochs, a.amp)))

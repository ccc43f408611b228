"""The paper encoders in float32 vs bfloat16 on this CPU: seconds per item and agreement.

Each of the paper set's encoders (distilbert-base, ViT-MAE-base, VideoMAE-base with 16
frames, wav2vec2-base) is built at base size from its default config with random weights
(as ``bench_extract.py``'s paper run: no hub access here) and loaded through the encoders'
real loading path, once with ``dtype="float32"`` and once with ``dtype="bfloat16"`` (the
model cast to bf16), on one thread; ``--model-path`` measures other checkpoints (the
published ones where the hub or a copy is at hand). Random-init weights are a proxy for
the published checkpoints: their compute is the same, their activations (and so the bf16
rounding error) are not.

Typical inputs, as bench_extract: a 20-word multilingual text, a 224x224 picture, 16
frames of 224x224, 30 s of 16 kHz audio. The inputs are varied (different texts, random
smooth pictures with noise, moving patterns, tones and noise of several lengths for the
audio). Reported per encoder: median seconds per item in each dtype (``--autocast`` also
times fp32 weights under ``torch.autocast("cpu", dtype=torch.bfloat16)``), and the
cosine of the bf16 features with the fp32 ones (worst, median) and their largest absolute
difference (beside the fp32 features' largest absolute value), the largest error's norm
relative to the feature's (``rel err``); ``centred cos min`` is the
worst cosine after taking the fp32 features' mean over the inputs away from both, and
``between`` the median cosine of the fp32 features of two different inputs (random-init
models give all inputs similar features, which flatters the plain cosine).

Usage::

    .venv/bin/python bench/bench_paper_dtype.py --items 24   # about 10 min on one core
    .venv/bin/python bench/bench_paper_dtype.py --encoders text,image --items 4 --autocast
    .venv/bin/python bench/bench_paper_dtype.py --encoders text --model-path text=distilbert-base-multilingual-cased
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "src", ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_extract import typical_text, write_paper_models  # noqa: E402

NAMES = {"text": "distilbert", "image": "vit-mae", "video": "videomae", "audio": "wav2vec2"}


def inputs(modality: str, n: int) -> list[Any]:
    """``n`` varied typical inputs of ``modality``; the first ones have the typical size."""
    rng = np.random.default_rng(1)
    out: list[Any] = []
    for i in range(n):
        if modality == "text":
            out.append(typical_text(i))
        elif modality in ("image", "video"):
            frames = 16 if modality == "video" else 1
            yy, xx = np.mgrid[0:224, 0:224]
            f = rng.uniform(0.01, 0.08, 3)
            clip = []
            for t in range(frames):
                base = np.stack(
                    [128 + 100 * np.sin(f[c] * (xx + 3 * t * (i % 4)) + f[2 - c] * yy + c + i)
                     for c in range(3)], -1,
                )  # fmt: skip
                noise = rng.normal(0, 10 + 3 * (i % 5), base.shape)
                clip.append(np.clip(base + noise, 0, 255).astype(np.uint8))
            out.append(clip[0] if modality == "image" else np.stack(clip))
        else:
            seconds = 30.0 if i % 3 != 2 else float(rng.uniform(3, 20))
            t = np.arange(int(16000 * seconds)) / 16000
            tone = np.sin(2 * np.pi * (110 + 60 * i) * t) * (0.2 + 0.1 * (i % 4))
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * (i + 1) * t)
            noise = rng.normal(0, 0.02 * (1 + i % 3), t.shape)
            out.append((tone * envelope + noise).astype(np.float32))
    return out


def typical(modality: str, item: Any) -> bool:
    return modality != "audio" or len(item) == 16000 * 30


def measure(
    modalities: list[str], items: int, autocast: bool, model_paths: dict[str, str] | None = None
) -> dict[str, Any]:
    """The figures of :func:`report`; ``model_paths`` (``{modality: dir}``) measures those
    checkpoints (e.g. the published ones) instead of the random-init ones."""
    import torch

    from nmodal.encoders import build_encoder

    torch.set_num_threads(1)
    out: dict[str, Any] = {"torch": torch.__version__, "threads": 1,
                           "cpu_capability": torch.backends.cpu.get_cpu_capability()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-dtype-") as tmp:
        settings = write_paper_models(Path(tmp) / "models")
        out["weights"] = {
            m: (model_paths or {}).get(m, "base-size random-init") for m in modalities
        }
        for m in modalities:
            path = (model_paths or {}).get(m) or settings[m]["model_path"]
            one = {"model_path": path, "num_threads": 1, "device": "cpu", "batch_size": 1}
            encs = {d: build_encoder(NAMES[m], dtype=d, **one) for d in ("float32", "bfloat16")}
            data = inputs(m, items)
            runs = {"float32": encs["float32"].encode, "bfloat16": encs["bfloat16"].encode}
            if autocast:

                def auto(batch: list[Any], enc: Any = encs["float32"]) -> np.ndarray:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        feats: np.ndarray = enc.encode(batch)
                    return feats

                runs["autocast_bf16"] = auto
            for fn in runs.values():  # warm-up: one-off costs of the first call
                fn([data[0]])
            feats: dict[str, list[np.ndarray]] = {k: [] for k in runs}
            secs: dict[str, list[float]] = {k: [] for k in runs}
            for item in data:
                for k, fn in runs.items():
                    t0 = time.perf_counter()
                    feats[k].append(fn([item])[0])
                    if typical(m, item):
                        secs[k].append(time.perf_counter() - t0)
            ref = np.stack(feats["float32"])
            row: dict[str, Any] = {"items": items, "timed": len(secs["float32"])}
            for k in runs:
                row[f"{k}_s"] = float(np.median(secs[k]))
                if k == "float32":
                    continue
                x = np.stack(feats[k])
                cos = (ref * x).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(x, axis=1))
                row[f"{k}_cos_min"] = float(cos.min())
                row[f"{k}_cos_median"] = float(np.median(cos))
                row[f"{k}_max_abs_diff"] = float(np.abs(ref - x).max())
                # the same after taking away the fp32 features' mean over the inputs: what
                # tells the posts apart (random-init models give every input similar features)
                mu = ref.mean(0)
                rc, xc = ref - mu, x - mu
                cc = (rc * xc).sum(1) / (np.linalg.norm(rc, axis=1) * np.linalg.norm(xc, axis=1))
                row[f"{k}_centred_cos_min"] = float(cc.min())
                row[f"{k}_centred_cos_median"] = float(np.median(cc))
                # the error's size beside the feature's (sqrt(2 (1 - cos)) for equal norms)
                rel = np.linalg.norm(x - ref, axis=1) / np.linalg.norm(ref, axis=1)
                row[f"{k}_rel_err_max"] = float(rel.max())
            row["fp32_max_abs"] = float(np.abs(ref).max())
            unit = ref / np.linalg.norm(ref, axis=1, keepdims=True)
            pair = unit @ unit.T
            row["fp32_between_inputs_cos_median"] = float(
                np.median(pair[np.triu_indices(len(ref), 1)])
            )
            out[m] = row
            print(m, json.dumps(row), flush=True)
    return out


def report(result: dict[str, Any]) -> str:
    lines = [
        f"torch {result['torch']}, {result['threads']} thread, CPU capability "
        f"{result['cpu_capability']}; weights: "
        + ", ".join(f"{m} {w}" for m, w in result.get("weights", {}).items())
        + " (random-init weights are a proxy for the published checkpoints)",
        f"{'encoder':10} {'fp32 s':>7} {'bf16 s':>7} {'x':>5} {'cos min':>8} {'cos med':>8} "
        f"{'max|d|':>7} {'max|f|':>7} {'rel err':>7} {'centred':>8} {'between':>8}  autocast bf16",
    ]
    for m, name in NAMES.items():
        if m not in result:
            continue
        r = result[m]
        auto = (
            f"{r['autocast_bf16_s']:.3f} s, cos min {r['autocast_bf16_cos_min']:.5f}"
            if "autocast_bf16_s" in r
            else "-"
        )
        lines.append(
            f"{name:10} {r['float32_s']:>7.3f} {r['bfloat16_s']:>7.3f} "
            f"{r['float32_s'] / r['bfloat16_s']:>5.2f} {r['bfloat16_cos_min']:>8.5f} "
            f"{r['bfloat16_cos_median']:>8.5f} {r['bfloat16_max_abs_diff']:>7.3f} "
            f"{r['fp32_max_abs']:>7.3f} {r['bfloat16_rel_err_max']:>7.4f} "
            f"{r['bfloat16_centred_cos_min']:>8.5f} "
            f"{r['fp32_between_inputs_cos_median']:>8.5f}  {auto}"
        )
    return "\n".join(lines)


def run(quick: bool = False) -> dict[str, Any]:
    """``bench/run.py``'s entry: the four random-init paper encoders, 24 inputs each
    (quick: 4)."""
    return measure(["text", "image", "video", "audio"], 4 if quick else 24, False, {})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoders", default="text,image,video,audio", help="modalities")
    parser.add_argument("--items", type=int, default=24, help="inputs per encoder")
    parser.add_argument("--autocast", action="store_true", help="also fp32 under bf16 autocast")
    parser.add_argument(
        "--model-path",
        action="append",
        default=[],
        metavar="MODALITY=DIR",
        help="measure this checkpoint (save_pretrained directory or hub name) instead of "
        "the random-init one (repeatable)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    paths = dict(item.split("=", 1) for item in args.model_path)
    result = measure([m for m in args.encoders.split(",") if m], args.items, args.autocast, paths)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""EfficientNet-Lite0 on one CPU thread: torch fp32 vs onnxruntime fp32 and int8 (and
OpenVINO fp32 and bf16 when installed; bf16 only on CPUs with native bf16).

Measured in the same run, on real pictures: the demo corpus's frames (``nmodal.demo``
generates a few posts) and, when ``../shared/data`` is beside the checkout, the real
exports' photos and frames of their videos. For each path: milliseconds per picture
(batches of 4, the CPU batch of the encoders, repetitions interleaved so that a load
change hits every path alike) and agreement with torch fp32: the largest absolute
difference of the 1280-d features (the exact path must stay under 1e-4) and the cosine
similarity per picture (min / median / mean) for int8 and bf16.

Usage::

    .venv/bin/python bench/bench_lite.py            # demo corpus (12 posts) + real data
    .venv/bin/python bench/bench_lite.py --reps 5 --json lite.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

SHARED = ROOT / ".." / "shared" / "data"


def demo_pictures(root: Path, posts: int = 12) -> list[np.ndarray]:
    """4 sampled frames and the held-out frame of each demo-corpus clip."""
    from nmodal.demo.corpus import generate_corpus
    from nmodal.media import sample_video

    generate_corpus(root, num_posts=posts, workers=1, progress=False)
    out: list[np.ndarray] = []
    for clip in sorted((root / "media").glob("**/*.mp4")):
        s = sample_video(clip, num_frames=4, max_side=1024)
        out.extend([*s.frames, s.image])
    return out


def real_pictures() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The real exports' photos, and 4 frames of each of their videos (empty without data)."""
    from nmodal.errors import MediaError
    from nmodal.media import load_image, sample_video

    photos: list[np.ndarray] = []
    frames: list[np.ndarray] = []
    if not SHARED.is_dir():
        return photos, frames
    for p in sorted(SHARED.glob("**/*")):
        suffix = p.suffix.lower()
        try:
            if suffix in (".jpg", ".jpeg", ".png", ".webp"):
                photos.append(load_image(p, max_side=1024))
            elif suffix in (".mp4", ".mov", ".mkv", ".webm"):
                frames.extend(sample_video(p, num_frames=4, max_side=1024).frames)
        except MediaError:
            continue
    return photos, frames


def cpu_description() -> str:
    """The CPU's model name and whether it has VNNI (int8 dot products: without it int8
    convolutions use slower AVX2 kernels, and int8 may not beat fp32)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    fields = dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    vnni = "with VNNI" if flags & {"avx512_vnni", "avx_vnni"} else "without VNNI"
    return f"{fields.get('model name', '?')}, {vnni}"


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def measure(reps: int, demo_posts: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from nmodal.encoders import build_encoder
    from nmodal.encoders.torch_utils import stack_resized

    paths = {
        "torch fp32": build_encoder("efficientnet-lite0", backend="torch", num_threads=1),
        "onnxruntime fp32": build_encoder(
            "efficientnet-lite0", backend="onnxruntime", num_threads=1
        ),
        "onnxruntime int8": build_encoder(
            "efficientnet-lite0", backend="onnxruntime", precision="int8", num_threads=1
        ),
    }
    # OpenVINO, the default exact backend when installed, and its bf16 where the CPU has it
    from nmodal.encoders.lite_openvino import openvino_available
    from nmodal.errors import InputError

    if openvino_available():
        paths["openvino fp32"] = build_encoder(
            "efficientnet-lite0", backend="openvino", num_threads=1
        )
        with contextlib.suppress(InputError):  # no native bf16 on this CPU
            paths["openvino bf16"] = build_encoder(
                "efficientnet-lite0", backend="openvino", precision="bf16", num_threads=1
            )
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-lite-") as tmp:
        sources = {"demo corpus frames": demo_pictures(Path(tmp) / "demo", demo_posts)}
    photos, frames = real_pictures()
    if photos:
        sources["real photos"] = photos
    if frames:
        sources["real video frames"] = frames
    # every picture at the encoders' size first: the figures are the networks' own
    sources = {k: list(stack_resized(v, (224, 224))) for k, v in sources.items()}
    out: dict[str, Any] = {
        "threads": 1,
        "cpu": cpu_description(),
        "load": os.getloadavg()[0],
        "sources": {k: len(v) for k, v in sources.items()},
    }

    timing = list(sources["demo corpus frames"][:16])
    for enc in paths.values():
        enc.encode(timing[:4])  # warm-up
    seconds = dict.fromkeys(paths, 0.0)
    for _ in range(reps):
        for name, enc in paths.items():
            t0 = time.perf_counter()
            enc.encode(timing)
            seconds[name] += time.perf_counter() - t0
    out["ms_per_picture"] = {k: 1000 * v / (reps * len(timing)) for k, v in seconds.items()}

    agreement: dict[str, Any] = {}
    for src, pictures in sources.items():
        ref = paths["torch fp32"].encode(pictures)
        row: dict[str, Any] = {}
        for name, enc in paths.items():
            if name == "torch fp32":
                continue
            got = enc.encode(pictures)
            c = _cos(got, ref)
            row[name] = {
                "max_abs_diff": float(np.abs(got - ref).max()),
                "cos_min": float(c.min()),
                "cos_median": float(np.median(c)),
                "cos_mean": float(c.mean()),
            }
        agreement[src] = row
    out["agreement"] = agreement
    return out


def report(r: dict[str, Any]) -> str:
    lines = [
        "EfficientNet-Lite0, 1 thread, batches of 4 (same run; compare the ratios on a "
        "shared machine)",
        f"cpu: {r['cpu']}; 1-min load average at the start {r['load']:.2f}",
        "pictures: " + ", ".join(f"{k} {v}" for k, v in r["sources"].items()),
    ]
    base = r["ms_per_picture"]["torch fp32"]
    for k, v in r["ms_per_picture"].items():
        lines.append(f"  {k:18} {v:7.2f} ms/picture  ({base / v:.2f}x torch fp32)")
    lines.append("agreement with torch fp32 (max |diff|; cosine min / median / mean):")
    for src, row in r["agreement"].items():
        for name, a in row.items():
            lines.append(
                f"  {src:20} {name:18} max|d| {a['max_abs_diff']:.2e}  cos "
                f"{a['cos_min']:.4f} / {a['cos_median']:.4f} / {a['cos_mean']:.4f}"
            )
    return "\n".join(lines)


def run(quick: bool = False) -> dict[str, Any]:
    """``bench/run.py``'s entry: 3 repetitions on 12 demo posts (quick: 1 on 4)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return measure(1, 4) if quick else measure(3, 12)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3, help="timing repetitions (default 3)")
    parser.add_argument("--demo-posts", type=int, default=12, help="demo corpus posts")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    result = measure(args.reps, args.demo_posts)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

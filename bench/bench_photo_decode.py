"""Photos on their way to a 224x224 encoder: ``swscale-draft`` against ``swscale``.

``swscale`` (stores made before ``swscale-draft``) decodes a JPEG photo at up to
``max_side`` (1024) pixels a side, brings it there with Pillow's bicubic thumbnail, then
resizes it with swscale; ``swscale-draft`` (new stores) decodes it at the smallest of
libjpeg's 1/2, 1/4, 1/8 scales that still covers 1.5 x 224 = 336 pixels a side
and resizes that with swscale.
Measured in the same run, one thread: the CPU milliseconds a photo of each path, and how
close EfficientNet-Lite0's image features (the exact fp32 path) of the two pictures are
(cosine, worst and median) on

- the extraction benchmark's typical 1280x720 photos (``bench_extract.py``; noise-heavy,
  the hard case for two different downsampling filters),
- natural photos that ship with installed packages (matplotlib's and scikit-learn's
  sample images), and any further ``--photos``,
- the real exports' photos under ``../shared/data`` when they are there (Telegram keeps
  320-pixel previews in them: too small to decode reduced, so the two paths give the
  same bytes there, which is checked).

Usage::

    .venv/bin/python bench/bench_photo_decode.py
    .venv/bin/python bench/bench_photo_decode.py --photos ~/Pictures/*.jpg --repeat 5

``run(quick)`` returns the figures as a dict (``bench/run.py``), ``report(result)`` formats them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench.bench_extract import typical_photos  # noqa: E402  (the extraction benchmark's photos)

SHARED = ROOT.parent / "shared" / "data"
SIZE = (224, 224)


def sample_photos() -> list[Path]:
    """Natural photos of installed packages (those present)."""
    found: list[Path] = []
    for module, rel in (
        ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
        ("sklearn", "datasets/images/china.jpg"),
        ("sklearn", "datasets/images/flower.jpg"),
    ):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        candidate = Path(mod.__file__).parent / rel
        if candidate.is_file():
            found.append(candidate)
    return found


def reference(photo: Path) -> np.ndarray:
    """The photo decoded whole and brought to 224x224 with Pillow's Lanczos over the full
    picture (antialiased, slow): the picture both fast paths approximate."""
    from PIL import Image

    from nmodal.media import load_image

    full = Image.fromarray(load_image(photo))
    return np.asarray(full.resize((SIZE[1], SIZE[0]), Image.Resampling.LANCZOS))


def _cpu_ms(fn: Any, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return 1000 * best


def measure(groups: dict[str, list[Path]], repeat: int = 3) -> dict[str, Any]:
    import torch

    from nmodal.encoders import build_encoder
    from nmodal.features.decode import DecodeSpec, PostJob, decode_post

    torch.set_num_threads(1)
    specs = {
        r: DecodeSpec(("image",), image_size=SIZE, resize=r) for r in ("swscale", "swscale-draft")
    }
    enc = build_encoder("efficientnet-lite0", backend="torch")
    out: dict[str, Any] = {}
    for name, photos in groups.items():
        if not photos:
            continue
        rows: dict[str, list[float]] = {
            "ms_swscale": [], "ms_draft": [], "cosine": [], "ref_swscale": [], "ref_draft": []
        }  # fmt: skip
        same = 0
        for photo in photos:
            job = PostJob("p", None, None, str(photo), None)
            pics = {r: decode_post(job, s).items["image"] for r, s in specs.items()}
            rows["ms_swscale"].append(
                _cpu_ms(lambda j=job: decode_post(j, specs["swscale"]), repeat)
            )
            rows["ms_draft"].append(
                _cpu_ms(lambda j=job: decode_post(j, specs["swscale-draft"]), repeat)
            )
            same += int(np.array_equal(pics["swscale"], pics["swscale-draft"]))
            f = enc.encode([pics["swscale"], pics["swscale-draft"], reference(photo)])
            f = f / np.linalg.norm(f, axis=1, keepdims=True)
            rows["cosine"].append(float(f[0] @ f[1]))
            rows["ref_swscale"].append(float(f[0] @ f[2]))
            rows["ref_draft"].append(float(f[1] @ f[2]))
        out[name] = {
            "photos": len(photos),
            "identical_pictures": same,
            "ms_swscale": float(np.mean(rows["ms_swscale"])),
            "ms_draft": float(np.mean(rows["ms_draft"])),
            "cosine_worst": float(np.min(rows["cosine"])),
            "cosine_median": float(np.median(rows["cosine"])),
            "reference_swscale": float(np.median(rows["ref_swscale"])),
            "reference_draft": float(np.median(rows["ref_draft"])),
        }
    return out


def report(result: dict[str, Any]) -> str:
    lines = [
        "photo -> 224x224, one thread, CPU ms a photo (mean of each photo's best of runs);",
        "cosine: EfficientNet-Lite0 features (fp32, torch) of the two pictures; to ref: the",
        "median cosine of each to the photo brought to 224x224 by Lanczos over the full picture",
        f"{'photos':28} {'n':>3} {'swscale ms':>10} {'draft ms':>9} {'speed-up':>8} "
        f"{'same bytes':>10} {'cos worst':>9} {'cos median':>10} {'to ref sws/draft':>16}",
    ]
    for name, r in result.items():
        lines.append(
            f"{name:28} {r['photos']:>3} {r['ms_swscale']:>10.1f} {r['ms_draft']:>9.1f} "
            f"{r['ms_swscale'] / r['ms_draft']:>7.2f}x {r['identical_pictures']:>10} "
            f"{r['cosine_worst']:>9.4f} {r['cosine_median']:>10.4f} "
            f"{r['reference_swscale']:>9.4f}/{r['reference_draft']:.4f}"
        )
    return "\n".join(lines)


def run(quick: bool = False, photos: list[Path] | None = None, repeat: int = 3) -> dict[str, Any]:
    """The figures of every group (``quick``: one timed run a photo, two typical photos)."""
    with tempfile.TemporaryDirectory(prefix="nmodal-bench-photo-") as tmp:
        typical = typical_photos(Path(tmp), 4)
        groups = {
            "typical 1280x720 (synthetic)": typical[:2] if quick else typical,
            "natural (package samples)": sample_photos(),
            "given": list(photos or []),
            "real exports (previews)": sorted(SHARED.glob("**/*.jpg")) if SHARED.is_dir() else [],
        }
        return measure(groups, 1 if quick else repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", nargs="*", type=Path, default=[], help="further JPEG photos")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs a photo (best kept)")
    ap.add_argument(
        "--quick", action="store_true", help="one timed run a photo, two typical photos"
    )
    args = ap.parse_args()
    print(report(run(args.quick, args.photos, args.repeat)))


if __name__ == "__main__":
    main()

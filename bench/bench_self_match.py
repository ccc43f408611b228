"""Does a post's own text (or its own photo) find that post? Rank-1 counts per scoring rule.

For every indexed post with text, the query is that text, encoded as ``nmodal search
--text`` encodes it (the index's frozen encoder + the model's head); for every post with a
photo, the query is that photo file (``nmodal search --image``); a post whose image is a
frame of its video (the demo's: ``image_path`` empty) gets that frame, decoded as extraction
chose it, written to a PNG. Each query is encoded once
and searched under every collation (``max``, ``sum``, ``mean``) with the query's own
modality included (search's default) and with the paper's other-modalities rule, plus the
text-only search (``--modality text`` / ``--modality image``). A query "finds" its post
when the post is ranked first; a tie with another post of the same score counts as found
only when the post wins the index's tie-break (lower post number), as the search shows it.

Usage::

    .venv/bin/python bench/bench_self_match.py demo-out/index
    .venv/bin/python bench/bench_self_match.py data/index --limit 300 --json

Prints one table; ``--json`` prints the counts as JSON instead. ``bench/run.py self_match``
measures the demo's index (``make demo``), and says so when there is none.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

COLLATIONS = ("max", "sum", "mean")


def settings(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, PostIndex.search options) of every scoring setting measured."""
    out = [(f"{c}, own modality too", {"collation": c, "include_same": True}) for c in COLLATIONS]
    out += [(f"{c}, other modalities", {"collation": c, "include_same": False}) for c in COLLATIONS]
    out.append((f"{kind} only", {"collation": "sum", "include_same": True, "modalities": [kind]}))
    return out


def measure(index_dir: Path, limit: int | None = None) -> dict[str, Any]:
    """``{kind: {"queries": n, "first": {label: count}}}`` for text and image queries."""
    from nmodal.errors import InputError
    from nmodal.index import PostIndex, QueryEncoder

    index = PostIndex.open(index_dir)
    encoder = QueryEncoder.for_index(index.manifest)
    posts = index.posts
    result: dict[str, Any] = {"index": str(index_dir), "posts": index.num_posts}
    scratch = Path(tempfile.mkdtemp(prefix="self-match-"))
    for kind in ("text", "image"):
        if kind not in index.modalities:
            continue
        rows = [r for r in range(index.num_posts) if index.present[kind][r]][:limit]
        first = {label: 0 for label, _ in settings(kind)}
        skipped = 0
        for row in rows:
            try:
                payload = query_payload(posts.iloc[row], kind, scratch / f"{row}.png")
                vector = encoder.encode(kind, payload)
            except InputError:
                skipped += 1
                continue
            for label, options in settings(kind):
                try:
                    hits = index.search([kind], vector, k=1, **options).hits
                except InputError:  # e.g. other modalities only, and none to compare with
                    continue
                first[label] += bool(hits) and hits[0].post_id == index.post_ids[row]
        result[kind] = {"queries": len(rows) - skipped, "unreadable": skipped, "first": first}
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def query_payload(post: Any, kind: str, photo: Path) -> str:
    """The text, or the path of the post's photo (its video's held-out frame, written to
    ``photo``, when it has no photo file); an InputError when there is none."""
    from nmodal.errors import InputError

    if kind == "text":
        if not isinstance(post["text"], str) or not post["text"].strip():
            raise InputError("no text")
        return str(post["text"])
    if isinstance(post.get("image_path"), str) and post["image_path"]:
        return str(post["image_path"])
    if not isinstance(post.get("video_path"), str) or not post["video_path"]:
        raise InputError("no photo")
    from PIL import Image

    from nmodal.features.decode import DecodeSpec, PostJob, decode_post

    spec = DecodeSpec(modalities=("image",), image_size=None)
    job = PostJob(post_id="q", text=None, video_path=post["video_path"], image_path=None,
                  audio_path=None)  # fmt: skip
    decoded = decode_post(job, spec)
    if "image" not in decoded.items:
        raise InputError("no decodable frame")
    Image.fromarray(decoded.items["image"]).save(photo)
    return str(photo)


DEMO_INDEX = Path(__file__).resolve().parents[1] / "demo-out" / "index"


def run(quick: bool = False) -> dict[str, Any]:
    """``bench/run.py``'s entry: the demo's index (``make demo``), every post (quick: 50
    queries per kind); says it was skipped when there is no demo index."""
    if not (DEMO_INDEX / "manifest.json").is_file():
        return {"index": str(DEMO_INDEX), "skipped": "no index there: run `make demo` first"}
    return measure(DEMO_INDEX, 50 if quick else None)


def report(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"{result['index']}: skipped ({result['skipped']})"
    lines = [f"{result['index']}: {result['posts']} posts"]
    for kind in ("text", "image"):
        if kind not in result:
            continue
        block = result[kind]
        n = block["queries"]
        lines.append(f"  {kind} queries (a post's own {kind}): {n}")
        for label, count in block["first"].items():
            lines.append(f"    {label:<28} {count:>5}/{n}  ranked first")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("index", type=Path, help="index directory (nmodal index build)")
    p.add_argument("--limit", type=int, default=None, help="at most this many queries per kind")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = p.parse_args(argv)
    result = measure(args.index, args.limit)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())

"""The post index directory on disk: manifest, file names, model fingerprint, atomic writes.

Layout of an index directory::

    manifest.json        format, version, model {path, fingerprint}, dataset_dir, modalities
                         {name: {factory, count, encoder, nprobe}}, num_posts, projection_dim
    posts.parquet        one row per indexed post, row order = post number: post_id, account,
                         date, text, media paths, labels, has_<modality>
    <m>.emb.npy          (num_posts, p) float32 L2-normalised embeddings of modality <m>,
                         post-aligned; rows of posts lacking <m> are zeros and never read
    <m>.present.npy      (num_posts,) bool: which posts have an artifact of modality <m>
    <m>.faiss            FAISS inner-product index of the present rows of <m>; its ids are
                         post numbers (rows of posts.parquet)

Nothing is pickled: ``.npy`` files are read with ``allow_pickle=False`` (memory-mapped), FAISS
indexes with ``faiss.read_index``, the rest is JSON and Parquet.

Example:
    >>> model_fingerprint("runs/m1")  # doctest: +SKIP
    '3f9a0c1d2e4b5a69'
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nmodal.errors import InputError, OutputExistsError
from nmodal.jsonfile import read_format_json
from nmodal.model import model_fingerprint

FORMAT = "nmodal-post-index"
VERSION = 1
MANIFEST = "manifest.json"
POSTS_FILE = "posts.parquet"


def emb_file(modality: str) -> str:
    return f"{modality}.emb.npy"


def present_file(modality: str) -> str:
    return f"{modality}.present.npy"


def faiss_file(modality: str) -> str:
    return f"{modality}.faiss"


def read_manifest(index_dir: str | Path) -> dict[str, Any]:
    """The manifest of an index directory; :class:`InputError` if it is not one."""
    return read_format_json(
        index_dir,
        MANIFEST,
        format=FORMAT,
        versions=(VERSION,),
        what="an nmodal post index",
        version_hint="; rebuild the index",
    )


def check_model(manifest: dict[str, Any], model_dir: str | Path, index_dir: str | Path) -> None:
    """Refuse a model whose fingerprint differs from the one the index was built with."""
    expected = manifest["model"]["fingerprint"]
    actual = model_fingerprint(model_dir)
    if actual != expected:
        raise InputError(
            f"{model_dir}: model fingerprint {actual} does not match the one index {index_dir} "
            f"was built with ({expected}, from {manifest['model']['path']}); use that model "
            "or rebuild the index"
        )


def write_directory_atomically(
    out: str | Path, fill: Callable[[Path], None], overwrite: bool = False
) -> Path:
    """Create directory ``out`` by calling ``fill(tmp_dir)`` and renaming it into place.

    Readers never see a half-written directory: the new one is complete before the rename.
    When replacing an existing directory the old one is first renamed aside (and restored if
    the final rename fails), then deleted.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: exists (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))

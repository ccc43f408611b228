"""The post index directory on disk: manifest, file names, model fingerprint, atomic writes.

Layout of an index directory::

    manifest.json        format, version, model {path, fingerprint}, dataset_dir, modalities
                         {name: {factory, count, encoder, nprobe, storage, lists_file}},
                         on_disk (the build's storage policy), num_posts, projection_dim,
                         files {name: sha256} of every other file (checked on open)
    posts.parquet        one row per indexed post, row order = post number: post_id, account,
                         date, text, media paths, labels, has_<modality>
    <m>.emb.npy          (num_posts, p) float32 L2-normalised embeddings of modality <m>,
                         post-aligned; rows of posts lacking <m> are zeros and never read
    <m>.present.npy      (num_posts,) bool: which posts have an artifact of modality <m>
    <m>.faiss            FAISS inner-product index of the present rows of <m>; its ids are
                         post numbers (rows of posts.parquet); absent with the Milvus
                         backend (manifest ``backend: {name: milvus, uri, collection}``)
    <m>.ivfdata          only for modalities with ``storage: "ondisk"`` (manifest
                         ``lists_file``, relative to the directory): the IVF index's inverted
                         lists, memory-mapped when opened (nmodal.index.ondisk)

Nothing is pickled: ``.npy`` files are read with ``allow_pickle=False`` (memory-mapped), FAISS
indexes with ``faiss.read_index``, the rest is JSON and Parquet.

Example:
    >>> model_fingerprint("runs/m1")  # doctest: +SKIP
    '3f9a0c1d2e4b5a69'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nmodal.atomic import check_replaceable, recover_dir, replacing_dir
from nmodal.errors import InputError, OutputExistsError
from nmodal.integrity import hash_files, plain_name, verify_files
from nmodal.jsonfile import read_format_json
from nmodal.model import model_fingerprint

FORMAT = "nmodal-post-index"
VERSION = 1
MANIFEST = "manifest.json"
POSTS_FILE = "posts.parquet"
#: where a modality's FAISS inverted lists live (manifest ``storage``; nmodal.index.ondisk)
MEMORY = "memory"
ONDISK = "ondisk"
STORAGES = (MEMORY, ONDISK)


def emb_file(modality: str) -> str:
    return f"{modality}.emb.npy"


def present_file(modality: str) -> str:
    return f"{modality}.present.npy"


def faiss_file(modality: str) -> str:
    return f"{modality}.faiss"


def lists_file(modality: str) -> str:
    return f"{modality}.ivfdata"


def storage_of(info: Mapping[str, Any], where: Path) -> str:
    """A modality entry's ``storage`` (``"memory"`` when absent: indexes from before it)."""
    storage = info.get("storage", MEMORY)
    if storage not in STORAGES:
        raise InputError(f"{where}: unknown index storage {storage!r}; expected one of {STORAGES}")
    return str(storage)


def lists_name(info: Mapping[str, Any], m: str, where: Path) -> str:
    """The list file an on-disk entry names: a plain file name inside the index directory."""
    name = info.get("lists_file")
    if not plain_name(name):
        raise InputError(
            f"{where}: modality {m!r} has storage 'ondisk' but 'lists_file' is not a plain "
            f"file name inside the index directory: {name!r}"
        )
    return str(name)


def read_index_manifest(index_dir: str | Path, verify: bool | None = None) -> dict[str, Any]:
    """The manifest of an index directory, verified; :class:`InputError` if it is not one.

    A swap killed half-way is recovered first. Modality names must be plain names (they
    become file names) and every file the manifest lists must match its recorded SHA-256
    (``verify``: default on unless ``--no-verify``).
    """
    index_dir = recover_dir(Path(index_dir))
    manifest = read_format_json(
        index_dir,
        MANIFEST,
        format=FORMAT,
        versions=(VERSION,),
        what="an nmodal post index",
        version_hint="; rebuild the index",
    )
    mods = manifest.get("modalities")
    if not isinstance(mods, dict) or not all(
        plain_name(m) and isinstance(v, dict) for m, v in mods.items()
    ):
        raise InputError(f"{index_dir / MANIFEST}: 'modalities' must map plain names to objects")
    backend = milvus_backend(manifest, index_dir)
    # a Milvus-backed index keeps its vector indexes in Milvus, not in <m>.faiss files
    per_modality = (emb_file, present_file) if backend else (emb_file, present_file, faiss_file)
    where = index_dir / MANIFEST
    lists = [
        lists_name(info, m, where)
        for m, info in mods.items()
        if backend is None and storage_of(info, where) == ONDISK
    ]
    files = manifest.get("files")
    for name in lists:
        if isinstance(files, dict) and name not in files:
            raise InputError(
                f"{where}: an on-disk modality's inverted lists {name} are not among the "
                "index's files; rebuild the index"
            )
    verify_files(
        index_dir,
        files,
        MANIFEST,
        required=(POSTS_FILE, *(f(m) for m in mods for f in per_modality), *lists),
        verify=verify,
    )
    return manifest


def milvus_backend(manifest: dict[str, Any], index_dir: str | Path = "") -> dict[str, Any] | None:
    """The manifest's Milvus ``backend`` entry (None for the default, FAISS files)."""
    backend = manifest.get("backend")
    if backend is None or backend == {"name": "faiss"}:
        return None
    if not isinstance(backend, dict) or backend.get("name") != "milvus":
        raise InputError(f"{Path(index_dir) / MANIFEST}: unknown index backend {backend!r}")
    return backend


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
    """Create or replace directory ``out`` by calling ``fill(tmp_dir)``, crash-safe.

    See :func:`nmodal.atomic.replacing_dir`: the old directory stays readable until the new
    one is complete; a killed run's leftovers are recovered by the next reader or writer.
    """
    out = recover_dir(Path(out))
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: exists (pass --overwrite to replace it)")
    check_replaceable(out, "index", MANIFEST, FORMAT)
    with replacing_dir(out) as tmp:
        fill(tmp)
    return out


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` last, recording the SHA-256 of every other file."""
    manifest["files"] = hash_files(directory, skip=MANIFEST)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))

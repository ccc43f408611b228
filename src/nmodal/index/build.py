"""Building a post index from a trained model and a feature store, and adding new posts.

Only artifacts that are present in the store are embedded and indexed; a post with no
artifact in any of the model's modalities is left out. Post metadata (account, date, text,
provenance, media paths, labels) comes from the dataset's ``posts.parquet``.

The media files the index may serve are decided here, once: each post's media paths are
resolved (symlinks included) and kept only when the file lies inside the post's
``media_root`` (the boundary ingest recorded); the index stores those absolute real paths
with their root, and the manifest lists the roots (``media_roots``). ``nmodal serve`` serves
exactly these files, wherever ingest found them (the export may be outside the dataset).

Example:
    >>> build_index("runs/m1", "stores/s1", "data/telegram", "indexes/i1")  # doctest: +SKIP
    PosixPath('indexes/i1')
    >>> add_posts("indexes/i1", "runs/m1", "stores/s1-new")  # doctest: +SKIP
    1200
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nmodal.atomic import check_separate
from nmodal.errors import InputError
from nmodal.features import FeatureSet, StoreReader, StoreView
from nmodal.index import layout, ondisk
from nmodal.index.factory import (
    FLAT_MAX_ARTIFACTS,
    check_knobs,
    choose_factory,
    default_nprobe,
    is_exact,
    new_index,
    set_knobs,
    train_index,
)
from nmodal.index.milvus import MilvusVectors, new_collection_name, resolve_uri
from nmodal.index.post_index import PostIndex
from nmodal.index.remote import fill_collections
from nmodal.index.tuning import (
    DEFAULT_TARGET,
    RecallTarget,
    auto_factories,
    exact_neighbours,
    held_out_queries,
    knob_curve,
    recorded_target,
    tune,
)
from nmodal.index.vectors import EmbeddingFile, embed_into, open_embeddings
from nmodal.model import NModalModel
from nmodal.sources.paths import MediaRoot
from nmodal.sources.posts import read_posts

#: standard posts-table columns kept in the index (label columns, i.e. any column the
#: standard table does not define, are kept too, as strings)
META_COLUMNS = (
    "post_id", "source", "account", "date", "text", "media_type",
    "image_path", "video_path", "audio_path", "duration", "media_root", "message_id",
    "channel_id", "channel_username", "url", "from_name", "from_id", "author",
    "forwarded_from", "forwarded_from_id", "forwarded_date", "forwarded_message_id",
    "reply_to_message_id", "edited", "views", "forwards", "reactions", "album_id",
    "notes", "skipped_media",
)  # fmt: skip
STANDARD_COLUMNS = (
    *META_COLUMNS, "num_frames", "width", "height", "has_audio", "status", "reason",
)  # fmt: skip
PATH_COLUMNS = ("image_path", "video_path", "audio_path")
ADD_CHUNK = 65_536
#: ``add_posts`` retrains an IVF index's centroids (retrain="auto") once it holds more than
#: this many times the vectors they were trained on: the lists drift from the data
RETRAIN_GROWTH = 2.0
RETRAIN = ("auto", "always", "never")


def read_posts_table(dataset_dir: str | Path) -> pd.DataFrame:
    """The dataset's posts table, media paths as stored (relative to ``dataset_dir``)."""

    return read_posts(dataset_dir, absolute=False)


def posts_metadata(post_ids: np.ndarray, dataset_dir: str | Path | None) -> pd.DataFrame:
    """Metadata rows for ``post_ids`` in that order (empty fields for posts the table lacks)."""
    frame = pd.DataFrame({"post_id": pd.array(np.asarray(post_ids, dtype=object), dtype="string")})
    if dataset_dir is None:
        return frame
    table = read_posts_table(dataset_dir)
    extra = [c for c in table.columns if c not in STANDARD_COLUMNS and not c.startswith("has_")]
    table = table[[c for c in META_COLUMNS if c in table.columns] + extra].copy()
    table["post_id"] = table["post_id"].astype("string")
    table = table.drop_duplicates("post_id", keep="last")
    if "date" in table:
        table["date"] = pd.to_datetime(table["date"], utc=True, errors="coerce").dt.tz_localize(
            None
        )
    for col in ("edited", "forwarded_date"):
        if col in table:
            table[col] = (
                pd.to_datetime(table[col], utc=True, errors="coerce")
                .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
                .astype("string")
            )
    _servable_paths(table, Path(dataset_dir))
    for col in extra:
        table[col] = table[col].map(_labels_json, na_action="ignore").astype("string")
    merged = frame.merge(table, on="post_id", how="left")
    missing = int((~frame["post_id"].isin(table["post_id"])).sum())
    if missing and missing == len(frame):
        raise InputError(
            f"{dataset_dir}/posts.parquet holds none of the {len(frame)} posts of the store: "
            "it is another collection's dataset (give the --posts the store was extracted from)"
        )
    if missing:
        warnings.warn(
            f"{missing} indexed posts are not in {dataset_dir}/posts.parquet; they have no metadata",
            stacklevel=2,
        )
    return merged


def _servable_paths(table: pd.DataFrame, dataset_dir: Path) -> None:
    """Media paths (stored relative to ``dataset_dir``) -> absolute real paths, kept only
    when the file lies inside the post's ``media_root`` (the dataset folder for tables from
    before ``media_root`` was recorded); anything else becomes null, in place."""

    base = dataset_dir.resolve()
    if "media_root" not in table:
        table["media_root"] = pd.array([None] * len(table), dtype="string")
    table["media_root"] = table["media_root"].fillna(str(base)).astype("string")
    roots: dict[str, MediaRoot] = {}
    refused = 0
    for col in PATH_COLUMNS:
        if col not in table:
            continue
        out: list[str | None] = []
        for value, root in zip(table[col], table["media_root"], strict=True):
            if value is None or value is pd.NA or root is None or root is pd.NA:
                out.append(None)
                continue
            boundary = roots.setdefault(str(root), MediaRoot(str(root)))
            found, _ = boundary.check(Path(os.path.normpath(base / str(value))))
            refused += found is None
            out.append(None if found is None else str(found))
        table[col] = pd.array(out, dtype="string")
    if refused:
        warnings.warn(
            f"{refused} media paths of {dataset_dir}/posts.parquet are missing or outside their "
            "media root; the index will not serve them",
            stacklevel=3,
        )


def media_roots(posts: pd.DataFrame) -> list[str]:
    """The media roots of an index's posts (recorded in its manifest)."""
    if "media_root" not in posts:
        return []
    return sorted(str(r) for r in posts["media_root"].dropna().unique())


def _labels_json(value: Any) -> str | None:
    """A label cell as text: strings as they are, anything else (lists, maps) as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        value = dict(value)  # Arrow map columns come back as lists of (key, value)
    return json.dumps(value, default=str)


def _load_model(model_dir: str | Path) -> Any:

    return NModalModel.load(model_dir)


def _check_store(model: Any, fs: FeatureSet | StoreView, store_dir: Path) -> list[str]:
    """The modalities model and store share; InputError if dims or encoders disagree."""
    mods = [m for m in model.modalities if m in fs.modalities]
    if not mods:
        raise InputError(
            f"{store_dir}: store modalities {fs.modalities} share none with the model's {model.modalities}"
        )
    for m in mods:
        expected = model.config.input_dims[m]
        if fs.dims()[m] != expected:
            raise InputError(
                f"{store_dir}: modality {m!r} has {fs.dims()[m]}-d features, "
                f"the model expects {expected}-d"
            )
        trained = model.config.encoders.get(m) or {}
        stored = fs.encoders.get(m) or {}
        if trained.get("name") and stored.get("name") and trained["name"] != stored["name"]:
            raise InputError(
                f"{store_dir}: modality {m!r} was extracted with encoder {stored['name']!r}, "
                f"the model was trained on {trained['name']!r}"
            )
    return mods


def _embed_bar(fs: FeatureSet | StoreView, mods: Sequence[str], progress: bool) -> Any:
    return tqdm(
        total=sum(int(fs.present[m].sum()) for m in mods if m in fs.modalities),
        desc="embed",
        unit="artifact",
        disable=not progress,
        file=sys.stderr,
    )


def write_embeddings(
    model: Any,
    fs: FeatureSet | StoreView,
    mods: Sequence[str],
    directory: Path,
    batch_size: int = 8192,
    progress: bool = False,
    previous: Path | None = None,
    previous_rows: int = 0,
) -> dict[str, np.ndarray]:
    """Compute: each modality's post-aligned embeddings of ``fs`` streamed into
    ``directory/<m>.emb.npy`` (``batch_size`` rows read and embedded at a time, from disk for
    a :class:`StoreView`) and its presence mask into ``<m>.present.npy``; returns the masks.

    With ``previous`` (an index directory), its first ``previous_rows`` rows come first,
    copied file to file, and ``fs``'s posts follow them."""
    p = int(model.config.projection_dim)
    present: dict[str, np.ndarray] = {}
    bar = _embed_bar(fs, mods, progress)
    for m in mods:
        out = EmbeddingFile(directory / layout.emb_file(m), previous_rows + fs.num_posts, p)
        has = m in fs.modalities  # index add from a store without m: new posts lack it
        mask = fs.present[m] if has else np.zeros(fs.num_posts, dtype=bool)
        if previous is not None:
            out.copy_rows(previous / layout.emb_file(m), previous_rows)
            old = np.load(previous / layout.present_file(m), allow_pickle=False)
            mask = np.concatenate([old, mask])
        if has:
            embed_into(model, fs, m, out, start=previous_rows, batch_size=batch_size, bar=bar)
        out.close()
        present[m] = np.asarray(mask, dtype=bool)
        np.save(directory / layout.present_file(m), present[m], allow_pickle=False)
    bar.close()
    return present


def _embeddings(directory: Path, mods: Sequence[str]) -> dict[str, np.ndarray]:
    """Read-only memory maps of the embedding files in ``directory``."""
    return {m: open_embeddings(directory / layout.emb_file(m)) for m in mods}


def _add_vectors(index: Any, emb: np.ndarray, rows: np.ndarray, desc: str, progress: bool) -> None:
    for start in tqdm(
        range(0, len(rows), ADD_CHUNK),
        desc=desc,
        unit="chunk",
        disable=not progress or len(rows) <= ADD_CHUNK,
        file=sys.stderr,
    ):
        chunk = rows[start : start + ADD_CHUNK]
        index.add_with_ids(np.ascontiguousarray(emb[chunk]), chunk.astype(np.int64))


def build_faiss(
    emb: np.ndarray,
    present: np.ndarray,
    factory: str,
    progress: bool = False,
    desc: str = "index",
    train_rows: np.ndarray | None = None,
) -> Any:
    """A trained FAISS index of the present rows of ``emb`` (ids = post numbers), trained on
    a sample of ``train_rows`` (default: the present rows)."""
    rows = np.flatnonzero(present)
    index = new_index(emb.shape[1], factory)
    train_index(index, emb, rows if train_rows is None else train_rows, factory=factory)
    _add_vectors(index, emb, rows, desc, progress)
    return index


def _say(progress: bool) -> Any:
    return (lambda text: print(text, file=sys.stderr, flush=True)) if progress else None


def build_modality(
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    m: str,
    factory: str | None,
    total: int,
    knobs: Mapping[str, Any] | None = None,
    target: RecallTarget | None = DEFAULT_TARGET,
    progress: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """The FAISS index of modality ``m`` and its manifest entry (without the encoder).

    ``factory`` None: exact ``Flat`` up to ``FLAT_MAX_ARTIFACTS`` artifacts in all
    (``total``), else the cheapest of :func:`nmodal.index.tuning.auto_factories` whose
    measured recall reaches ``target``. A given factory keeps its type; its search knob is
    tuned to the target unless ``knobs`` fixes it. ``target`` None: no measurement (size
    rule and ``default_nprobe``).
    """
    fixed = check_knobs(dict(knobs or {}))
    rows = np.flatnonzero(present[m])
    dim = int(emb[m].shape[1])
    auto = factory is None
    if auto and (total <= FLAT_MAX_ARTIFACTS or target is None):
        factory = choose_factory(len(rows), total, dim)
    info: dict[str, Any] = {"count": len(rows), "trained_on": len(rows), "auto": auto}
    if target is None or (factory is not None and is_exact(factory)):
        assert factory is not None
        index = build_faiss(emb[m], present[m], factory, progress, desc=f"index {m}")
        values = {"nprobe": default_nprobe(factory), **fixed}
        set_knobs(index, values)
        info.update(factory=factory, exact=is_exact(factory), nprobe=values.get("nprobe"))
        info["params"] = {k: v for k, v in values.items() if k != "nprobe"}
        return index, info
    q_rows, queries = held_out_queries(emb, present, m, target.queries, target.seed)
    truth = exact_neighbours(emb[m], rows, queries, target.k)
    pool = np.setdiff1d(rows, q_rows, assume_unique=True)  # queries stay out of training

    def build(fac: str) -> Any:
        return build_faiss(emb[m], present[m], fac, progress, f"index {m} {fac}", train_rows=pool)

    say = _say(progress)
    factories = auto_factories(len(rows), dim) if factory is None else [factory]
    tuned = tune(factories, build, queries, truth, target, fixed, say)
    set_knobs(tuned.index, tuned.knobs)
    info.update(
        factory=tuned.factory,
        exact=False,
        nprobe=tuned.knobs.get("nprobe"),
        params={k: v for k, v in tuned.knobs.items() if k != "nprobe"},
        tuning=tuned.report,
    )
    return tuned.index, info


def retune_after_add(
    index: Any,
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    m: str,
    info: dict[str, Any],
    seed: int,
) -> bool:
    """Re-measure a tuned index that has grown and re-tune its knob to the recorded target
    (``info`` is updated); False when no knob value reaches it (the index needs retraining)."""
    recorded = dict(info["tuning"])
    curve = list(recorded.get("curve", ()))
    target = replace(recorded_target(recorded), seed=seed)  # fresh queries
    rows = np.flatnonzero(present[m])
    _, queries = held_out_queries(emb, present, m, target.queries, target.seed)
    truth = exact_neighbours(emb[m], rows, queries, target.k)
    knobs, points = knob_curve(index, queries, truth, target)
    met = points[-1]["recall"] >= target.recall
    if met:
        set_knobs(index, knobs)
        info["nprobe"] = knobs.get("nprobe")
        info["params"] = {k: v for k, v in knobs.items() if k != "nprobe"}
        curve.extend({"factory": info["factory"], "after_add": info["count"], **p} for p in points)
        recorded.update(
            curve=curve, chosen={"factory": info["factory"], **knobs, **points[-1]}, met=True
        )
        info["tuning"] = recorded
    return met


def index_from_embeddings(
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray] | None = None,
    post_ids: Sequence[str] | np.ndarray | None = None,
    posts: pd.DataFrame | None = None,
    factory: str | None = None,
    nprobe: int | None = None,
    progress: bool = False,
    target: RecallTarget | None = DEFAULT_TARGET,
    params: Mapping[str, Any] | None = None,
) -> PostIndex:
    """An in-memory :class:`PostIndex` over ready-made L2-normalised embeddings (no model).

    For experiments and benchmarks; it cannot encode raw queries (search with vectors).
    ``factory``, ``nprobe``, ``params`` and ``target`` as in :func:`build_modality`.

    Example:
        >>> idx = index_from_embeddings({"text": t, "video": v}, factory="IVF256,SQ8")  # doctest: +SKIP
        >>> idx.search(["text"], t[:1], k=10).hits[0].post_id  # doctest: +SKIP
    """
    mods = list(emb)
    n = len(emb[mods[0]])
    pres = {m: np.ones(n, bool) if present is None else np.asarray(present[m], bool) for m in mods}
    ids = np.asarray(post_ids if post_ids is not None else [str(i) for i in range(n)], dtype=object)
    table = posts.copy() if posts is not None else pd.DataFrame({"post_id": ids})
    total = sum(int(p.sum()) for p in pres.values())
    dim = int(emb[mods[0]].shape[1])
    indexes: dict[str, Any] = {}
    info: dict[str, Any] = {}
    knobs = {**(params or {}), "nprobe": nprobe}
    for m in mods:
        indexes[m], info[m] = build_modality(emb, pres, m, factory, total, knobs, target, progress)
        info[m]["encoder"] = {}
    manifest = {
        "format": layout.FORMAT, "version": layout.VERSION, "model": None, "dataset_dir": None,
        "projection_dim": dim, "num_posts": n, "num_artifacts": total, "modalities": info,
    }  # fmt: skip
    return PostIndex(Path("<memory>"), manifest, table, dict(emb), pres, indexes)


def write_faiss(
    directory: Path, m: str, index: Any, info: dict[str, Any], on_disk: str = "never"
) -> None:
    """Write: modality ``m``'s FAISS index into ``directory``, its lists in memory or on disk
    as policy ``on_disk`` chooses (:func:`nmodal.index.ondisk.choose_storage`); records the
    storage in its manifest entry ``info``. The index is consumed (on disk: its lists are
    released once written)."""
    storage = ondisk.choose_storage(index, on_disk)
    if on_disk == "always" and storage == layout.MEMORY:
        warnings.warn(
            f"--on-disk always: the {info.get('factory')} index of {m} is not an IVF index "
            "with vectors; its lists stay in memory",
            stacklevel=3,
        )
    info.pop("lists_file", None)
    info.update(ondisk.write_index(directory, m, index, storage))


def write_posts(directory: Path, posts: pd.DataFrame, present: Mapping[str, np.ndarray]) -> None:
    """Write: the posts table, with a ``has_<m>`` column per modality."""
    for m, mask in present.items():
        posts[f"has_{m}"] = mask
    posts.to_parquet(directory / layout.POSTS_FILE, index=False)


def indexed_posts(model: Any, store_dir: Path) -> tuple[StoreView, list[str]]:
    """Read: a lazy view of the store's posts that have an artifact in a modality the
    model and the store share (features not read yet), and those modalities."""
    fs = StoreReader(store_dir).view()
    mods = _check_store(model, fs, store_dir)
    keep = np.zeros(fs.num_posts, dtype=bool)
    for m in mods:
        keep |= fs.present[m]
    if not keep.any():
        raise InputError(f"{store_dir}: no post has an artifact in {mods}")
    return fs.subset(np.flatnonzero(keep)).select(mods), mods


def build_index(
    model_dir: str | Path,
    store_dir: str | Path,
    dataset_dir: str | Path | None,
    out: str | Path,
    factory: str | Mapping[str, str] | None = None,
    nprobe: int | None = None,
    overwrite: bool = False,
    batch_size: int = 8192,
    progress: bool = True,
    target: RecallTarget | None = DEFAULT_TARGET,
    params: Mapping[str, Any] | None = None,
    backend: str = "faiss",
    uri: str | None = None,
    on_disk: str = "auto",
) -> Path:
    """Embed every present artifact of ``store_dir`` with the model and write an index at ``out``.

    ``backend="milvus"`` puts the vector indexes in Milvus at ``uri`` (a server, or a Milvus
    Lite ``*.db`` file) instead of FAISS files; ``factory`` is then the Milvus index type
    (``FLAT``, the default, ``HNSW`` or ``IVF_FLAT``; see :mod:`nmodal.index.milvus`).

    ``factory`` overrides the FAISS factory string (one for all modalities or one per
    modality); by default exact ``Flat`` up to ``FLAT_MAX_ARTIFACTS`` artifacts, above that
    the IVF size and ``nprobe`` whose measured recall reaches ``target``
    (:func:`build_modality`). ``nprobe`` / ``params`` fix search knobs instead of tuning them.

    ``on_disk``: where IVF indexes keep their inverted lists (:mod:`nmodal.index.ondisk`):
    ``"auto"`` (on disk from ``ONDISK_AUTO_BYTES`` of lists per modality), ``"always"``,
    ``"never"``; recorded in the manifest and re-applied by :func:`add_posts`.
    """
    model_dir, store_dir, out = Path(model_dir), Path(store_dir), Path(out)
    check_separate(out, model_dir, store_dir, dataset_dir)
    ondisk.check_on_disk(on_disk)
    remote = _milvus_for(backend, uri, factory, out)
    if remote is not None and on_disk == "always":
        raise InputError("--on-disk always is for FAISS indexes, not --backend milvus")
    model = _load_model(model_dir)
    fingerprint = layout.model_fingerprint(model_dir)
    fs, mods = indexed_posts(model, store_dir)
    posts = posts_metadata(fs.post_ids, dataset_dir)
    knobs = {**(params or {}), "nprobe": nprobe}

    previous = _previous_milvus(out) if remote is not None and overwrite else None

    def fill(tmp: Path) -> None:
        # embeddings stream to their files; each FAISS index is built from the memory-mapped
        # file, written, and dropped before the next: one modality's index in memory at once
        present = write_embeddings(model, fs, mods, tmp, batch_size, progress)
        total = sum(int(present[m].sum()) for m in mods)
        info: dict[str, Any] = {}
        if remote is not None:
            info = fill_collections(remote, _embeddings(tmp, mods), present, posts, knobs)
        for m in mods:
            if remote is None:
                fac = factory.get(m) if isinstance(factory, Mapping) else factory
                emb = _embeddings(tmp, mods)
                index, info[m] = build_modality(
                    emb, present, m, fac, total, knobs, target, progress
                )
                write_faiss(tmp, m, index, info[m], on_disk)
                del index, emb
            info[m]["encoder"] = fs.encoders.get(m, {})
        write_posts(tmp, posts, present)
        layout.write_manifest(
            tmp,
            {
                **({} if remote is None else {"backend": remote.describe()}),
                "format": layout.FORMAT,
                "version": layout.VERSION,
                "model": {"path": str(model_dir.resolve()), "fingerprint": fingerprint},
                "store": str(store_dir.resolve()),
                "dataset_dir": str(Path(dataset_dir).resolve()) if dataset_dir else None,
                "media_roots": media_roots(posts),
                "projection_dim": int(model.config.projection_dim),
                "num_posts": fs.num_posts,
                "num_artifacts": total,
                **({} if remote is not None else {"on_disk": on_disk}),
                "modalities": info,
            },
        )

    written = layout.write_directory_atomically(out, fill, overwrite=overwrite)
    if previous is not None:  # the old build's collections, once the new folder is in place
        previous[0].drop(previous[1])
    return written


def _milvus_for(
    backend: str, uri: str | None, factory: str | Mapping[str, str] | None, out: Path
) -> MilvusVectors | None:
    """The Milvus collections a build writes (None for the FAISS backend)."""
    if backend == "faiss":
        if uri is not None:
            raise InputError("--uri is for --backend milvus")
        return None
    if backend != "milvus":
        raise InputError(f"unknown index backend {backend!r}; choose faiss or milvus")
    if uri is None:
        raise InputError(
            "--backend milvus needs --uri (http://host:19530 or a Milvus Lite *.db file)"
        )
    if isinstance(factory, Mapping):
        raise InputError("the Milvus backend takes one index type for all modalities")
    return MilvusVectors(resolve_uri(uri), new_collection_name(out.name), factory or "FLAT")


def _previous_milvus(out: Path) -> tuple[MilvusVectors, list[str]] | None:
    """The Milvus collections of the index now at ``out`` and its modalities (None: no
    index there, or a FAISS one)."""
    if not (out / layout.MANIFEST).exists():
        return None
    try:
        manifest = layout.read_index_manifest(out, verify=False)
        backend = layout.milvus_backend(manifest, out)
    except InputError:
        return None
    if backend is None:
        return None
    return MilvusVectors.from_manifest(backend), list(manifest["modalities"])


def _trained_on(info: Mapping[str, Any]) -> int:
    """Vectors a modality's IVF centroids were trained on (``info``: its manifest entry; an
    index from before "trained_on" was recorded counts as trained on what it holds)."""
    return int(info.get("trained_on", info["count"]))


def _retrains(info: Mapping[str, Any], count: int, retrain: str) -> bool:
    """Whether ``add_posts`` retrains a modality's index now holding ``count`` vectors."""
    if info["exact"] or retrain == "never":
        return False
    return retrain == "always" or count > RETRAIN_GROWTH * max(_trained_on(info), 1)


def _retrained(
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    m: str,
    info: Mapping[str, Any],
    progress: bool,
) -> tuple[Any, dict[str, Any]]:
    """Modality ``m``'s index rebuilt over all its vectors: the same factory, or for a
    measured index the same measurement (an auto-chosen one may change its IVF size)."""
    knobs = {"nprobe": info.get("nprobe"), **(info.get("params") or {})}
    recorded = info.get("tuning")
    if recorded is None:
        index = build_faiss(emb[m], present[m], info["factory"], progress, desc=f"retrain {m}")
        set_knobs(index, knobs)
        new = dict(info)
        new["trained_on"] = int(present[m].sum())
        return index, new
    target = recorded_target(recorded)
    factory = None if info.get("auto") else info["factory"]
    total = sum(int(p.sum()) for p in present.values())
    index, new = build_modality(emb, present, m, factory, total, {}, target, progress)
    return index, {**new, "encoder": info.get("encoder", {})}


def _check_encoders(manifest: Mapping[str, Any], fs: StoreView, store_dir: Path) -> None:
    """The store's encoders must be the index's (name and version), modality by modality."""
    for m in manifest["modalities"]:
        old = manifest["modalities"][m].get("encoder") or {}
        new = fs.encoders.get(m) or {}
        if (
            old.get("name")
            and new.get("name")
            and ((old.get("name"), old.get("version")) != (new.get("name"), new.get("version")))
        ):
            raise InputError(
                f"{store_dir}: modality {m!r} encoder {new.get('name')}/{new.get('version')} differs "
                f"from the index's {old.get('name')}/{old.get('version')}"
            )


def new_posts(
    model: Any, manifest: Mapping[str, Any], old_ids: np.ndarray, store_dir: Path
) -> StoreView | None:
    """Read: a lazy view of the store's posts the index lacks (``old_ids``) that have an
    indexed modality, restricted to the indexed modalities the store has (a store extracted
    without one of them adds posts without it, as ``index build`` indexes such a store);
    None when there are none."""
    fs = StoreReader(store_dir).view()
    mods = [m for m in manifest["modalities"] if m in fs.modalities]
    if not mods:
        raise InputError(
            f"{store_dir}: the store has none of the index's modalities "
            f"{list(manifest['modalities'])}"
        )
    _check_store(model, fs, store_dir)
    _check_encoders(manifest, fs, store_dir)
    is_new = ~np.isin(fs.post_ids, np.asarray(old_ids, dtype=str))
    has_any = np.zeros(fs.num_posts, dtype=bool)
    for m in mods:
        has_any |= fs.present[m]
    rows = np.flatnonzero(is_new & has_any)
    return fs.subset(rows).select(mods) if len(rows) else None


def grow_modality(
    index_dir: Path,
    emb: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    m: str,
    info: dict[str, Any],
    n_old: int,
    retrain: str,
    progress: bool,
) -> tuple[Any, dict[str, Any]]:
    """Compute: modality ``m``'s index after adding the rows from ``n_old`` on: the old
    index with the new vectors added (a measured one re-tuned to its recorded recall), or,
    when it must be retrained (:func:`_retrains`, or no knob reaches the recall), rebuilt
    over all its vectors. Returns the index and its updated manifest entry."""
    count = int(present[m].sum())
    if not _retrains(info, count, retrain):
        # on-disk lists are copied into memory to grow; written anew into the staged directory
        index, _ = ondisk.read_index(index_dir, m, info, in_memory=True)
        rows = n_old + np.flatnonzero(present[m][n_old:])
        _add_vectors(index, emb[m], rows, f"add {m}", progress)
        info["count"] = count
        # a measured index keeps its recall: re-tune nprobe, else retrain below
        if "tuning" not in info or retune_after_add(index, emb, present, m, info, n_old):
            return index, info
        del index
    if progress:
        print(
            f"retraining the {info['factory']} index of {m}: {count} vectors, its "
            f"lists were trained on {_trained_on(info)}",
            file=sys.stderr,
        )
    index, info = _retrained(emb, present, m, info, progress)
    info["count"] = count
    return index, info


def add_posts(
    index_dir: str | Path,
    model_dir: str | Path,
    store_dir: str | Path,
    dataset_dir: str | Path | None = None,
    batch_size: int = 8192,
    progress: bool = True,
    retrain: str = "auto",
    on_disk: str | None = None,
) -> int:
    """Add the posts of ``store_dir`` that the index lacks; returns how many were added.

    Posts already indexed are skipped (their features are not re-read into the index). The
    FAISS indexes keep their factory; with exact indexes the result equals a full rebuild
    over the union of posts. IVF indexes keep their trained centroids, unless ``retrain``
    is ``"always"``, or ``"auto"`` and the index now holds more than ``RETRAIN_GROWTH``
    times the vectors its centroids were trained on: then it is retrained on all its
    vectors (the stored embeddings), which equals a rebuild with the same factory. The
    directory is rewritten atomically: the old embeddings are copied file to file, the new
    ones streamed after them, and the indexes grown from the memory-mapped files.

    ``on_disk`` (None: the policy the index records, ``"auto"`` for indexes from before it)
    decides again where each grown IVF index keeps its lists (:mod:`nmodal.index.ondisk`):
    an index's on-disk lists are read into memory, grown, and written as a new list file.
    """
    if retrain not in RETRAIN:
        raise InputError(f"retrain must be one of {RETRAIN}, got {retrain!r}")
    index_dir, model_dir, store_dir = Path(index_dir), Path(model_dir), Path(store_dir)
    manifest = layout.read_index_manifest(index_dir)
    policy = ondisk.check_on_disk(on_disk or str(manifest.get("on_disk", "auto")))
    layout.check_model(manifest, model_dir, index_dir)
    mods = list(manifest["modalities"])
    backend = layout.milvus_backend(manifest, index_dir)
    remote = None if backend is None else MilvusVectors.from_manifest(backend)
    model = _load_model(model_dir)
    old_posts = pd.read_parquet(index_dir / layout.POSTS_FILE)
    fs = new_posts(model, manifest, old_posts["post_id"].to_numpy(dtype=str), store_dir)
    if fs is None:
        return 0
    dataset = dataset_dir if dataset_dir is not None else manifest.get("dataset_dir")
    n_old = len(old_posts)
    posts = pd.concat(
        [
            old_posts.drop(columns=[c for c in old_posts if c.startswith("has_")]),
            posts_metadata(fs.post_ids, dataset),
        ],
        ignore_index=True,
    )

    def fill(tmp: Path) -> None:
        present = write_embeddings(
            model, fs, mods, tmp, batch_size, progress, previous=index_dir, previous_rows=n_old
        )
        for m in mods:
            info = manifest["modalities"][m]
            if remote is not None:  # Milvus indexes its new rows itself (below)
                info["count"] = info["trained_on"] = int(present[m].sum())
                continue
            emb = _embeddings(tmp, mods)
            index, manifest["modalities"][m] = grow_modality(
                index_dir, emb, present, m, info, n_old, retrain, progress
            )
            write_faiss(tmp, m, index, manifest["modalities"][m], policy)
            del index, emb
        if remote is not None:
            fill_collections(remote, _embeddings(tmp, mods), present, posts, first=n_old)
        write_posts(tmp, posts, present)
        manifest["num_posts"] = len(posts)
        manifest["media_roots"] = media_roots(posts)
        manifest["num_artifacts"] = sum(int(present[m].sum()) for m in mods)
        if remote is None:
            manifest["on_disk"] = policy
        layout.write_manifest(tmp, manifest)

    layout.write_directory_atomically(index_dir, fill, overwrite=True)
    if (
        remote is None
        and all(info["exact"] for info in manifest["modalities"].values())
        and manifest["num_artifacts"] > FLAT_MAX_ARTIFACTS
    ):
        warnings.warn(
            f"{index_dir} now holds {manifest['num_artifacts']} artifacts in exact indexes; "
            "rebuild it (nmodal index build --overwrite) to switch to approximate ones",
            stacklevel=2,
        )
    return fs.num_posts

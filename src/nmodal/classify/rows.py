"""Classifier rows from a trained model and a feature store, and their labels and groups.

``embedding_rows`` embeds every present artifact (one row per artifact, tagged with its
post and modality) or fuses a post's artifacts into one row (the mean of its available
modality embeddings). ``label_rows`` joins the rows to the posts table: the label (a
column such as ``stance`` or ``account``, or an account -> label mapping), the groups the
splits must respect (post, or account) and the dates for a time split.

Example:
    >>> rows = embedding_rows(model, StoreReader("store").view(), fusion=None)  # doctest: +SKIP
    >>> data = label_rows(rows, read_posts_table("dataset"), label="stance", by="post")  # doctest: +SKIP
    >>> cross_validate(data.X, data.y, data.groups, classifier="rf")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nmodal.errors import InputError
from nmodal.features import FeatureSet, StoreReader, StoreView
from nmodal.features.embedding import embed_rows
from nmodal.sources.posts import read_posts

GROUPINGS: tuple[str, ...] = ("post", "account", "time")
#: fused rows divided out of the float64 sums this many at a time
FUSE_CHUNK = 65536


@dataclass
class EmbeddingRows:
    """``X[i]`` is the embedding of post ``post_ids[i]`` in ``modality[i]`` ("fused" if fused)."""

    X: np.ndarray
    post_ids: np.ndarray
    modality: np.ndarray

    def __len__(self) -> int:
        return len(self.X)


@dataclass
class LabelledRows:
    """Rows ready for :func:`nmodal.classify.cross_validate` (``times`` set for a time split)."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    post_ids: np.ndarray
    modality: np.ndarray
    times: np.ndarray | None
    dropped: dict[str, int]
    #: what ``dropped`` counts: ``rows`` (:func:`label_rows`) or ``posts`` (:func:`labelled_rows`)
    dropped_unit: str = "rows"

    def __len__(self) -> int:
        return len(self.X)


def embedding_rows(
    model: Any,
    fs: FeatureSet | StoreView,
    modalities: Sequence[str] | None = None,
    fusion: str | None = None,
) -> EmbeddingRows:
    """Embed the store's artifacts with ``model``.

    Args:
        model: a :class:`nmodal.model.NModalModel` (anything with ``embed`` and ``modalities``).
        fs: the feature set, in memory or a :class:`~nmodal.features.StoreView` of a store on
            disk: the features are read and embedded a chunk at a time
            (:func:`nmodal.features.embedding.embed_rows`), only the embeddings are kept;
            the rows are the same either way.
        modalities: which modalities (default: those the model and the store share).
        fusion: ``None`` for one row per present artifact; ``"mean"`` for one row per post
            (mean of the post's available modality embeddings; posts with none are left out).
    """
    mods = _modalities(model, fs, modalities, fusion)
    if fusion is None:
        post_ids, modality = row_keys(fs, mods, fusion)
        X: np.ndarray | None = None
        start = 0
        for m in mods:  # each modality's embeddings straight into their rows of X
            rows = np.flatnonzero(fs.present[m])
            z = embed_rows(model, fs, m, rows, out=None if X is None else X[start:])
            if X is None:
                X = np.empty((len(post_ids), z.shape[1]), dtype=np.float32)
                X[: len(rows)] = z
            start += len(rows)
            del z
        assert X is not None
        return EmbeddingRows(X=X, post_ids=post_ids, modality=modality)
    # the mean of each post's modality embeddings, one modality's embeddings in memory at a
    # time (summed in float64, in modality order, as they always were)
    total: np.ndarray | None = None
    count = np.zeros(fs.num_posts, dtype=np.int64)
    for m in mods:
        z = embed_rows(model, fs, m, np.flatnonzero(fs.present[m]))
        if total is None:
            total = np.zeros((fs.num_posts, z.shape[1]), dtype=np.float64)
        total[fs.present[m]] += z
        count += fs.present[m]
        del z
    assert total is not None
    keep = np.flatnonzero(count > 0)
    X = np.empty((len(keep), total.shape[1]), dtype=np.float32)
    for start in range(0, len(keep), FUSE_CHUNK):  # not a float64 copy of every kept row
        part = keep[start : start + FUSE_CHUNK]
        X[start : start + len(part)] = total[part] / count[part, None]
    return EmbeddingRows(X=X, post_ids=fs.post_ids[keep], modality=np.full(len(keep), "fused"))


def _modalities(
    model: Any,
    fs: FeatureSet | StoreView | StoreReader,
    modalities: Sequence[str] | None,
    fusion: str | None,
) -> list[str]:
    """The modalities to embed (default: those the model and the store share), checked."""
    if modalities is None:
        mods = [m for m in model.modalities if m in fs.modalities]
    else:
        mods = list(modalities)
    if not mods:
        raise InputError(
            f"model modalities {model.modalities} and store modalities {fs.modalities} do not overlap"
        )
    for m in mods:
        if m not in model.modalities:
            raise InputError(f"the model has no {m!r} head; it has {model.modalities}")
        if m not in fs.modalities:
            raise InputError(f"the feature store has no {m!r} features; it has {fs.modalities}")
    if fusion not in (None, "mean"):
        raise InputError(f"unknown fusion {fusion!r}; use None or 'mean'")
    return mods


def row_keys(
    fs: FeatureSet | StoreView, mods: Sequence[str], fusion: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(post_ids, modality)`` of the rows :func:`embedding_rows` makes, in its order,
    without embedding anything (from the presence masks alone)."""
    if fusion is None:
        post_ids = np.concatenate([fs.post_ids[fs.present[m]] for m in mods])
        modality = np.concatenate([np.full(int(fs.present[m].sum()), m) for m in mods])
        return post_ids, modality
    count = np.zeros(fs.num_posts, dtype=np.int64)
    for m in mods:
        count += fs.present[m]
    keep = count > 0
    return fs.post_ids[keep], np.full(int(keep.sum()), "fused")


def read_posts_table(path: str | Path) -> pd.DataFrame:
    """The posts table of a dataset directory (``posts.parquet``) or a Parquet/CSV file.

    A directory is read with :func:`nmodal.sources.posts.read_posts`.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: posts table not found")
    if path.is_dir():
        table = read_posts(path, absolute=False)
    elif path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix == ".csv":
        table = pd.read_csv(path, dtype={"post_id": str})
    else:
        raise InputError(f"{path}: expected a dataset directory, a .parquet or a .csv file")
    if "post_id" not in table.columns:
        raise InputError(
            f"{path}: posts table has no post_id column (columns: {list(table.columns)})"
        )
    table = table.assign(post_id=table["post_id"].astype(str))
    if table["post_id"].duplicated().any():
        dup = table.loc[table["post_id"].duplicated(), "post_id"].iloc[0]
        raise InputError(f"{path}: post_id {dup!r} appears more than once")
    return table


def read_label_mapping(path: str | Path, label: str | None = None) -> dict[str, str]:
    """An ``account -> label`` mapping from JSON (an object) or CSV (``account`` + label columns).

    For CSV the label column is ``label`` if named, else the first column that is not
    ``account``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: label mapping not found")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object mapping account -> label")
        return {str(k): str(v) for k, v in data.items() if v is not None}
    table = pd.read_csv(path, dtype=str)
    if "account" not in table.columns or len(table.columns) < 2:
        raise InputError(f"{path}: expected CSV columns 'account' and a label column")
    others = [c for c in table.columns if c != "account"]
    col = label if label in others else others[0]
    table = table.dropna(subset=["account", col])
    return dict(zip(table["account"], table[col], strict=True))


def _missing(values: pd.Series) -> np.ndarray:
    return np.asarray(values.isna() | (values.astype(str).str.strip() == ""))


@dataclass
class Labels:
    """Which rows keep a label (``keep``, a mask over the rows), and the kept rows' labels,
    groups and (time split) dates; ``dropped`` counts the rows left out, by reason."""

    keep: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    times: np.ndarray | None
    dropped: dict[str, int]


def label_rows(
    rows: EmbeddingRows,
    posts: pd.DataFrame,
    label: str,
    by: str = "post",
    mapping: Mapping[str, str] | None = None,
) -> LabelledRows:
    """Attach labels, groups and (for ``by="time"``) dates to ``rows``.

    ``label`` names a posts-table column (``stance``, ``account`` for provenance, ...);
    with ``mapping`` the label is ``mapping[account]``. ``by`` is ``post`` (group by post),
    ``account`` (group by account: are unseen accounts classified right?) or ``time``
    (group by post, split by the ``date`` column). Rows without a label, a known post, or
    (for time) a date are dropped and counted in ``dropped``.
    """
    labels = row_labels(rows.post_ids, posts, label, by, mapping)
    keep = labels.keep
    return LabelledRows(
        X=rows.X if keep.all() else rows.X[keep],
        y=labels.y,
        groups=labels.groups,
        post_ids=rows.post_ids[keep],
        modality=rows.modality[keep],
        times=labels.times,
        dropped=labels.dropped,
    )


def labelled_rows(
    model: Any,
    fs: FeatureSet | StoreView | StoreReader,
    posts: pd.DataFrame,
    label: str,
    modalities: Sequence[str] | None = None,
    fusion: str | None = None,
    by: str = "post",
    mapping: Mapping[str, str] | None = None,
) -> LabelledRows:
    """The labelled rows of ``label_rows(embedding_rows(model, fs, modalities, fusion),
    posts, ...)``, labelling first: only the posts that keep a label are embedded. From a
    :class:`~nmodal.features.StoreReader` only their shards are opened (presence masks
    included), and their features read a chunk at a time.

    Whether a row keeps its label depends on its post alone, so ``X``, ``y``, ``groups``,
    ``post_ids``, ``modality`` and ``times`` are those of the embed-everything path, in its
    order. ``dropped`` counts *posts* of ``fs`` (``dropped_unit="posts"``): the artifacts
    of a post left out are never read, so they cannot be counted.
    """
    mods = _modalities(model, fs, modalities, fusion)
    post_level = row_labels(fs.post_ids, posts, label, by, mapping)
    keep = np.flatnonzero(post_level.keep)
    if isinstance(fs, StoreReader):
        data: FeatureSet | StoreView = fs.view(mods, keep)
    else:
        data = fs if len(keep) == fs.num_posts else fs.subset(keep)
    rows = embedding_rows(model, data, mods, fusion)
    if len(rows) == 0:
        raise InputError(
            f"no labelled post has a {'/'.join(mods)} artifact (posts dropped: "
            f"{post_level.dropped})"
        )
    labels = row_labels(rows.post_ids, posts, label, by, mapping)  # every row keeps its label
    if not labels.keep.all():
        raise AssertionError("a labelled post's row lost its label")  # a bug
    return LabelledRows(
        X=rows.X,
        y=labels.y,
        groups=labels.groups,
        post_ids=rows.post_ids,
        modality=rows.modality,
        times=labels.times,
        dropped=post_level.dropped,
        dropped_unit="posts",
    )


def row_labels(
    post_ids: np.ndarray,
    posts: pd.DataFrame,
    label: str,
    by: str = "post",
    mapping: Mapping[str, str] | None = None,
) -> Labels:
    """The labelling of :func:`label_rows` for rows of posts ``post_ids`` (no embeddings
    needed)."""
    if by not in GROUPINGS:
        raise InputError(f"unknown grouping {by!r}; choose from {', '.join(GROUPINGS)}")
    if by == "account" and label == "account" and mapping is None:
        raise InputError("cannot group by account when the label is the account")
    table = posts.set_index("post_id")
    # a hash lookup: np.isin on object arrays compares pairwise (minutes at 10^4 posts)
    known = np.asarray(pd.Index(post_ids).isin(table.index))
    if len(post_ids) and not known.any():
        raise InputError(
            f"the posts table holds none of the {len(post_ids)} posts of the store: it is another "
            "collection's (give the --posts the store was extracted from)"
        )
    dropped = {"unknown_post": int((~known).sum())}
    matched = table.reindex(post_ids)
    if (mapping is not None or by == "account") and "account" not in matched.columns:
        raise InputError("the posts table has no account column")
    if mapping is not None:
        values = matched["account"].astype("string").map(dict(mapping))
    else:
        if label not in matched.columns:
            raise InputError(
                f"the posts table has no {label!r} column (columns: {list(posts.columns)})"
            )
        values = matched[label]
    no_label = _missing(values) & known
    dropped["no_label"] = int(no_label.sum())
    keep = known & ~no_label
    times = None
    if by == "time":
        if "date" not in matched.columns:
            raise InputError("a time split needs a date column in the posts table")
        dates = pd.to_datetime(matched["date"], utc=True, errors="coerce")
        no_date = np.asarray(dates.isna()) & keep
        dropped["no_date"] = int(no_date.sum())
        keep &= ~no_date
        times = dates.dt.tz_convert(None).to_numpy()[keep].astype("datetime64[ns]")
    if by == "account":
        accounts = matched["account"]
        no_account = _missing(accounts) & keep
        dropped["no_account"] = int(no_account.sum())
        keep &= ~no_account
        groups = accounts.astype(str).to_numpy()[keep]
    else:
        groups = post_ids[keep]
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.dropna(), 1) == 0):
        values = values.astype("Int64")  # 1.0 -> "1", not "1.0", when NaN forced floats
    y = values.astype(str).to_numpy()[keep]
    if len(y) == 0:
        raise InputError(f"no row has a {label!r} label (dropped: {dropped})")
    return Labels(
        keep=keep,
        y=np.asarray(y, dtype=str),
        groups=np.asarray(groups, dtype=str),
        times=times,
        dropped=dropped,
    )

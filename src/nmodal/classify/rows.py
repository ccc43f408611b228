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
from nmodal.features import FeatureSet, StoreView
from nmodal.features.embedding import embed_rows
from nmodal.sources.posts import read_posts

GROUPINGS: tuple[str, ...] = ("post", "account", "time")


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
    embedded = {m: embed_rows(model, fs, m, np.flatnonzero(fs.present[m])) for m in mods}
    if fusion is None:
        X = np.concatenate([embedded[m] for m in mods]).astype(np.float32)
        post_ids = np.concatenate([fs.post_ids[fs.present[m]] for m in mods])
        modality = np.concatenate([np.full(int(fs.present[m].sum()), m) for m in mods])
        return EmbeddingRows(X=X, post_ids=post_ids, modality=modality)
    dim = next(iter(embedded.values())).shape[1]
    total = np.zeros((fs.num_posts, dim), dtype=np.float64)
    count = np.zeros(fs.num_posts, dtype=np.int64)
    for m in mods:
        total[fs.present[m]] += embedded[m]
        count += fs.present[m]
    keep = count > 0
    X = (total[keep] / count[keep, None]).astype(np.float32)
    return EmbeddingRows(
        X=X, post_ids=fs.post_ids[keep], modality=np.full(int(keep.sum()), "fused")
    )


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
    if by not in GROUPINGS:
        raise InputError(f"unknown grouping {by!r}; choose from {', '.join(GROUPINGS)}")
    if by == "account" and label == "account" and mapping is None:
        raise InputError("cannot group by account when the label is the account")
    table = posts.set_index("post_id")
    # a hash lookup: np.isin on object arrays compares pairwise (minutes at 10^4 posts)
    known = np.asarray(pd.Index(rows.post_ids).isin(table.index))
    dropped = {"unknown_post": int((~known).sum())}
    matched = table.reindex(rows.post_ids)
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
        groups = rows.post_ids[keep]
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.dropna(), 1) == 0):
        values = values.astype("Int64")  # 1.0 -> "1", not "1.0", when NaN forced floats
    y = values.astype(str).to_numpy()[keep]
    if len(y) == 0:
        raise InputError(f"no row has a {label!r} label (dropped: {dropped})")
    return LabelledRows(
        X=rows.X[keep],
        y=np.asarray(y, dtype=str),
        groups=np.asarray(groups, dtype=str),
        post_ids=rows.post_ids[keep],
        modality=rows.modality[keep],
        times=times,
        dropped=dropped,
    )

"""Searching a post index: candidates from FAISS, exact post scores, filters.

How a search runs (see :mod:`nmodal.index.scoring` for the scoring rule):

1. For every candidate modality ``m`` the query artifacts compared with ``m`` are searched
   in ``m``'s FAISS index in one call, for ``k'`` candidates each (filters are applied inside
   FAISS with an id selector).
2. The union of candidate posts is scored exactly from the stored float32 embeddings: every
   pair the post has counts, not only the pairs in which it was a hit.
3. With exact (``Flat``) indexes the result is certified: if the k-th best score is at least
   the best score an unlisted post could reach (from the last similarity of each cut-off
   list) the top k is exact; otherwise ``k'`` grows (and beyond a quarter of the posts every
   allowed post is scored directly). With approximate indexes one round is run and the
   result says ``exact: false``.

``nprobe`` (IVF lists visited) is set when the index is opened and can be overridden per
search (``search(..., nprobe=64)``): it travels in the FAISS search parameters of that call,
so concurrent searches with different values never touch each other's (or the shared
index's) setting. It is capped at each modality's number of lists and ignored by exact
indexes. An ``IVF...,Flat`` index visiting all its lists scores every vector exactly, so
such a search is certified like a ``Flat`` one and says ``exact: true``.

When filters leave at most ``dense_max`` posts (or an index type cannot filter by id: plain
``PQ``), those posts are scored directly (exact).

Example:
    >>> index = PostIndex.open("idx")  # doctest: +SKIP
    >>> result = index.more_like_this("chan1/42", k=10, filters=Filters(accounts=("chan1",)))  # doctest: +SKIP
    >>> [(h.post_id, round(h.score, 3)) for h in result.hits]  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nmodal.errors import InputError
from nmodal.index import layout, ondisk
from nmodal.index.factory import (
    KNOBS,
    check_knobs,
    id_map_of,
    is_exact,
    is_flat_ivf,
    ivf_of,
    knob_values,
    knobs_of,
    search_parameters,
    set_knobs,
    set_nprobe,
    takes_selectors,
)
from nmodal.index.milvus import MilvusVectors, filter_expression
from nmodal.index.scoring import (
    COLLATIONS,
    collate,
    pair_similarities,
    query_pairs,
    top_k,
    upper_bound,
)

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: a link to a Telegram post: t.me/<channel>/<message> or t.me/c/<channel id>/<message>
_TME_LINK = re.compile(
    r"^(?:https?://)?(?:www\.)?(?:t|telegram)\.me/(?:s/)?(c/)?([A-Za-z0-9_]+)/(\d{1,12})(?:/\d+)?$"
)
#: what a date or an ISO 8601 time looks like: YYYY-MM-DD, then optionally a time and a zone
_DATE_TEXT = re.compile(
    r"^[+-]?\d{4,}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)


def parse_date(value: str | None, end: bool = False) -> pd.Timestamp | None:
    """``"2024-03-01"`` -> a naive UTC timestamp; ``end=True`` makes a bare date inclusive."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not _DATE_TEXT.match(text):  # pandas would also read "-1" or "1700000000" as a time
        raise InputError(f"date {text!r} is not a date (use YYYY-MM-DD or ISO 8601)")
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise InputError(f"date {text!r} is not a date (use YYYY-MM-DD or ISO 8601)") from exc
    if ts is pd.NaT:
        raise InputError(f"date {text!r} is not a date (use YYYY-MM-DD or ISO 8601)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    # Dates outside what nanosecond timestamps hold (1677-2262, e.g. 0000-01-01) are clamped
    # to that range: they filter nothing out on their side, and never overflow.
    if ts < pd.Timestamp.min:
        return pd.Timestamp.min
    if ts > pd.Timestamp.max:
        return pd.Timestamp.max
    ts = ts.as_unit("ns")
    if end and _DATE_ONLY.match(text):
        day = pd.Timedelta(days=1)
        ts = pd.Timestamp.max if ts > pd.Timestamp.max - day else ts + day - pd.Timedelta(1, "ns")
    return ts


FORWARDS = ("any", "only", "none")


@dataclass(frozen=True)
class Filters:
    """Restrict results to some accounts, a date range (inclusive; bare dates = whole day),
    forwards from some origins (``forwarded_from``: names or ids such as ``channel123``),
    or by whether posts are forwards at all (``forwards``: ``any``, ``only``, ``none``)."""

    accounts: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    forwarded_from: tuple[str, ...] = ()
    forwards: str = "any"

    def __post_init__(self) -> None:
        if self.forwards not in FORWARDS:
            raise InputError(f"forwards must be one of {FORWARDS}, got {self.forwards!r}")

    def is_empty(self) -> bool:
        return (
            not self.accounts
            and self.since is None
            and self.until is None
            and not self.forwarded_from
            and self.forwards == "any"
        )

    def mask(
        self,
        accounts: np.ndarray,
        dates: np.ndarray,
        origins: tuple[np.ndarray, ...] = (),
    ) -> np.ndarray | None:
        """Boolean mask over posts, or None when nothing is filtered. ``origins``: per-post
        forwarded-from names and ids (None where a post is not a forward)."""
        if self.is_empty():
            return None
        keep = np.ones(len(accounts), dtype=bool)
        if self.accounts:
            keep &= np.isin(accounts, np.asarray(self.accounts, dtype=object))
        if self.forwards != "any" or self.forwarded_from:
            is_fwd = np.zeros(len(accounts), dtype=bool)
            match = np.zeros(len(accounts), dtype=bool)
            wanted = np.asarray(self.forwarded_from, dtype=object)
            for values in origins:
                is_fwd |= np.asarray([v is not None for v in values], dtype=bool)
                if len(wanted):
                    match |= np.isin(values, wanted)
            if self.forwards == "only":
                keep &= is_fwd
            elif self.forwards == "none":
                keep &= ~is_fwd
            if len(wanted):
                keep &= match
        since, until = parse_date(self.since), parse_date(self.until, end=True)
        if since is not None and until is not None and since > until:
            raise InputError(f"the start date {self.since} is after the end date {self.until}")
        if since is not None:
            keep &= dates >= since.to_datetime64()
        if until is not None:
            keep &= dates <= until.to_datetime64()
        return keep


@dataclass
class Hit:
    rank: int
    post_id: str
    score: float
    #: the pairs that made the score: query artifact modality, matched artifact modality, cosine
    matches: list[dict[str, Any]]
    post: dict[str, Any]


@dataclass
class SearchResult:
    hits: list[Hit]
    query: list[str]
    modalities: list[str]
    collate: str
    exact: bool
    candidates: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (hits' ``matches`` and ``post`` are the same objects, not copies)."""
        return {
            "hits": [vars(hit).copy() for hit in self.hits],
            "query": list(self.query),
            "modalities": list(self.modalities),
            "collate": self.collate,
            "exact": self.exact,
            "candidates": self.candidates,
            "extra": dict(self.extra),
        }


def _plain(value: Any) -> Any:
    """A metadata cell (already None when missing) as a JSON-ready Python value."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def filter_fields(posts: pd.DataFrame) -> dict[str, np.ndarray | None]:
    """The post-aligned fields :class:`Filters` test: ``account`` (objects), ``dates``
    (naive UTC datetime64[ns], NaT when missing), ``forwarded_from`` / ``forwarded_from_id``
    (objects, None when missing; None for a column the table lacks)."""
    accounts = (
        posts["account"].astype(object).to_numpy()
        if "account" in posts
        else np.full(len(posts), None)
    )
    dates = pd.to_datetime(posts["date"], utc=True, errors="coerce") if "date" in posts else None
    out: dict[str, np.ndarray | None] = {
        "account": accounts,
        "dates": (
            dates.dt.tz_localize(None).to_numpy("datetime64[ns]")
            if dates is not None
            else np.full(len(posts), np.datetime64("NaT"), dtype="datetime64[ns]")
        ),
    }
    for col in ("forwarded_from", "forwarded_from_id"):
        if col in posts:
            values = posts[col].astype(object)
            out[col] = values.where(values.notna(), None).to_numpy(dtype=object)
        else:
            out[col] = None
    return out


def check_nprobe(nprobe: Any) -> int | None:
    """``nprobe`` as an int, or None; InputError unless it is a positive integer."""
    if nprobe is None:
        return None
    if isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer)) or nprobe < 1:
        raise InputError(f"nprobe must be a positive integer (IVF lists to visit), got {nprobe!r}")
    return int(nprobe)


def index_knobs(nprobe: int | None, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` with ``nprobe`` merged in, checked (see :func:`nmodal.index.factory.check_knobs`)."""
    merged = dict(params or {})
    if nprobe is not None:
        merged["nprobe"] = nprobe
    return check_knobs(merged)


class PostIndex:
    """An opened post index (read-only, thread-safe for concurrent searches)."""

    #: scored directly (no FAISS) when filters leave at most this many posts
    dense_max: int = 50_000
    #: OpenMP threads FAISS uses per search call (set for the calling thread only). One query
    #: is too small to share: on a busy 2-core machine 2 threads made a 2k-vector search 90x
    #: slower than 1; concurrent requests already run in parallel threads.
    search_threads: int = 1

    def __init__(
        self,
        directory: Path,
        manifest: dict[str, Any],
        posts: pd.DataFrame,
        emb: dict[str, np.ndarray],
        present: dict[str, np.ndarray],
        indexes: dict[str, Any],
        milvus: MilvusVectors | None = None,
    ) -> None:
        self.directory = directory
        #: the Milvus collections searched instead of ``indexes`` (None: FAISS)
        self.milvus = milvus
        self.manifest = manifest
        self.posts = posts
        self.emb = emb
        self.present = present
        self.indexes = indexes
        self.modalities: list[str] = list(manifest["modalities"])
        self.post_ids = posts["post_id"].to_numpy(dtype=object)
        self._row_of = pd.Index(self.post_ids)
        fields = filter_fields(posts)
        self.accounts: np.ndarray = fields["account"]  # type: ignore[assignment]
        self.dates: np.ndarray = fields["dates"]  # type: ignore[assignment]
        self.exact = {m: is_exact(info["factory"]) for m, info in manifest["modalities"].items()}
        self._ivf = {m: ivf_of(index) for m, index in indexes.items()}
        self._knobs = {m: knobs_of(index) for m, index in indexes.items()}
        self._id_map = {m: id_map_of(index) for m, index in indexes.items()}
        #: False when some index cannot filter by id (plain PQ): filtered searches score directly
        self._selectors = all(takes_selectors(index) for index in indexes.values())
        #: modalities whose IVF index stores raw float32 vectors (exact when every list is visited)
        self._flat_ivf = {m: is_flat_ivf(index) for m, index in indexes.items()}
        #: per-search defaults of the Milvus backend's modalities (FAISS keeps them in the index)
        self._milvus_defaults: dict[str, dict[str, Any]] = {}
        if milvus is not None:
            for m in self.modalities:
                info = manifest["modalities"][m]
                self.exact[m] = milvus.exact()
                self._ivf[m] = None
                self._knobs[m] = milvus.knobs()
                self._id_map[m] = None
                self._flat_ivf[m] = False
                values = {"nprobe": info.get("nprobe"), **(info.get("params") or {})}
                self._milvus_defaults[m] = {
                    k: v for k, v in values.items() if k in milvus.knobs() and v is not None
                }
        # metadata as plain object arrays (None for missing): per-hit lookups stay cheap
        self._has_date = "date" in posts
        self._meta: dict[str, np.ndarray] = {}
        for col in posts.columns:
            if col.startswith("has_") or col == "date":
                continue
            values = posts[col].astype(object)
            self._meta[col] = values.where(values.notna(), None).to_numpy(dtype=object)

    # ------------------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        directory: str | Path,
        nprobe: int | None = None,
        mmap: bool = True,
        params: Mapping[str, Any] | None = None,
    ) -> PostIndex:
        """Open an index directory; embeddings are memory-mapped unless ``mmap=False``.

        ``nprobe``: IVF lists visited by default (capped at each index's number of lists;
        default: the value recorded at build time). ``params``: other per-search defaults
        (``efSearch`` of HNSW indexes, ``k_factor`` of refined ones). A search can override
        them. IVF lists the manifest records on disk (``storage: "ondisk"``) are
        memory-mapped read-only from the directory opened (:mod:`nmodal.index.ondisk`).
        """
        nprobe = check_nprobe(nprobe)
        defaults = check_knobs(dict(params or {}))
        directory = Path(directory)
        manifest = layout.read_index_manifest(directory)
        posts = pd.read_parquet(directory / layout.POSTS_FILE)
        emb: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray] = {}
        indexes: dict[str, Any] = {}
        milvus = layout.milvus_backend(manifest)
        remote = None if milvus is None else MilvusVectors.from_manifest(milvus)
        if remote is not None:
            remote.load(list(manifest["modalities"]))
        for m, info in manifest["modalities"].items():
            try:
                emb[m] = np.load(
                    directory / layout.emb_file(m),
                    mmap_mode="r" if mmap else None,
                    allow_pickle=False,
                )
                present[m] = np.load(directory / layout.present_file(m), allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"{directory}: index files of modality {m!r} unreadable ({exc})"
                ) from exc
            if remote is None:
                # lists memory-mapped from <m>.ivfdata when the manifest says "ondisk"
                indexes[m], _ = ondisk.read_index(directory, m, info)
            if emb[m].shape[0] != len(posts) or present[m].shape != (len(posts),):
                raise InputError(f"{directory}: files of modality {m!r} do not match posts.parquet")
            held = remote.count(m) if remote is not None else int(indexes[m].ntotal)
            if held != int(present[m].sum()):
                where = (
                    layout.faiss_file(m)
                    if remote is None
                    else f"Milvus collection {remote.name(m)}"
                )
                raise InputError(
                    f"{directory}: {where} holds {held} vectors, expected {int(present[m].sum())}"
                )
            if remote is not None:
                continue
            set_knobs(indexes[m], {**(info.get("params") or {}), **defaults})
            set_nprobe(indexes[m], nprobe if nprobe is not None else info.get("nprobe"))
        index = cls(directory, manifest, posts, emb, present, indexes, milvus=remote)
        if remote is not None:
            overrides = {**defaults, **({} if nprobe is None else {"nprobe": nprobe})}
            for m in index.modalities:
                index._milvus_defaults[m].update(
                    {k: v for k, v in overrides.items() if k in remote.knobs()}
                )
        return index

    @property
    def num_posts(self) -> int:
        return len(self.post_ids)

    def nlist(self, modality: str) -> int | None:
        """Number of IVF lists of ``modality``'s index (None for non-IVF indexes)."""
        ivf = self._ivf[modality]
        return None if ivf is None else int(ivf.nlist)

    def default_nprobe(self, modality: str) -> int | None:
        """IVF lists a search of ``modality`` visits unless it asks otherwise (None: not IVF)."""
        ivf = self._ivf[modality]
        return None if ivf is None else int(ivf.nprobe)

    @property
    def dataset_dir(self) -> Path | None:
        d = self.manifest.get("dataset_dir")
        return Path(d) if d else None

    def row_of(self, post_id: str) -> int:
        """Post number of ``post_id``; KeyError if it is not indexed."""
        loc = self._row_of.get_loc(post_id)
        if not isinstance(loc, (int, np.integer)):
            raise KeyError(post_id)
        return int(loc)

    def find_post(self, ref: str) -> str | None:
        """The post id ``ref`` names: a post id, or a link to the post (its recorded ``url``,
        or ``https://t.me/<channel>/<message>``, ``t.me/c/<channel id>/<message>``); None
        when no indexed post matches."""
        ref = str(ref).strip()
        if not ref or len(ref) > 2048:
            return None
        try:
            return str(self.post_ids[self.row_of(ref)])
        except KeyError:
            pass
        keep = np.zeros(self.num_posts, dtype=bool)
        link = ref.split("?")[0].split("#")[0].rstrip("/")
        if "url" in self._meta:
            urls = pd.Series(self._meta["url"], dtype="string").str.split("?").str[0]
            keep |= (urls.str.rstrip("/") == link).fillna(False).to_numpy(dtype=bool)
        found = _TME_LINK.match(link)
        if found and not keep.any() and "message_id" in self._meta:
            private, name, message = found.group(1), found.group(2), found.group(3)
            messages = pd.to_numeric(pd.Series(self._meta["message_id"]), errors="coerce")
            same_message = (messages == int(message)).to_numpy(dtype=bool)
            column = "channel_id" if private else "channel_username"
            if column in self._meta:
                values = pd.Series(self._meta[column], dtype="string").str.lower()
                if private:  # t.me/c/<id> drops the -100 prefix of a channel's id
                    values = values.str.removeprefix("-100")
                keep |= same_message & (values == name.lower()).fillna(False).to_numpy(bool)
        rows = np.flatnonzero(keep)
        return str(self.post_ids[rows[0]]) if rows.size else None

    # ------------------------------------------------------------------------------ metadata

    def post(self, row: int) -> dict[str, Any]:
        """Metadata of post number ``row`` as JSON-ready values (dates ISO 8601, UTC)."""
        return self.posts_at(np.array([row]))[0]

    def posts_at(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """Metadata of several posts at once (one vectorised pass per column)."""
        columns = {col: [_plain(v) for v in values[rows]] for col, values in self._meta.items()}
        if self._has_date:
            dates = self.dates[rows]
            text = np.datetime_as_string(dates, unit="s", timezone="UTC")
            columns["date"] = [
                None if nat else str(t) for nat, t in zip(np.isnat(dates), text, strict=True)
            ]
        has = np.stack([self.present[m][rows] for m in self.modalities], axis=1).tolist()
        out = []
        for i, flags in enumerate(has):
            rec = {col: values[i] for col, values in columns.items()}
            rec["artifacts"] = [m for m, f in zip(self.modalities, flags, strict=True) if f]
            out.append(rec)
        return out

    def origins_list(self) -> list[str]:
        """The names and ids the index's forwards come from (what ``forwarded_from``
        filters match)."""
        values: set[str] = set()
        for col in ("forwarded_from", "forwarded_from_id"):
            if col in self._meta:
                values |= {str(v) for v in pd.Series(self._meta[col]).dropna().unique()}
        return sorted(values)

    def accounts_list(self) -> list[str]:
        values = pd.Series(self.accounts).dropna().astype(str)
        return sorted(values.unique().tolist())

    # ------------------------------------------------------------------------------ search

    def search(
        self,
        query_modalities: Sequence[str],
        vectors: np.ndarray,
        k: int = 20,
        filters: Filters | None = None,
        modalities: Sequence[str] | None = None,
        collation: str = "sum",
        include_same: bool = False,
        exclude: Sequence[int] = (),
        candidates: int | None = None,
        nprobe: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> SearchResult:
        """Rank posts for query artifacts ``vectors`` (``(J, p)``, L2-normalised) of ``query_modalities``.

        ``modalities`` restricts the candidate modalities (default: all indexed);
        ``include_same`` compares each query artifact with the post's artifacts of its own
        modality too (text with text, a photo with photos: what ``nmodal search``, the API and
        the page do by default); ``False`` (the default here) is the paper's protocol, other
        modalities only;
        ``exclude`` lists post numbers never returned (the query post of "more like this");
        ``candidates`` is ``k'`` per list (default ``max(4k, 100)``); ``nprobe`` is the IVF
        lists visited by this search only (default: the index's setting; capped at each
        index's number of lists; no effect on exact indexes). When FAISS was searched, the
        lists actually visited per IVF modality are in ``result.extra["nprobe"]``.
        ``params`` sets other per-search parameters of this search only: ``efSearch``
        (HNSW indexes), ``k_factor`` (refined ``...,RFlat`` indexes), ``nprobe``; a
        parameter that no modality's index has is an InputError (``nprobe`` on exact
        indexes is accepted and ignored). The values used are in ``result.extra["params"]``.
        """
        nprobe = check_nprobe(nprobe)
        knobs = self._checked_knobs(nprobe, params)
        nprobe = knobs.get("nprobe")
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        qmods = list(query_modalities)
        if vectors.shape != (len(qmods), self.projection_dim):
            raise InputError(
                f"query vectors of shape {vectors.shape}, expected ({len(qmods)}, {self.projection_dim})"
            )
        if collation not in COLLATIONS:
            raise InputError(f"unknown collation {collation!r}; choose one of {COLLATIONS}")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        cands = list(modalities) if modalities else list(self.modalities)
        unknown = [m for m in cands if m not in self.modalities]
        if unknown:
            raise InputError(f"unknown modality {unknown[0]!r}; this index has {self.modalities}")
        pairs = query_pairs(qmods, cands, include_same=include_same)
        if not pairs:
            raise InputError(
                f"nothing to search: a {'+'.join(qmods)} query is compared with other modalities "
                f"only, and the candidate modalities are {cands}"
            )
        origins = tuple(
            self._meta[c] for c in ("forwarded_from", "forwarded_from_id") if c in self._meta
        )
        allowed = (filters or Filters()).mask(self.accounts, self.dates, origins)
        excluded = np.asarray(list(exclude), dtype=np.int64)
        if allowed is not None and excluded.size:
            allowed = allowed.copy()
            allowed[excluded] = False
        n_allowed = self.num_posts if allowed is None else int(allowed.sum())

        extra: dict[str, Any] = {}
        if allowed is not None and (n_allowed <= self.dense_max or not self._selectors):
            rows, scores, sims, labels = self._score_dense(vectors, pairs, allowed, collation)
            exact, n_cand = True, len(rows)
        else:
            probes = self._probes(pairs, nprobe)
            expression = ""
            if self.milvus is not None:
                expression = filter_expression(filters, excluded.tolist(), parse_date)
            rows, scores, sims, labels, exact, n_cand = self._score_candidates(
                vectors, pairs, allowed, excluded, k, collation, candidates, probes, knobs,
                expression,
            )  # fmt: skip
            visited = {m: p for m, p in probes.items() if p is not None}
            if visited:
                extra["nprobe"] = visited
            used = {m: self._used_knobs(m, knobs, probes[m]) for m in pairs}
            used = {m: v for m, v in used.items() if v}
            if used:
                extra["params"] = used
        best = top_k(scores, k, tiebreak=rows)
        best_rows = rows[best]
        metadata = self.posts_at(best_rows)
        hits = []
        for rank, (row, score, pair_sims, post) in enumerate(
            zip(
                best_rows.tolist(),
                scores[best].tolist(),
                sims[best].tolist(),
                metadata,
                strict=True,
            ),
            start=1,
        ):
            matches = [
                {"query": qmods[j], "artifact": m, "score": v}
                for (j, m), v in zip(labels, pair_sims, strict=True)
                if v == v  # not NaN: the post has this artifact
            ]
            matches.sort(key=lambda d: -d["score"])
            hits.append(Hit(rank, str(self.post_ids[row]), score, matches, post))
        return SearchResult(hits, qmods, list(pairs), collation, exact, n_cand, extra)

    def more_like_this(
        self,
        post_id: str,
        k: int = 20,
        filters: Filters | None = None,
        modalities: Sequence[str] | None = None,
        collation: str = "sum",
        include_same: bool = False,
        candidates: int | None = None,
        nprobe: int | None = None,
        params: Mapping[str, Any] | None = None,
        query_modalities: Sequence[str] | None = None,
    ) -> SearchResult:
        """Posts like ``post_id``: its artifacts are the query (``query_modalities``: only
        those of its artifacts, e.g. ``["image"]``; default all it has); the post itself is
        excluded."""
        try:
            row = self.row_of(post_id)
        except KeyError:
            raise InputError(f"post {post_id!r} is not in index {self.directory}") from None
        qmods = [m for m in self.modalities if self.present[m][row]]
        if query_modalities is not None:
            unknown = [m for m in query_modalities if m not in self.modalities]
            if unknown:
                raise InputError(
                    f"this index has no {', '.join(unknown)} modality (it has "
                    f"{', '.join(self.modalities)})"
                )
            lacking = [m for m in query_modalities if m not in qmods]
            if lacking:
                raise InputError(f"post {post_id!r} has no {', '.join(lacking)} in the index")
            qmods = [m for m in qmods if m in query_modalities]
        if not qmods:
            raise InputError(f"post {post_id!r} has no artifact in the index")
        vectors = np.stack([np.asarray(self.emb[m][row], dtype=np.float32) for m in qmods])
        result = self.search(
            qmods,
            vectors,
            k=k,
            filters=filters,
            modalities=modalities,
            collation=collation,
            include_same=include_same,
            exclude=[row],
            candidates=candidates,
            nprobe=nprobe,
            params=params,
        )
        result.extra["post_id"] = post_id
        return result

    @property
    def projection_dim(self) -> int:
        return int(self.manifest["projection_dim"])

    # ------------------------------------------------------------------------------ internals

    def _checked_knobs(
        self, nprobe: int | None, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Per-search parameters, each accepted by at least one modality's index."""
        knobs = index_knobs(nprobe, params)
        for name in knobs:
            takers = [m for m in self.modalities if name in self._knobs[m]]
            if takers or (name == "nprobe" and all(self.exact.values())):
                continue
            kinds = {m: info["factory"] for m, info in self.manifest["modalities"].items()}
            raise InputError(
                f"search parameter {name!r} applies to {KNOBS[name]} indexes; this index's "
                f"are {kinds}"
            )
        return knobs

    def _used_knobs(self, m: str, knobs: Mapping[str, Any], probe: int | None) -> dict[str, Any]:
        """The per-search parameters a search of ``m`` runs with (its defaults + ``knobs``)."""
        values = {
            **(
                self._milvus_defaults[m]
                if self.milvus is not None
                else knob_values(self.indexes[m])
            ),
            **{k: v for k, v in knobs.items() if k in self._knobs[m]},
        }
        if probe is not None:
            values["nprobe"] = probe
        return values

    def _probes(self, pairs: Mapping[str, np.ndarray], nprobe: int | None) -> dict[str, int | None]:
        """IVF lists each searched modality visits (None: not an IVF index)."""
        out: dict[str, int | None] = {}
        for m in pairs:
            ivf = self._ivf[m]
            if ivf is None:
                out[m] = None
            else:
                out[m] = min(int(ivf.nprobe) if nprobe is None else nprobe, int(ivf.nlist))
        return out

    def _exhaustive(self, m: str, probe: int | None) -> bool:
        """Whether searching ``m`` visiting ``probe`` lists scores every vector exactly."""
        ivf = self._ivf[m]
        return self.exact[m] or (
            ivf is not None and self._flat_ivf[m] and probe is not None and probe >= ivf.nlist
        )

    def _score_dense(
        self,
        vectors: np.ndarray,
        pairs: Mapping[str, np.ndarray],
        allowed: np.ndarray | None,
        collation: str,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
        rows = np.arange(self.num_posts) if allowed is None else np.flatnonzero(allowed)
        sims, labels = pair_similarities(
            None if allowed is None else rows, vectors, pairs, self.emb, self.present
        )
        return rows, collate(sims, collation), sims, labels

    def _score_candidates(
        self,
        vectors: np.ndarray,
        pairs: Mapping[str, np.ndarray],
        allowed: np.ndarray | None,
        excluded: np.ndarray,
        k: int,
        collation: str,
        candidates: int | None,
        probes: Mapping[str, int | None],
        knobs: Mapping[str, Any],
        expression: str = "",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]], bool, int]:
        import faiss

        previous_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(self.search_threads)
        try:
            return self._candidate_rounds(
                vectors, pairs, allowed, excluded, k, collation, candidates, probes, knobs,
                expression,
            )  # fmt: skip
        finally:
            faiss.omp_set_num_threads(previous_threads)

    def _candidate_rounds(
        self,
        vectors: np.ndarray,
        pairs: Mapping[str, np.ndarray],
        allowed: np.ndarray | None,
        excluded: np.ndarray,
        k: int,
        collation: str,
        candidates: int | None,
        probes: Mapping[str, int | None],
        knobs: Mapping[str, Any],
        expression: str = "",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]], bool, int]:
        all_exact = all(self._exhaustive(m, probes[m]) for m in pairs)
        kp = int(candidates) if candidates else max(4 * k, 100)
        kp += len(excluded)
        bitmap = None if allowed is None else np.packbits(allowed, bitorder="little")
        while True:
            found: list[np.ndarray] = []
            thresholds: list[float] = []
            for m, js in pairs.items():
                own = {k: v for k, v in knobs.items() if k in self._knobs[m]}
                if self.milvus is not None:
                    kk = min(kp, int(self.present[m].sum()))
                    if kk == 0:
                        continue
                    own = {**self._milvus_defaults[m], **own}
                    dist, ids = self.milvus.search(m, vectors[js], kk, own, expression)
                else:
                    index = self.indexes[m]
                    kk = min(kp, int(index.ntotal))
                    if kk == 0:
                        continue
                    if probes[m] is not None:
                        own["nprobe"] = probes[m]
                    params, _keep = search_parameters(index, own, bitmap, self._id_map[m])
                    dist, ids = index.search(vectors[js], kk, params=params)
                found.append(ids[ids >= 0])
                full = ids[:, -1] >= 0
                thresholds.extend(dist[full, -1].tolist())
            rows = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
            if excluded.size:
                rows = rows[~np.isin(rows, excluded)]
            sims, labels = pair_similarities(rows, vectors, pairs, self.emb, self.present)
            scores = collate(sims, collation)
            if not all_exact:
                return rows, scores, sims, labels, False, len(rows)
            finite = np.sort(scores[np.isfinite(scores)])[::-1]
            bound = upper_bound(thresholds, collation)
            if (len(finite) >= k and finite[k - 1] >= bound) or not thresholds:
                return rows, scores, sims, labels, True, len(rows)
            kp *= 4
            if kp >= self.num_posts // 4:
                if allowed is None and excluded.size:
                    allowed = np.ones(self.num_posts, dtype=bool)
                    allowed[excluded] = False
                drows, dscores, dsims, dlabels = self._score_dense(
                    vectors, pairs, allowed, collation
                )
                return drows, dscores, dsims, dlabels, True, len(drows)

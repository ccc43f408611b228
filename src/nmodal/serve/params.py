"""The query parameters every search endpoint shares (``k``, the filters, ``modality``,
``collate``, ``same_modality``, ``nprobe``), parsed into :meth:`PostIndex.search` options."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from nmodal.index import Filters

NPROBE_HELP = (
    "approximate (IVF) indexes: inverted lists visited by this request only (more: better "
    "recall, slower; default: the server's setting, see /api/info). Capped at each index's "
    "number of lists; accepted and without effect on exact indexes."
)


class SearchParams:
    """The filters every search endpoint accepts."""

    def __init__(
        self,
        k: Annotated[int, Query(ge=1, le=500, description="number of posts to return")] = 20,
        account: Annotated[
            list[str] | None, Query(description="only these accounts (repeatable)")
        ] = None,
        since: Annotated[
            str | None, Query(description="only posts on/after this date (YYYY-MM-DD or ISO)")
        ] = None,
        until: Annotated[
            str | None, Query(description="only posts on/before this date (inclusive)")
        ] = None,
        modality: Annotated[
            str | None,
            Query(description="candidate modalities to match, comma-separated (default: all)"),
        ] = None,
        collate: Annotated[
            str,
            Query(
                pattern="^(max|sum|mean)$",
                description="post score from its pair similarities: max (default: the best "
                "pair; an exact copy of the query ranks first), sum (the paper) or mean",
            ),
        ] = "max",
        same_modality: Annotated[
            bool,
            Query(
                description="compare the query with a post's artifacts of its own modality too "
                "(default; false: the paper's rule, other modalities only)"
            ),
        ] = True,
        include_same: Annotated[
            bool | None, Query(description="the same switch under its older name (wins if given)")
        ] = None,
        forwarded_from: Annotated[
            list[str] | None,
            Query(description="only forwards from these origins (names or ids; repeatable)"),
        ] = None,
        forwards: Annotated[
            str,
            Query(pattern="^(any|only|none)$", description="only forwards, none, or any post"),
        ] = "any",
        nprobe: Annotated[int | None, Query(ge=1, description=NPROBE_HELP)] = None,
        ef_search: Annotated[
            int | None, Query(ge=1, description="HNSW indexes: candidates explored per query")
        ] = None,
        k_factor: Annotated[
            float | None,
            Query(ge=1, description="refined (RFlat) indexes: candidates re-ranked per result"),
        ] = None,
    ) -> None:
        self.k = k
        accounts = [a.strip() for value in (account or []) for a in value.split(",") if a.strip()]
        origins = [o.strip() for v in (forwarded_from or []) for o in v.split(",") if o.strip()]
        self.filters = Filters(
            accounts=tuple(accounts),
            since=since or None,
            until=until or None,
            forwarded_from=tuple(origins),
            forwards=forwards,
        )
        self.modalities = [m.strip() for m in (modality or "").split(",") if m.strip()] or None
        self.collate = collate
        self.include_same = same_modality if include_same is None else include_same
        self.nprobe = nprobe
        self.params = {"efSearch": ef_search, "k_factor": k_factor}

    def search_options(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`PostIndex.search` / :meth:`PostIndex.more_like_this`."""
        return {
            "k": self.k,
            "filters": self.filters,
            "modalities": self.modalities,
            "collation": self.collate,
            "include_same": self.include_same,
            "nprobe": self.nprobe,
            "params": self.params,
        }

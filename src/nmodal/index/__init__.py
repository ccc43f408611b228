"""The post index: embeddings of every artifact, FAISS indexes per modality, post metadata.

Example:
    >>> from nmodal.index import build_index, PostIndex, Filters
    >>> build_index("runs/m1", "stores/s1", "data/telegram", "indexes/i1")  # doctest: +SKIP
    >>> index = PostIndex.open("indexes/i1")  # doctest: +SKIP
    >>> index.more_like_this("chan/17", k=5, filters=Filters(since="2024-01-01"))  # doctest: +SKIP
"""

from nmodal.index.build import add_posts, build_index
from nmodal.index.post_index import Filters, Hit, PostIndex, SearchResult, parse_date
from nmodal.index.query import EncoderUnavailableError, QueryEncoder, encode_query

__all__ = [
    "EncoderUnavailableError",
    "Filters",
    "Hit",
    "PostIndex",
    "QueryEncoder",
    "SearchResult",
    "add_posts",
    "build_index",
    "encode_query",
    "parse_date",
]

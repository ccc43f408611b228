"""Per-search ``nprobe`` on approximate (IVF) indexes, against exact (Flat) search."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmodal.errors import InputError
from nmodal.index import Filters, PostIndex, SearchResult, build_index
from nmodal.index.build import index_from_embeddings
from tests.index.fixtures import Collection

NLIST = 32
MODS = ("text", "image", "video")


def clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors around 40 centres: IVF lists then matter, as with real embeddings."""
    centres = rng.standard_normal((40, dim))
    x = centres[rng.integers(0, 40, n)] + 0.9 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def indexes() -> dict[str, PostIndex]:
    rng = np.random.default_rng(3)
    n = 4000
    emb = {m: clustered(n, 16, rng) for m in MODS}
    posts = pd.DataFrame(
        {
            "post_id": [f"p{i:05d}" for i in range(n)],
            "account": [("a", "b")[i % 2] for i in range(n)],
        }
    )
    built = {
        fac: index_from_embeddings(emb, posts=posts, factory=fac, nprobe=2)
        for fac in ("Flat", f"IVF{NLIST},Flat", f"IVF{NLIST},SQ8")
    }
    return {
        "exact": built["Flat"],
        "flat": built[f"IVF{NLIST},Flat"],
        "sq8": built[f"IVF{NLIST},SQ8"],
    }


def ids(result: SearchResult) -> list[str]:
    return [h.post_id for h in result.hits]


def scores(result: SearchResult) -> list[float]:
    return [h.score for h in result.hits]


QUERY_ROWS = list(range(0, 4000, 50))


def query(index: PostIndex, row: int) -> np.ndarray:
    return np.asarray(index.emb["text"][row : row + 1])


def mean_recall(index: PostIndex, exact: PostIndex, nprobe: int | None, k: int = 10) -> float:
    found = []
    for row in QUERY_ROWS:
        got = index.search(["text"], query(index, row), k=k, nprobe=nprobe)
        want = exact.search(["text"], query(exact, row), k=k)
        found.append(len(set(ids(got)) & set(ids(want))) / k)
    return float(np.mean(found))


@pytest.mark.parametrize("kind", ["flat", "sq8"])
def test_more_lists_give_recall_at_least_as_high(indexes, kind):
    index, exact = indexes[kind], indexes["exact"]
    recalls = [mean_recall(index, exact, p) for p in (1, 4, NLIST)]
    assert recalls == sorted(recalls), recalls
    assert recalls[0] < recalls[-1]  # the setting changes something on this data
    assert recalls[-1] >= 0.98
    # without a per-search value the index's own setting (2, from the build) is used
    assert mean_recall(index, exact, None) == mean_recall(index, exact, 2)


def test_all_lists_of_an_ivf_flat_index_equal_exact_search(indexes):
    index, exact = indexes["flat"], indexes["exact"]
    for row in QUERY_ROWS[:30]:
        for collation in ("sum", "mean", "max"):
            got = index.search(["text"], query(index, row), k=15, nprobe=NLIST, collation=collation)
            want = exact.search(["text"], query(exact, row), k=15, collation=collation)
            assert ids(got) == ids(want)
            np.testing.assert_allclose(scores(got), scores(want), rtol=1e-6, atol=1e-6)
            assert got.exact and want.exact
            assert got.extra["nprobe"] == {"image": NLIST, "video": NLIST}
    got = index.more_like_this("p00123", k=12, nprobe=NLIST)
    want = exact.more_like_this("p00123", k=12)
    assert ids(got) == ids(want) and got.exact
    # fewer lists: approximate, and says so
    assert not index.search(["text"], query(index, 0), k=15, nprobe=NLIST - 1).exact


def test_nprobe_is_capped_at_the_number_of_lists(indexes):
    index = indexes["sq8"]
    assert index.nlist("text") == NLIST and index.default_nprobe("text") == 2
    q = query(index, 7)
    big = index.search(["text"], q, k=10, nprobe=10**9)
    full = index.search(["text"], q, k=10, nprobe=NLIST)
    assert ids(big) == ids(full) and scores(big) == scores(full)
    assert big.extra["nprobe"] == {"image": NLIST, "video": NLIST}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4", np.float32(2)])
def test_invalid_nprobe_is_refused(indexes, bad):
    with pytest.raises(InputError, match="nprobe must be a positive integer"):
        indexes["flat"].search(["text"], query(indexes["flat"], 0), k=5, nprobe=bad)
    with pytest.raises(InputError, match="nprobe"):
        indexes["exact"].more_like_this("p00001", k=5, nprobe=bad)


def test_exact_indexes_accept_nprobe_without_effect(indexes):
    exact = indexes["exact"]
    assert exact.nlist("text") is None and exact.default_nprobe("text") is None
    for row in QUERY_ROWS[:10]:
        plain = exact.search(["text"], query(exact, row), k=10)
        probed = exact.search(["text"], query(exact, row), k=10, nprobe=1)
        assert ids(plain) == ids(probed) and scores(plain) == scores(probed)
        assert probed.exact and "nprobe" not in probed.extra
    assert len(exact.search(["text"], query(exact, 0), k=3, nprobe=np.int64(3)).hits) == 3


def test_nprobe_with_filters_inside_faiss(indexes):
    """With an id selector (filters searched inside FAISS) the per-search nprobe applies too."""
    index, exact = indexes["flat"], indexes["exact"]
    filters = Filters(accounts=("b",))
    previous = index.dense_max
    index.dense_max = 0  # force the FAISS path: a few thousand posts would be scored directly
    try:
        for row in QUERY_ROWS[:10]:
            got = index.search(["text"], query(index, row), k=10, filters=filters, nprobe=NLIST)
            want = exact.search(["text"], query(exact, row), k=10, filters=filters)
            assert ids(got) == ids(want) and got.exact
            few = index.search(["text"], query(index, row), k=10, filters=filters, nprobe=1)
            assert {h.post["account"] for h in few.hits} == {"b"} and not few.exact
            assert few.extra["nprobe"] == {"image": 1, "video": 1}
    finally:
        index.dense_max = previous


def test_concurrent_searches_with_different_nprobe_do_not_interfere(indexes):
    index = indexes["sq8"]
    plan = [(row, p) for row in QUERY_ROWS for p in (1, NLIST, None)]
    baseline = {
        (row, p): ids(index.search(["text"], query(index, row), k=10, nprobe=p)) for row, p in plan
    }
    assert any(baseline[row, 1] != baseline[row, NLIST] for row in QUERY_ROWS)

    def run(item: tuple[int, int | None]) -> list[str]:
        row, p = item
        return ids(index.search(["text"], query(index, row), k=10, nprobe=p))

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(run, plan * 3))
    assert got == [baseline[item] for item in plan * 3]
    assert index.default_nprobe("text") == 2  # the shared setting was never touched


def test_open_validates_and_caps_nprobe(collection: Collection, tmp_path: Path):
    out = build_index(
        collection.model,
        collection.store,
        collection.dataset,
        tmp_path / "ivf",
        factory="IVF4,Flat",
        nprobe=1,
        progress=False,
    )
    assert PostIndex.open(out).default_nprobe("image") == 1
    assert PostIndex.open(out, nprobe=1000).default_nprobe("image") == 4
    with pytest.raises(InputError, match="nprobe"):
        PostIndex.open(out, nprobe=0)
    exact = PostIndex.open(build_index(
        collection.model, collection.store, collection.dataset, tmp_path / "x", progress=False
    ))  # fmt: skip
    index = PostIndex.open(out)
    for pid in ("post-00003", "post-00100"):
        got, want = index.more_like_this(pid, k=8, nprobe=4), exact.more_like_this(pid, k=8)
        assert ids(got) == ids(want) and got.exact

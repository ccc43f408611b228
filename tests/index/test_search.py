"""Index search against an independent brute-force computation of the post scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmodal.errors import InputError
from nmodal.index import Filters, PostIndex
from tests.index.fixtures import MODALITIES, Collection, brute_force_scores, reference_embeddings


@pytest.fixture(scope="module")
def index(exact_index: Path) -> PostIndex:
    return PostIndex.open(exact_index)


@pytest.fixture(scope="module")
def reference(collection: Collection) -> tuple[np.ndarray, dict, dict]:
    return reference_embeddings(collection)


def expected_top(scores: np.ndarray, ids: np.ndarray, k: int, allowed: np.ndarray | None = None):
    scores = scores.copy()
    if allowed is not None:
        scores[~allowed] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -scores))
    order = order[np.isfinite(scores[order])][:k]
    return ids[order].tolist(), scores[order]


def queries(reference, modality: str, seed: int = 0) -> list[np.ndarray]:
    """Real artifact embeddings of a few posts, plus random unit vectors."""
    _, emb, present = reference
    rows = np.flatnonzero(present[modality])[[0, 7, 31]]
    rng = np.random.default_rng(seed)
    rand = rng.standard_normal((2, emb[modality].shape[1])).astype(np.float32)
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    return [emb[modality][r : r + 1] for r in rows] + [v[None] for v in rand]


@pytest.mark.parametrize("collation", ["sum", "mean", "max"])
@pytest.mark.parametrize("modality", MODALITIES)
def test_exact_search_equals_brute_force(index, reference, modality, collation):
    ids, emb, present = reference
    for q in queries(reference, modality):
        result = index.search([modality], q, k=15, collation=collation)
        ref = brute_force_scores(emb, present, [modality], q, MODALITIES, how=collation)
        want_ids, want_scores = expected_top(ref, ids, 15)
        assert [h.post_id for h in result.hits] == want_ids
        np.testing.assert_allclose(
            [h.score for h in result.hits], want_scores, rtol=1e-5, atol=1e-5
        )
        assert result.exact
        assert modality not in result.modalities


def test_matches_explain_the_score_and_only_name_present_artifacts(index, reference):
    ids, emb, present = reference
    q = queries(reference, "text")[0]
    result = index.search(["text"], q, k=40)
    for hit in result.hits:
        row = int(np.flatnonzero(ids == hit.post_id)[0])
        names = {m["artifact"] for m in hit.matches}
        assert names == {m for m in ("image", "video") if present[m][row]}
        assert sum(m["score"] for m in hit.matches) == pytest.approx(hit.score, abs=1e-5)
        for m in hit.matches:
            assert m["score"] == pytest.approx(float(emb[m["artifact"]][row] @ q[0]), abs=1e-5)


def test_absent_artifacts_are_not_indexed(index, reference):
    ids, _, present = reference
    has_any = present["text"] | present["image"] | present["video"]
    assert not has_any.all()  # the fixture has a post without any artifact: not indexed
    assert index.post_ids.tolist() == ids[has_any].tolist()
    for m in MODALITIES:
        assert index.indexes[m].ntotal == int(present[m].sum()) < len(present[m])
        assert np.array_equal(index.present[m], present[m][has_any])
        # the stored rows of absent artifacts are zeros, never written from features
        assert not np.asarray(index.emb[m])[~index.present[m]].any()


def test_post_with_no_candidate_artifact_is_never_returned(index, reference):
    ids, _, present = reference
    only_text = ~present["image"] & ~present["video"]
    q = queries(reference, "text")[0]
    result = index.search(["text"], q, k=index.num_posts)
    returned = {h.post_id for h in result.hits}
    assert returned.isdisjoint(ids[only_text].tolist())
    assert len(returned) == int((present["image"] | present["video"]).sum())


def test_modality_restriction(index, reference):
    ids, emb, present = reference
    q = queries(reference, "text")[1]
    result = index.search(["text"], q, k=10, modalities=["video"])
    ref = brute_force_scores(emb, present, ["text"], q, ["video"])
    assert [h.post_id for h in result.hits] == expected_top(ref, ids, 10)[0]
    assert all({m["artifact"] for m in h.matches} == {"video"} for h in result.hits)
    with pytest.raises(InputError, match="nothing to search"):
        index.search(["text"], q, k=10, modalities=["text"])
    with pytest.raises(InputError, match="unknown modality"):
        index.search(["text"], q, k=10, modalities=["audio"])


@pytest.mark.parametrize("collation", ["sum", "max"])
@pytest.mark.parametrize("include_same", [False, True])
def test_more_like_this_equals_brute_force(index, reference, include_same, collation):
    ids, emb, present = reference
    for row in (0, 5, 77):
        qmods = [m for m in MODALITIES if present[m][row]]
        vectors = np.stack([emb[m][row] for m in qmods])
        result = index.more_like_this(
            ids[row], k=12, include_same=include_same, collation=collation
        )
        ref = brute_force_scores(
            emb, present, qmods, vectors, MODALITIES, how=collation, include_same=include_same
        )
        allowed = np.ones(len(ids), bool)
        allowed[row] = False
        want_ids, want_scores = expected_top(ref, ids, 12, allowed)
        assert [h.post_id for h in result.hits] == want_ids
        np.testing.assert_allclose(
            [h.score for h in result.hits], want_scores, rtol=1e-5, atol=1e-5
        )
        assert ids[row] not in [h.post_id for h in result.hits]
    with pytest.raises(InputError, match="not in index"):
        index.more_like_this("no-such-post")


@pytest.mark.parametrize("dense_max", [0, 50_000])
def test_filters_equal_brute_force(exact_index, collection, reference, dense_max):
    """Filters inside FAISS (dense_max=0) and by direct scoring give the brute-force answer."""
    index = PostIndex.open(exact_index)
    index.dense_max = dense_max
    ids, emb, present = reference
    table = pd.read_parquet(collection.dataset / "posts.parquet").set_index("post_id").loc[ids]
    accounts = table["account"].to_numpy(str)
    dates = table["date"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    cases = [
        (Filters(accounts=("alpha",)), accounts == "alpha"),
        (Filters(accounts=("bravo", "delta")), np.isin(accounts, ["bravo", "delta"])),
        (
            Filters(since="2024-02-01", until="2024-03-15"),
            (dates >= np.datetime64("2024-02-01")) & (dates < np.datetime64("2024-03-16")),
        ),
        (
            Filters(accounts=("charlie",), since="2024-05-01T00:00:00+02:00"),
            (accounts == "charlie") & (dates >= np.datetime64("2024-04-30T22:00")),
        ),
    ]
    q = queries(reference, "video")[0]
    for filters, allowed in cases:
        assert 0 < allowed.sum() < len(ids)
        result = index.search(["video"], q, k=8, filters=filters)
        ref = brute_force_scores(emb, present, ["video"], q, MODALITIES)
        assert [h.post_id for h in result.hits] == expected_top(ref, ids, 8, allowed)[0]
        assert result.exact


def test_bad_filters_are_input_errors(index, reference):
    q = queries(reference, "text")[0]
    with pytest.raises(InputError, match="not a date"):
        index.search(["text"], q, filters=Filters(since="last tuesday"))
    with pytest.raises(InputError, match="after"):
        index.search(["text"], q, filters=Filters(since="2024-05-01", until="2024-01-01"))
    with pytest.raises(InputError, match="shape"):
        index.search(["text"], np.zeros((1, 3), np.float32))
    with pytest.raises(InputError, match="collation"):
        index.search(["text"], q, collation="median")


@pytest.mark.parametrize("collation", ["sum", "max"])
def test_few_candidates_still_certified_exact(index, reference, collation):
    """k' = 1 cannot certify the top 3 at once: candidate lists must grow until it can."""
    ids, emb, present = reference
    pooled = []
    for modality in MODALITIES:
        for q in queries(reference, modality, seed=3):
            result = index.search([modality], q, k=3, candidates=1, collation=collation)
            ref = brute_force_scores(emb, present, [modality], q, MODALITIES, how=collation)
            assert [h.post_id for h in result.hits] == expected_top(ref, ids, 3)[0]
            assert result.exact
            pooled.append(result.candidates)
    # most were certified from the candidate lists, without scoring every post
    assert sum(c < index.num_posts for c in pooled) > len(pooled) // 2


def test_k_larger_than_collection(index, reference):
    q = queries(reference, "text")[0]
    result = index.search(["text"], q, k=10_000)
    assert len(result.hits) == len({h.post_id for h in result.hits}) <= index.num_posts


def test_in_memory_index_equals_disk_index(index, reference):
    """index_from_embeddings (benchmarks) searches exactly like a built index directory."""
    from nmodal.index.build import index_from_embeddings

    mem = index_from_embeddings(
        {m: np.asarray(index.emb[m]) for m in MODALITIES},
        index.present,
        post_ids=index.post_ids,
        factory="Flat",
    )
    for q in queries(reference, "video", seed=5):
        a, b = mem.search(["video"], q, k=10), index.search(["video"], q, k=10)
        assert [h.post_id for h in a.hits] == [h.post_id for h in b.hits]
        np.testing.assert_allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-6)

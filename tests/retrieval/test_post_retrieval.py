"""Retrieval metrics against a slow, loop-based reference of the paper's protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmodal.errors import InputError
from nmodal.retrieval import post_retrieval_recall, retrieval_ranks, retrieval_report


def reference_ranks(embs, present=None, candidates=None):
    """Per query (modality q, post i): 1 + #posts scoring higher + #other posts tied, where a
    post's score is the sum over its present artifacts in the candidate modalities != q of
    the cosine similarity with the query."""
    m_count, p = len(embs), len(embs[0])
    present = present or [np.ones(p, bool)] * m_count
    cand = list(range(m_count)) if candidates is None else candidates
    out = {}
    for q in range(m_count):
        ranks = []
        for i in range(p):
            if not present[q][i]:
                continue
            scores = []
            for j in range(p):
                s = 0.0
                for c in cand:
                    if c == q or not present[c][j]:
                        continue
                    a, b = embs[q][i], embs[c][j]
                    s += float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
                scores.append(s)
            true = scores[i]
            ranks.append(1 + sum(s > true for s in scores) + sum(s == true for s in scores) - 1)
        out[q] = np.array(ranks)
    return out


def random_embs(p=40, d=8, m=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((p, d)) for _ in range(m)]


def test_ranks_match_loop_reference():
    embs = random_embs()
    got = retrieval_ranks(embs, names=["a", "b", "c"])["ranks"]
    ref = reference_ranks(embs)
    for q, name in enumerate(["a", "b", "c"]):
        np.testing.assert_array_equal(got[name], ref[q])


def test_ranks_with_missing_artifacts_match_reference():
    embs = random_embs(p=30, m=4, seed=3)
    rng = np.random.default_rng(1)
    present = [rng.random(30) > 0.3 for _ in range(4)]
    for e, mask in zip(embs, present, strict=True):
        e[~mask] = 0.0  # absent rows: zeros that must never be read as data
    got = retrieval_ranks(embs, present=present)["ranks"]
    ref = reference_ranks(embs, present)
    for q in range(4):
        np.testing.assert_array_equal(got[f"m{q}"], ref[q])
        assert len(got[f"m{q}"]) == present[q].sum()  # absent artifacts are never queries


def test_pairwise_candidates_match_reference():
    embs = random_embs(p=25, seed=5)
    got = retrieval_ranks(embs, candidates=[2])["ranks"]
    ref = reference_ranks(embs, candidates=[2])
    np.testing.assert_array_equal(got["m0"], ref[0])
    np.testing.assert_array_equal(got["m1"], ref[1])
    assert len(got["m2"]) == 0  # a modality is never its own candidate


def test_chunked_equals_full():
    embs = random_embs(p=300, d=16, seed=7)
    full = retrieval_ranks(embs, chunk_size=10_000)["ranks"]
    chunked = retrieval_ranks(embs, chunk_size=7)["ranks"]
    for k in full:
        np.testing.assert_array_equal(full[k], chunked[k])


def test_random_embeddings_score_at_chance():
    recalls = [post_retrieval_recall(random_embs(p=100, d=32, seed=s)) for s in range(30)]
    for k in (1, 5, 10, 25):
        mean = np.mean([r[k] for r in recalls])
        assert abs(mean - k / 100) < 0.015 + 0.1 * k / 100, (k, mean)


def test_identical_artifacts_retrieve_perfectly():
    z = np.random.default_rng(0).standard_normal((100, 32))
    assert post_retrieval_recall([z, z, z]) == {1: 1.0, 5: 1.0, 10: 1.0, 25: 1.0}
    assert post_retrieval_recall([torch.tensor(z), torch.tensor(z)], ks=(1,)) == {1: 1.0}


def test_ties_are_counted_pessimistically():
    z = np.ones((100, 4))  # every post scores the same: no hit may come from ordering luck
    assert post_retrieval_recall([z, z, z], ks=(1, 100)) == {1: 0.0, 100: 1.0}


def test_random_queries_are_a_deterministic_subset():
    embs = random_embs(p=100, d=16, seed=2)
    full = retrieval_ranks(embs)
    sub = retrieval_ranks(embs, queries=60, seed=4)
    again = retrieval_ranks(embs, queries=60, seed=4)
    assert sum(len(r) for r in sub["ranks"].values()) == 60
    for name in full["ranks"]:
        np.testing.assert_array_equal(sub["ranks"][name], again["ranks"][name])
        lookup = dict(zip(full["posts"][name], full["ranks"][name], strict=True))
        assert [lookup[p] for p in sub["posts"][name]] == list(sub["ranks"][name])


def test_report_breakdown():
    embs = random_embs(p=50, seed=9)
    rep = retrieval_report(embs, names=["text", "image", "video"], ks=(1, 10))
    assert set(rep["by_query_modality"]) == {"text", "image", "video"}
    assert set(rep["by_pair"]) == {
        f"{a}->{b}"
        for a in ("text", "image", "video")
        for b in ("text", "image", "video")
        if a != b
    }
    ref = reference_ranks(embs, candidates=[1])[0]
    assert rep["by_pair"]["text->image"]["10"] == pytest.approx((ref <= 10).mean())
    all_ranks = np.concatenate(list(reference_ranks(embs).values()))
    assert rep["mean_rank"] == pytest.approx(all_ranks.mean())
    assert rep["median_rank"] == pytest.approx(np.median(all_ranks))
    assert rep["num_queries"] == 150 and rep["chance"]["1"] == pytest.approx(0.02)


@pytest.mark.parametrize(
    "embs, match",
    [
        ([np.zeros((10, 4))], "at least two"),
        ([np.ones((10, 4)), np.ones((9, 4))], "row i of every modality"),
        ([np.ones((10, 4)), np.full((10, 4), np.nan)], "NaN"),
        ([np.ones((10, 4)), np.ones((10, 4, 1))], r"\(P, D\)"),
    ],
)
def test_bad_input(embs, match):
    with pytest.raises(InputError, match=match):
        post_retrieval_recall(embs)


def test_bad_queries_argument():
    with pytest.raises(InputError, match="queries"):
        post_retrieval_recall(random_embs(), queries="some")

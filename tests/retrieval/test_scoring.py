"""Retrieval scoring rules (sum / symile / gram) against a loop reference, with missing
artifacts; simulated missing modalities."""

from __future__ import annotations

import numpy as np
import pytest

from nmodal.errors import InputError
from nmodal.evaluation import post_retrieval_recall, retrieval_ranks, retrieval_report
from nmodal.evaluation.missing import drop_artifacts, missing_fraction
from nmodal.features import make_synthetic
from nmodal.retrieval import matched_scoring
from tests.helpers.reference import score_loop, unit


def reference_ranks(embs, present, scoring, candidates=None):
    """Pessimistic rank of the true post per query, scores from score_loop."""
    num, posts = len(embs), len(embs[0])
    vecs = [
        [unit(list(map(float, row))) if ok else None for row, ok in zip(e, p, strict=True)]
        for e, p in zip(embs, present, strict=True)
    ]
    cand = list(range(num)) if candidates is None else candidates
    out = {}
    for q in range(num):
        ranks = []
        for i in range(posts):
            if not present[q][i]:
                continue
            scores = [
                score_loop(
                    vecs[q][i], [vecs[c][j] for c in cand if c != q and present[c][j]], scoring
                )
                for j in range(posts)
            ]
            ranks.append(sum(s >= scores[i] for s in scores))
        out[q] = ranks
    return out


def population(num=3, posts=12, dim=6, seed=0, missing=True):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(posts, dim))
    embs = [latent + 0.9 * rng.normal(size=(posts, dim)) for _ in range(num)]
    present = [np.ones(posts, bool) for _ in range(num)]
    if missing:
        for m in range(num):
            present[m][rng.random(posts) < 0.3] = False
        present[0][:] |= ~np.any(present[1:], axis=0)  # nobody is left with nothing
    return [np.where(p[:, None], e, 0) for e, p in zip(embs, present, strict=True)], present


@pytest.mark.parametrize("scoring", ["sum", "symile", "gram"])
@pytest.mark.parametrize("num", [3, 4])
@pytest.mark.parametrize("missing", [False, True])
def test_ranks_match_loop(scoring, num, missing):
    embs, present = population(num=num, seed=num, missing=missing)
    got = retrieval_ranks(embs, present=present, scoring=scoring, chunk_size=5)
    expected = reference_ranks(embs, present, scoring)
    for q in range(num):
        assert got["ranks"][f"m{q}"].tolist() == expected[q]


@pytest.mark.parametrize("scoring", ["symile", "gram"])
def test_restricted_candidates_match_loop(scoring):
    embs, present = population(num=3, seed=9)
    got = retrieval_ranks(embs, present=present, scoring=scoring, candidates=[1, 2])
    expected = reference_ranks(embs, present, scoring, candidates=[1, 2])
    for q in range(3):
        assert got["ranks"][f"m{q}"].tolist() == expected[q]


def test_one_candidate_modality_all_rules_agree():
    """With a single candidate artifact: MIP = cosine, and -sin is monotone in cos >= 0."""
    embs, _ = population(num=2, seed=2, missing=False)
    sums = retrieval_ranks(embs, scoring="sum")["ranks"]
    assert {k: v.tolist() for k, v in retrieval_ranks(embs, scoring="symile")["ranks"].items()} == {
        k: v.tolist() for k, v in sums.items()
    }


def test_report_records_scoring_and_rejects_unknown():
    embs, present = population()
    rep = retrieval_report(embs, names=["a", "b", "c"], present=present, scoring="gram")
    assert rep["scoring"] == "gram"
    assert set(rep["by_pair"]) == {f"{q}->{c}" for q in "abc" for c in "abc" if q != c}
    ranks = np.concatenate(
        list(retrieval_ranks(embs, present=present, scoring="symile")["ranks"].values())
    )
    recall = post_retrieval_recall(embs, ks=(1, 3), present=present, scoring="symile")
    assert recall == {1: np.mean(ranks <= 1), 3: np.mean(ranks <= 3)}
    with pytest.raises(InputError, match="unknown scoring 'max'"):
        retrieval_ranks(embs, scoring="max")


def test_matched_scoring():
    assert [matched_scoring(n) for n in ("clip", "triplet", "anchor", "siglip")] == ["sum"] * 4
    assert (matched_scoring("symile"), matched_scoring("gram")) == ("symile", "gram")


def test_drop_artifacts_keeps_two_and_zeroes_dropped_rows():
    fs = make_synthetic(2000, dim=8, seed=1)
    out = drop_artifacts(fs, 0.3, seed=4)
    present = np.stack([out.present[m] for m in out.modalities])
    assert present.sum(0).min() == 2
    assert 0.18 < missing_fraction(out) < 0.26  # 0.3 per artifact, minus the rescues
    for m in out.modalities:
        assert np.all(out.features[m][~out.present[m]] == 0)
        np.testing.assert_array_equal(
            out.features[m][out.present[m]], fs.features[m][out.present[m]]
        )
    again = drop_artifacts(fs, 0.3, seed=4)
    assert all(np.array_equal(again.present[m], out.present[m]) for m in out.modalities)
    assert missing_fraction(drop_artifacts(fs, 0.0)) == 0.0
    with pytest.raises(InputError, match="missing rate"):
        drop_artifacts(fs, 1.0)


def test_drop_artifacts_never_revives_absent_artifacts():
    fs = make_synthetic(500, dim=8, seed=1, missing_rate=0.3)
    out = drop_artifacts(fs, 0.5, seed=0)
    for m in fs.modalities:
        assert not np.any(out.present[m] & ~fs.present[m])

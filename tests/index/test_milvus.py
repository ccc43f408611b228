"""The Milvus backend (Milvus Lite in-process) against the FAISS backend on the same vectors:
the same post-level results, filters inside Milvus, build -> open -> add through the CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from nmodal.cli import main
from nmodal.errors import InputError
from nmodal.features import read_featureset, write_featureset
from nmodal.index import Filters, PostIndex, add_posts, build_index
from nmodal.index.build import index_from_embeddings
from nmodal.index.layout import read_index_manifest
from nmodal.index.post_index import parse_date
from nmodal.serve import create_app
from tests.index.fixtures import (
    MODALITIES,
    brute_force_scores,
    fake_encoder_source,
    make_collection,
)
from tests.serve.conftest import run_server

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from nmodal.index.milvus import MilvusVectors, filter_expression
from nmodal.index.remote import milvus_index_from_embeddings

MODS = ("text", "image", "video")


def vectors(n: int, dim: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, dim))
    emb, present = {}, {}
    for i, m in enumerate(MODS):
        x = (base + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)
        emb[m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        present[m] = rng.random(n) >= 0.2 * i  # text always, image 80%, video 60%
        emb[m][~present[m]] = 0
    return emb, present


def posts_table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    fwd = rng.random(n) < 0.3
    origin = np.where(fwd, np.array(["chanA", "chanB"])[rng.integers(0, 2, n)], None)
    dates = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60, n), unit="D")
    dates = pd.Series(dates).where(rng.random(n) >= 0.1)  # some posts without a date
    return pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(n)],
            "account": np.array(["alpha", "bravo", 'quo"te'])[np.arange(n) % 3],
            "date": dates,
            "forwarded_from": pd.Series(origin, dtype=object),
        }
    )


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory):
    """The same 600 posts behind FAISS Flat and behind Milvus FLAT and HNSW."""
    emb, present = vectors(600, 16, 0)
    posts = posts_table(600)
    uri = str(tmp_path_factory.mktemp("milvus") / "lite.db")
    flat = index_from_embeddings(emb, present, posts=posts, factory="Flat")
    mv = milvus_index_from_embeddings(MilvusVectors(uri, "t_flat", "FLAT"), emb, present, posts)
    hnsw = milvus_index_from_embeddings(
        MilvusVectors(uri, "t_hnsw", "HNSW"), emb, present, posts, {"efSearch": 64}
    )
    for index in (flat, mv, hnsw):
        index.dense_max = 0  # filtered searches go through the vector backend, not direct scoring
    return emb, present, flat, mv, hnsw


FILTERS = [
    None,
    Filters(accounts=("alpha", 'quo"te')),
    Filters(since="2024-01-20", until="2024-02-10"),
    Filters(forwards="only"),
    Filters(forwards="none", accounts=("bravo",)),
    Filters(forwarded_from=("chanB",)),
]


@pytest.mark.parametrize("filters", FILTERS, ids=range(len(FILTERS)))
@pytest.mark.parametrize("collation", ["sum", "mean", "max"])
def test_milvus_flat_returns_what_faiss_flat_returns(twins, filters, collation):
    emb, present, flat, mv, _ = twins
    for row in (0, 17, 333):
        q = emb["text"][row : row + 1]
        want = flat.search(["text"], q, k=10, filters=filters, collation=collation)
        got = mv.search(["text"], q, k=10, filters=filters, collation=collation)
        assert got.exact and want.exact
        assert [h.post_id for h in got.hits] == [h.post_id for h in want.hits]
        np.testing.assert_allclose(
            [h.score for h in got.hits], [h.score for h in want.hits], atol=1e-6
        )
    # and the filtered scores are the independent brute-force ones
    allowed = (filters or Filters()).mask(
        flat.accounts, flat.dates, (flat._meta["forwarded_from"],)
    )
    ref = brute_force_scores(emb, present, ["text"], q, list(MODS), how=collation)
    if allowed is not None:
        ref = np.where(allowed, ref, -np.inf)
    order = np.argsort(-ref, kind="stable")[: len(got.hits)]
    np.testing.assert_allclose([h.score for h in got.hits], ref[order], atol=1e-5)


def test_milvus_more_like_this_excludes_the_post(twins):
    _, _, flat, mv, _ = twins
    for pid in ("p3", "p250"):
        want = flat.more_like_this(pid, k=8, filters=Filters(accounts=("alpha", "bravo")))
        got = mv.more_like_this(pid, k=8, filters=Filters(accounts=("alpha", "bravo")))
        assert pid not in [h.post_id for h in got.hits]
        assert [h.post_id for h in got.hits] == [h.post_id for h in want.hits]


def test_milvus_hnsw_takes_ef_search_and_refuses_other_knobs(twins):
    emb, _, flat, _, hnsw = twins
    q = emb["text"][5:6]
    got = hnsw.search(["text"], q, k=10, params={"efSearch": 200})
    assert not got.exact
    assert got.extra["params"]["image"]["efSearch"] == 200
    assert hnsw.search(["text"], q, k=10).extra["params"]["image"]["efSearch"] == 64
    want = flat.search(["text"], q, k=10)
    overlap = {h.post_id for h in got.hits} & {h.post_id for h in want.hits}
    assert len(overlap) >= 9
    with pytest.raises(InputError, match="k_factor"):
        hnsw.search(["text"], q, k=10, params={"k_factor": 2})


def test_filter_expression_quotes_and_dates():
    expr = filter_expression(
        Filters(accounts=('a"b',), since="2024-01-02", forwards="none"), [4, 9], parse_date
    )
    assert 'account in ["a\\"b"]' in expr and "fwd == false" in expr
    assert f"date_ns >= {pd.Timestamp('2024-01-02').value}" in expr
    assert expr.endswith("id not in [4, 9]")
    assert filter_expression(Filters(), [], parse_date) == ""


def test_build_search_and_add_through_the_cli_match_faiss(tmp_path: Path, capsys):
    full = make_collection(tmp_path / "full", num_posts=150, seed=2)
    fs = read_featureset(full.store)
    first = write_featureset(tmp_path / "first", fs.subset(np.arange(100)))
    later = write_featureset(tmp_path / "later", fs.subset(np.arange(60, 150)))
    uri = str(tmp_path / "mv.db")
    out = tmp_path / "mv-index"
    args = ["index", "build", "--model", str(full.model), "--store", str(first)]
    args += ["--posts", str(full.dataset), "--out", str(out), "--backend", "milvus", "--uri", uri]
    assert main(args) == 0
    manifest = read_index_manifest(out)
    assert manifest["backend"]["name"] == "milvus" and manifest["backend"]["uri"] == uri
    assert not list(out.glob("*.faiss"))
    assert add_posts(out, full.model, later, progress=False) == 50
    ref = build_index(full.model, full.store, full.dataset, tmp_path / "ref", progress=False)
    a, b = PostIndex.open(out), PostIndex.open(ref)
    assert a.milvus is not None and a.post_ids.tolist() == b.post_ids.tolist()
    for m in MODALITIES:
        assert a.milvus.count(m) == int(b.present[m].sum())
    a.dense_max = b.dense_max = 0
    for pid in ("post-00003", "post-00120", "post-00149"):
        for filters in (None, Filters(accounts=("alpha",))):
            ra, rb = (
                a.more_like_this(pid, k=10, filters=filters),
                b.more_like_this(pid, k=10, filters=filters),
            )
            assert [h.post_id for h in ra.hits] == [h.post_id for h in rb.hits]
            np.testing.assert_allclose(
                [h.score for h in ra.hits], [h.score for h in rb.hits], atol=1e-6
            )
    # nmodal serve over it, unchanged: a real server, the FAISS index's answers
    uv, thread, url = run_server(create_app(out, encoder_source=fake_encoder_source))
    try:
        for pid in ("post-00010", "post-00140"):
            r = httpx.get(f"{url}/api/similar", params={"post_id": pid, "k": 10}, timeout=60)
            assert r.status_code == 200, r.text
            want = b.more_like_this(pid, k=10, include_same=True, collation="max")
            assert [h["post_id"] for h in r.json()["hits"]] == [h.post_id for h in want.hits]
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
    # a rebuild over it makes new collections and drops the old ones
    old = manifest["backend"]["collection"]
    assert main([*args, "--overwrite"]) == 0
    new = read_index_manifest(out)["backend"]["collection"]
    assert new != old
    assert not a.milvus.client.has_collection(f"{old}_text")
    assert main(["index", "info", str(out)]) == 0
    assert "backend: Milvus at" in capsys.readouterr().out


def test_milvus_backend_needs_a_uri(tmp_path: Path):
    full = make_collection(tmp_path / "c", num_posts=40, seed=3)
    with pytest.raises(InputError, match="--uri"):
        build_index(full.model, full.store, None, tmp_path / "x", backend="milvus", progress=False)
    with pytest.raises(InputError, match="Milvus index type"):
        build_index(
            full.model, full.store, None, tmp_path / "x", backend="milvus",
            uri=str(tmp_path / "a.db"), factory="IVF_PQ", progress=False,
        )  # fmt: skip

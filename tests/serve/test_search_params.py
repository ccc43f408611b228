"""Per-request ``ef_search`` (HNSW) and ``k_factor`` (refined RFlat) over HTTP: they reach the
index (the values used come back, the hits equal the library's with the same values), and an
index type without the knob answers 400 naming it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from nmodal.index import PostIndex, QueryEncoder, build_index
from nmodal.serve import create_app
from tests.index.fixtures import fake_encoder_source, make_collection
from tests.serve.conftest import run_server


@dataclass
class Served:
    client: httpx.Client
    index: PostIndex  # the served folder, opened in this process: the reference


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    root = tmp_path_factory.mktemp("knobs")
    col = make_collection(root / "c", num_posts=400, seed=11)
    builds: dict[str, dict[str, Any]] = {
        "hnsw": {"factory": "HNSW16,Flat", "params": {"efSearch": 24}},
        "rflat": {"factory": "IVF8,SQ8,RFlat", "nprobe": 2, "params": {"k_factor": 2.0}},
        "flat": {},
    }
    out: dict[str, Served] = {}
    servers = []
    try:
        for name, kwargs in builds.items():
            folder = build_index(
                col.model, col.store, col.dataset, root / name, progress=False, **kwargs
            )
            uv, thread, url = run_server(create_app(folder, encoder_source=fake_encoder_source))
            servers.append((uv, thread))
            out[name] = Served(httpx.Client(base_url=url, timeout=60), PostIndex.open(folder))
        yield out
    finally:
        for served in out.values():
            served.client.close()
        for uv, thread in servers:
            uv.should_exit = True
            thread.join(timeout=10)


def get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    r = client.get(path, params={"k": 10, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def same_hits(body: dict[str, Any], result: Any) -> None:
    assert [h["post_id"] for h in body["hits"]] == [h.post_id for h in result.hits]
    np.testing.assert_allclose(
        [h["score"] for h in body["hits"]], [h.score for h in result.hits], rtol=1e-6
    )


def test_ef_search_reaches_the_hnsw_index(served: dict[str, Served]):
    s = served["hnsw"]
    pid = s.index.post_ids[7]
    default = get(s.client, "/api/similar", post_id=pid)
    assert {p["efSearch"] for p in default["extra"]["params"].values()} == {24}
    for ef in (1, 200):
        body = get(s.client, "/api/similar", post_id=pid, ef_search=ef)
        assert body["extra"]["params"] == {key: {"efSearch": ef} for key in body["modalities"]}
        want = s.index.more_like_this(
            pid, k=10, include_same=True, collation="max", params={"efSearch": ef}
        )
        same_hits(body, want)
    text = "convoy at the border crossing"
    body = get(s.client, "/api/search", text=text, ef_search=200)
    assert {p["efSearch"] for p in body["extra"]["params"].values()} == {200}
    encoder = QueryEncoder.for_index(s.index.manifest, encoder_source=fake_encoder_source)
    vec = encoder.encode("text", text)
    same_hits(
        body,
        s.index.search(
            ["text"], vec, k=10, include_same=True, collation="max", params={"efSearch": 200}
        ),
    )


def test_k_factor_reaches_the_refined_index(served: dict[str, Served]):
    s = served["rflat"]
    pid = s.index.post_ids[3]
    default = get(s.client, "/api/similar", post_id=pid)
    assert {p["k_factor"] for p in default["extra"]["params"].values()} == {2.0}
    body = get(s.client, "/api/similar", post_id=pid, k_factor=8, nprobe=8)
    assert body["extra"]["params"] == {
        key: {"nprobe": 8, "k_factor": 8.0} for key in body["modalities"]
    }
    want = s.index.more_like_this(
        pid, k=10, include_same=True, collation="max", params={"k_factor": 8, "nprobe": 8}
    )
    same_hits(body, want)


@pytest.mark.parametrize(
    ("name", "param", "knob", "kind"),
    [("rflat", "ef_search", "efSearch", "HNSW"), ("hnsw", "k_factor", "k_factor", "RFlat"),
     ("flat", "ef_search", "efSearch", "HNSW"), ("flat", "k_factor", "k_factor", "RFlat")],
)  # fmt: skip
def test_a_knob_the_index_lacks_is_400(served: dict[str, Served], name, param, knob, kind):
    s = served[name]
    for path, extra in (
        ("/api/similar", {"post_id": s.index.post_ids[0]}),
        ("/api/search", {"text": "x"}),
    ):
        r = s.client.get(path, params={param: 4, **extra})
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        assert repr(knob) in detail and kind in detail


def test_out_of_range_knobs_are_422(served: dict[str, Served]):
    s = served["hnsw"]
    for param, value in (("ef_search", 0), ("k_factor", 0.5), ("ef_search", "many")):
        r = s.client.get("/api/similar", params={"post_id": s.index.post_ids[0], param: value})
        assert r.status_code == 422, r.text

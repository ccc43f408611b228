"""Per-request ``nprobe`` over HTTP, on an IVF index served by a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.helpers.media import write_image
from tests.serve.conftest import NLIST, Approx


@pytest.fixture
def ivf(approx: Approx) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=approx.url, timeout=60) as c:
        yield c


def hit_ids(body: dict[str, Any]) -> list[str]:
    return [h["post_id"] for h in body["hits"]]


def similar(client: httpx.Client, post_id: str, **params: Any) -> dict[str, Any]:
    r = client.get("/api/similar", params={"post_id": post_id, "k": 10, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_more_lists_give_recall_at_least_as_high(ivf: httpx.Client, approx: Approx):
    want = {
        pid: [
            h.post_id
            for h in approx.exact.more_like_this(pid, k=10, include_same=True, collation="max").hits
        ]
        for pid in approx.post_ids
    }
    recalls = []
    for nprobe in (1, 4, NLIST):
        found = []
        for pid in approx.post_ids:
            body = similar(ivf, pid, nprobe=nprobe)
            assert body["extra"]["nprobe"] == dict.fromkeys(body["modalities"], nprobe)
            found.append(len(set(hit_ids(body)) & set(want[pid])) / 10)
        recalls.append(float(np.mean(found)))
    assert recalls == sorted(recalls) and recalls[0] < recalls[-1], recalls
    assert recalls[-1] == 1.0
    # without nprobe: the server's setting (1, recorded at build time)
    default = similar(ivf, approx.post_ids[0])
    assert default["extra"]["nprobe"] == dict.fromkeys(default["modalities"], 1)


def test_all_lists_equal_exact_search(ivf: httpx.Client, approx: Approx, tmp_path: Path):
    for pid in approx.post_ids[:15]:
        body = similar(ivf, pid, nprobe=NLIST)
        want = approx.exact.more_like_this(pid, k=10, include_same=True, collation="max")
        assert hit_ids(body) == [h.post_id for h in want.hits]
        np.testing.assert_allclose(
            [h["score"] for h in body["hits"]], [h.score for h in want.hits], rtol=1e-6
        )
        assert body["exact"] is True
        assert similar(ivf, pid, nprobe=NLIST - 1)["exact"] is False
    text = "convoy at the border crossing"
    r = ivf.get("/api/search", params={"text": text, "k": 12, "nprobe": NLIST})
    want = approx.exact.search(
        ["text"], approx.encoder.encode("text", text), k=12, include_same=True, collation="max"
    )
    assert r.status_code == 200 and hit_ids(r.json()) == [h.post_id for h in want.hits]
    image = write_image(tmp_path / "q.png", index=4)
    r = ivf.post(
        "/api/search/file",
        params={"k": 12, "nprobe": NLIST},
        files={"file": ("q.png", image.read_bytes(), "image/png")},
    )
    want = approx.exact.search(
        ["image"], approx.encoder.encode("image", image), k=12, include_same=True, collation="max"
    )
    assert r.status_code == 200, r.text
    assert hit_ids(r.json()) == [h.post_id for h in want.hits] and r.json()["exact"] is True


def test_nprobe_is_capped_and_listed_in_info(ivf: httpx.Client, approx: Approx):
    pid = approx.post_ids[3]
    capped = similar(ivf, pid, nprobe=10**12)
    assert capped["extra"]["nprobe"] == dict.fromkeys(capped["modalities"], NLIST)
    assert hit_ids(capped) == hit_ids(similar(ivf, pid, nprobe=NLIST))
    index_info = ivf.get("/api/info").json()["index"]
    assert index_info["text"] == {"factory": f"IVF{NLIST},Flat", "count": index_info["text"]["count"],
                                  "nlist": NLIST, "nprobe": 1}  # fmt: skip


@pytest.mark.parametrize("bad", ["0", "-3", "1.5", "many", ""])
def test_invalid_nprobe_is_a_422_with_a_message(ivf: httpx.Client, bad: str):
    for path, params in (
        ("/api/search", {"text": "x"}),
        ("/api/similar", {"post_id": "post-00001"}),
    ):
        r = ivf.get(path, params={**params, "nprobe": bad})
        assert r.status_code == 422, (path, bad, r.text)
        errors = r.json()["detail"]
        assert [e["loc"] for e in errors] == [["query", "nprobe"]]
        assert errors[0]["msg"]  # e.g. "Input should be greater than or equal to 1"
    r = ivf.post(
        "/api/search/file",
        params={"nprobe": bad},
        files={"file": ("q.png", b"\x89PNG\r\n\x1a\n", "image/png")},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "nprobe"]


def test_concurrent_requests_with_different_nprobe_do_not_interfere(approx: Approx):
    plan = [(pid, p) for pid in approx.post_ids for p in (1, 3, NLIST, None)]
    baseline = {
        (pid, p): [
            h.post_id
            for h in approx.ivf.more_like_this(
                pid, k=10, include_same=True, collation="max", nprobe=p
            ).hits
        ]
        for pid, p in plan
    }
    assert any(baseline[pid, 1] != baseline[pid, NLIST] for pid in approx.post_ids)
    limits = httpx.Limits(max_connections=24, max_keepalive_connections=24)
    with httpx.Client(base_url=approx.url, timeout=60, limits=limits) as shared:

        def run(item: tuple[str, int | None]) -> list[str]:
            pid, p = item
            return hit_ids(similar(shared, pid, **({} if p is None else {"nprobe": p})))

        work = plan * 3
        with ThreadPoolExecutor(max_workers=24) as pool:
            got = list(pool.map(run, work))
        assert got == [baseline[item] for item in work]
        info = shared.get("/api/info").json()["index"]
    assert {i["nprobe"] for i in info.values()} == {1}  # the server's setting was never touched


def test_exact_index_accepts_nprobe_without_effect(client: httpx.Client):
    plain = client.get("/api/search", params={"text": "river crossing", "k": 15}).json()
    probed = client.get("/api/search", params={"text": "river crossing", "k": 15, "nprobe": 7})
    assert probed.status_code == 200
    assert hit_ids(probed.json()) == hit_ids(plain) and probed.json()["exact"] is True
    assert "nprobe" not in probed.json()["extra"]
    info = client.get("/api/info").json()["index"]
    assert all(i["nlist"] is None and i["nprobe"] is None for i in info.values())


def test_nprobe_is_documented_in_openapi(client: httpx.Client):
    spec = client.get("/openapi.json").json()
    assert "nprobe" in spec["info"]["description"]
    for path, method in (
        ("/api/search", "get"),
        ("/api/similar", "get"),
        ("/api/search/file", "post"),
    ):
        params = {p["name"]: p for p in spec["paths"][path][method]["parameters"]}
        assert "IVF" in params["nprobe"]["description"], path
        assert params["nprobe"]["required"] is False
        schema = params["nprobe"]["schema"]["anyOf"][0]
        assert schema == {"type": "integer", "minimum": 1}

"""Host allow-list, Origin check, access token and response headers on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nmodal.serve import create_app
from nmodal.serve.security import SecurityConfig, is_loopback
from tests.index.fixtures import Collection, fake_encoder_source

from .conftest import Server, run_server

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(served_collection: tuple[Collection, Path]) -> Iterator[str]:
    """The collection served with a token, as `nmodal serve --host 0.0.0.0 --token` does."""
    _, index_dir = served_collection
    security = SecurityConfig.for_bind("0.0.0.0", TOKEN, ["search.lan"])
    uv, thread, url = run_server(
        create_app(index_dir, encoder_source=fake_encoder_source, security=security)
    )
    try:
        yield url
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_every_response_carries_the_security_headers(client: httpx.Client) -> None:
    for path in ("/", "/api/health", "/static/app.js", "/docs", "/api/post?post_id=nope"):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["x-frame-options"] == "DENY", path


def test_foreign_host_is_refused(client: httpx.Client) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 names its own host."""
    assert client.get("/api/health", headers={"Host": "evil.example"}).status_code == 421
    assert client.get("/api/health", headers={"Host": "evil.example:8000"}).status_code == 421
    assert client.get("/api/health").status_code == 200


def test_cross_origin_requests_are_refused(client: httpx.Client, server: Server) -> None:
    files = {"file": ("q.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")}
    r = client.post("/api/search/file", files=files, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = client.get("/api/health", headers={"Origin": "null"})
    assert r.status_code == 403
    r = client.get("/api/health", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    own = server.url  # same origin: accepted
    assert client.get("/api/health", headers={"Origin": own}).status_code == 200


def test_docs_are_offline_and_responses_hold_no_paths(client: httpx.Client) -> None:
    page = client.get("/docs").text
    assert "/api/search" in page and "/openapi.json" in page
    assert "cdn" not in page.lower() and "https://" not in page and "http://" not in page
    hits = client.get("/api/search", params={"text": "tank", "k": 5}).json()["hits"]
    pid = hits[0]["post_id"]
    for post in [client.get("/api/post", params={"post_id": pid}).json(), hits[0]["post"]]:
        assert not [k for k in post if k.endswith("_path")], post
        assert all(u.startswith("/api/") for u in post["urls"].values())


def test_bad_dates_are_4xx_or_clamped(client: httpx.Client) -> None:
    for value in ("0000-01-01", "9999-12-31", "2262-04-11"):
        r = client.get("/api/search", params={"text": "tank", "until": value})
        assert r.status_code == 200, (value, r.text)
    r = client.get("/api/search", params={"text": "tank", "until": "not a date"})
    assert r.status_code == 400


def test_token_required_beyond_loopback(guarded: str) -> None:
    with httpx.Client(base_url=guarded, timeout=30) as c:
        assert c.get("/api/health").status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        # the printed link: ?token= becomes an HttpOnly cookie, then a clean URL
        r = c.get("/", params={"token": TOKEN}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert (
            "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
        )
        assert c.get("/api/health").status_code == 200  # the cookie now travels along
        named = c.get("/api/health", headers={"Host": "search.lan"})
        assert named.status_code == 200  # an --allow-host name
    assert httpx.get(f"{guarded}/api/health", headers={"Host": "evil.example"}).status_code == 421


def test_bind_configuration() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert SecurityConfig.for_bind("127.0.0.1", None).token is None
    generated = SecurityConfig.for_bind("0.0.0.0", None)
    assert generated.token and len(generated.token) >= 24  # never exposed without a token
    assert "192.168.1.4" in SecurityConfig.for_bind("192.168.1.4", None).allowed_hosts


def _serve_on_all_interfaces(app: object) -> tuple[object, object, int]:
    """``app`` on a socket bound to 0.0.0.0 (as ``nmodal serve --host 0.0.0.0``)."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    return uv, thread, port


def test_a_wildcard_bind_accepts_the_machines_names_and_addresses(
    served_collection: tuple[Collection, Path],
) -> None:
    import socket

    from nmodal.serve.security import machine_hosts

    _, index_dir = served_collection
    security = SecurityConfig.for_bind("0.0.0.0", TOKEN)
    mine = machine_hosts()
    assert socket.gethostname().lower() in mine and mine <= security.allowed_hosts
    uv, thread, port = _serve_on_all_interfaces(
        create_app(index_dir, encoder_source=fake_encoder_source, security=security)
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        names = [socket.gethostname(), socket.getfqdn()]
        v4 = sorted(h for h in mine if h.count(".") == 3 and not h.startswith("127."))
        v6 = sorted(h for h in mine if ":" in h and h != "::1")
        for name in names + v4:
            r = httpx.get(f"http://127.0.0.1:{port}/api/health",
                          headers={**auth, "Host": f"{name}:{port}"})  # fmt: skip
            assert r.status_code == 200, (name, r.status_code)
        for addr in v6:
            r = httpx.get(f"http://127.0.0.1:{port}/api/health",
                          headers={**auth, "Host": f"[{addr}]:{port}"})  # fmt: skip
            assert r.status_code == 200, (addr, r.status_code)
        for lan in v4:  # a real connection through the LAN interface, as a LAN client makes
            assert httpx.get(f"http://{lan}:{port}/api/health", headers=auth).status_code == 200
            assert httpx.get(f"http://{lan}:{port}/api/health").status_code == 401  # no token
        # DNS rebinding stays refused: a foreign name, even one that ends in ours
        for foreign in ("evil.example", f"{socket.gethostname()}.evil.example", "10.255.255.1"):
            if foreign in mine:
                continue
            r = httpx.get(f"http://127.0.0.1:{port}/api/health",
                          headers={**auth, "Host": f"{foreign}:{port}"})  # fmt: skip
            assert r.status_code == 421, foreign
    finally:
        uv.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)  # type: ignore[attr-defined]
    # a named bind does not add the machine's other names
    assert (
        socket.gethostname().lower() not in SecurityConfig.for_bind("127.0.0.1", None).allowed_hosts
    )

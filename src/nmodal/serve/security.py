"""Who may talk to ``nmodal serve``, and what every response tells the browser.

:func:`install_security` wraps the app in :class:`SecurityMiddleware` (plain ASGI):

- **Host allow-list** (DNS rebinding): the ``Host`` header must name this server, by
  default ``127.0.0.1``, ``localhost`` or ``[::1]``; a non-loopback bind adds its address and
  ``--allow-host`` names; a wildcard bind (``0.0.0.0``, ``::``) adds this machine's own names
  and addresses (:func:`machine_hosts`: the host name, its fully qualified name, the
  addresses of every network interface), so a client on the LAN may use those. Anything
  else (a name that only resolves to this machine, as in DNS rebinding): 421.
- **Origin check** (cross-site requests, e.g. a hostile page POSTing to the API): a request
  whose ``Origin`` is not this server's own origin, or whose ``Sec-Fetch-Site`` says
  ``cross-site``, is refused with 403.
- **Access token** (required whenever the server binds anything but loopback): as
  ``Authorization: Bearer <token>``, as the ``nmodal_token`` cookie, or once as ``?token=``
  on the page, which sets that cookie (HttpOnly, SameSite=Strict) and redirects to the
  clean URL. Without it: 401. Compared in constant time.
- **Headers on every response**: a Content-Security-Policy that allows only this server's
  own scripts, styles, images and media and no framing (``frame-ancestors 'none'``), plus
  ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer``.

:func:`docs_page` serves ``/docs`` as a self-contained HTML page built from the OpenAPI
schema (no CDN, no external favicon); the schema itself stays at ``/openapi.json``.

Example:
    >>> cfg = SecurityConfig.for_bind("0.0.0.0", token=None)  # doctest: +SKIP
    >>> cfg.token  # generated: print it for the user  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hmac
import html
import ipaddress
import json
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

TOKEN_COOKIE = "nmodal_token"
TOKEN_ENV = "NMODAL_TOKEN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
_SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def _interface_ipv4(name: str) -> str | None:
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None  # no IPv4 address on it
    return socket.inet_ntoa(packed[20:24])


def _interface_addresses() -> set[str]:
    """This machine's interface addresses: IPv4 by ``SIOCGIFADDR``, IPv6 from
    ``/proc/net/if_inet6`` (Linux; elsewhere only the host name's addresses are found)."""
    found: set[str] = set()
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    for name in names:
        try:
            addr = _interface_ipv4(name)
        except (ImportError, OSError):
            addr = None
        if addr:
            found.add(addr)
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            for line in f:
                hexaddr = line.split()[0] if line.split() else ""
                if len(hexaddr) == 32:
                    found.add(str(ipaddress.IPv6Address(bytes.fromhex(hexaddr))))
    except (OSError, ValueError):
        pass
    return found


def machine_hosts() -> frozenset[str]:
    """The names and addresses clients on the network may use for this machine: its host
    name, fully qualified name, the addresses those resolve to and every interface address
    (lower case, IPv6 without brackets). Never raises."""
    hosts: set[str] = set()
    with contextlib.suppress(OSError):
        hosts |= {socket.gethostname(), socket.getfqdn()}
    for name in list(hosts):
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            continue
        hosts |= {str(info[4][0]).split("%")[0] for info in infos}
    hosts |= _interface_addresses()
    return frozenset(h.lower() for h in hosts if h)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SecurityConfig:
    """``token``: required on every request when set; ``allowed_hosts``: host names (no
    port) accepted in the ``Host`` header."""

    token: str | None = None
    allowed_hosts: frozenset[str] = field(default=LOOPBACK_HOSTS)

    @classmethod
    def for_bind(
        cls, host: str, token: str | None, extra_hosts: Iterable[str] = ()
    ) -> SecurityConfig:
        """The configuration for a server bound to ``host``: loopback needs no token (unless
        given); any other bind requires one, generated here when none is given. The allowed
        host names: loopback's, ``extra_hosts``, and ``host`` itself, or for a wildcard bind
        (``0.0.0.0``, ``::``) this machine's names and addresses (:func:`machine_hosts`)."""
        hosts = set(LOOPBACK_HOSTS) | {h.strip().lower().strip("[]") for h in extra_hosts if h}
        if host in WILDCARD_BINDS:
            hosts |= machine_hosts()
        else:
            hosts.add(host.lower().strip("[]"))
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(24)
        return cls(token=token or None, allowed_hosts=frozenset(hosts))


def _host_name(value: str) -> str:
    """The host part of a ``Host`` header value (``[::1]:8000`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class SecurityMiddleware:
    """The checks and headers of the module docstring, for HTTP requests."""

    def __init__(self, app: ASGIApp, config: SecurityConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        refusal = self._refusal(scope, headers, host)
        if refusal is not None:
            status, text = refusal
            await _plain(send, status, text)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        if self.config.token and "token=" in query and scope.get("method") in ("GET", "HEAD"):
            # the link printed by `nmodal serve`: turn the token into a cookie, drop it from
            # the address bar (and from logs, history, Referer)
            rest = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
            location = scope.get("path", "/") + (f"?{urlencode(rest)}" if rest else "")
            cookie = f"{TOKEN_COOKIE}={self.config.token}; HttpOnly; SameSite=Strict; Path=/"
            await _plain(send, 303, "see other", [(b"location", location.encode()),
                                                  (b"set-cookie", cookie.encode())])  # fmt: skip
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: dict[str, str], host: str) -> tuple[int, str] | None:
        if _host_name(host) not in self.config.allowed_hosts:
            return 421, "unknown Host: this server answers only to its own name"
        origin = headers.get("origin")
        if origin is not None and origin != "null":
            parts = urlsplit(origin)
            if parts.netloc.lower() != host.strip().lower() or parts.scheme not in (
                "http",
                "https",
            ):
                return 403, "cross-origin request refused"
        elif origin == "null":
            return 403, "cross-origin request refused"
        if headers.get("sec-fetch-site") == "cross-site":
            return 403, "cross-site request refused"
        if self.config.token and not self._authorised(scope, headers):
            return 401, "access token required (Authorization: Bearer, or the link with ?token=)"
        return None

    def _authorised(self, scope: Scope, headers: dict[str, str]) -> bool:
        token = self.config.token or ""
        auth = headers.get("authorization", "")
        candidates = [auth[7:].strip()] if auth.lower().startswith("bearer ") else []
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token, not a server error
            cookie = SimpleCookie()
        if TOKEN_COOKIE in cookie:
            candidates.append(cookie[TOKEN_COOKIE].value)
        query = scope.get("query_string", b"").decode("latin-1")
        candidates += [v for k, v in parse_qsl(query) if k == "token"]
        return any(hmac.compare_digest(c.encode(), token.encode()) for c in candidates)


async def _plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": text}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def docs_page(schema: dict[str, Any]) -> str:
    """A self-contained HTML page documenting every path and parameter of ``schema``."""
    info = schema.get("info", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>",
        f"<title>{html.escape(str(info.get('title', 'API')))} API</title></head><body>",
        f"<h1>{html.escape(str(info.get('title', '')))} {html.escape(str(info.get('version')))}"
        "</h1>",
        f"<p>{html.escape(str(info.get('description', '')))}</p>",
        "<p>Machine-readable schema: <a href='/openapi.json'>/openapi.json</a></p>",
    ]
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            parts.append(f"<h2><code>{html.escape(method.upper())} {html.escape(path)}</code></h2>")
            if op.get("summary") or op.get("description"):
                text = op.get("description") or op.get("summary")
                parts.append(f"<p>{html.escape(str(text))}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table border='1'><tr><th>name</th><th>in</th><th>about</th></tr>")
                for p in params:
                    parts.append(
                        f"<tr><td><code>{html.escape(str(p.get('name')))}</code></td>"
                        f"<td>{html.escape(str(p.get('in')))}</td>"
                        f"<td>{html.escape(str(p.get('description', '')))}</td></tr>"
                    )
                parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def without_paths(post: dict[str, Any]) -> dict[str, Any]:
    """A post's JSON without its filesystem paths (``*_path``, ``media_root``): clients use
    its ``urls``."""
    return {k: v for k, v in post.items() if not k.endswith("_path") and k != "media_root"}


def install_security(app: Any, config: SecurityConfig) -> None:
    """Add the middleware and the offline ``/docs`` page to a FastAPI ``app`` (created with
    ``docs_url=None, redoc_url=None``)."""
    from fastapi.responses import HTMLResponse

    app.add_middleware(SecurityMiddleware, config=config)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

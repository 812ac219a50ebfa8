"""The dashboard's routes, served by the daemon's HTTP endpoint beside /healthz and /metrics.

Read-only by construction: it answers GET (and HEAD) and opens the database through read
sessions; any other method on its paths is refused. Loopback clients are trusted like the
command line on the same machine; any other client needs the configured token (``[web]
token``, ``MONITOR_WEB__TOKEN``) as a bearer token or as the password of HTTP Basic (what a
browser prompts for), and without a token the pages are not served beyond loopback at all.
A reverse proxy on the same machine connects from loopback on behalf of anyone, so a request
that carries a proxy's forwarding header (``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``)
is not taken as local: it needs the token like any remote client.
Every answer carries a Content-Security-Policy that allows no script and nothing from
elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, unquote

from monitor.config import FeedConfig
from monitor.store.log import EventStore
from monitor.web import render, views

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
HTML = "text/html; charset=utf-8"
# Headers a reverse proxy adds to say whom it forwards for (RFC 7239, and the common two).
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class Headers(Protocol):
    """Request headers as the HTTP server holds them (looked up by any-case name)."""

    def get(self, name: str, /) -> str | None: ...


def forwarded(headers: Headers) -> bool:
    """True when the request came through a proxy that says so (header names any case)."""
    return any(headers.get(name) is not None for name in FORWARDING_HEADERS)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = HTML
    headers: dict[str, str] = field(default_factory=dict)


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def token_matches(header: str | None, token: str) -> bool:
    """``Bearer TOKEN``, or HTTP Basic with TOKEN as the password (any user name)."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(decoded.partition(":")[2].encode(), token.encode())
    return False


class WebUI:
    """Page routes over one event store; ``feeds`` and ``names`` are read per request, so a
    reload of the configuration shows at once."""

    PREFIXES = ("/watch/", "/static/")
    PATHS = ("/", "/alerts", "/feeds", "/favicon.ico")

    def __init__(
        self,
        store: EventStore,
        feeds: Callable[[], Sequence[FeedConfig]],
        names: Callable[[], Mapping[str, str]],
        token: str | None = None,
    ) -> None:
        self.store = store
        self.feeds = feeds
        self.names = names
        self.token = token or None
        self.links = render.Links()
        self.views = views.Views(store)  # folds and facts this server remembers

    def serves(self, path: str) -> bool:
        return path in self.PATHS or path.startswith(self.PREFIXES)

    def handle(
        self,
        method: str,
        target: str,
        client: str,
        authorization: str | None,
        *,
        proxied: bool = False,
    ) -> Response:
        """Answer one request for a dashboard path (``serves(path)`` is true); ``proxied``: it
        carries a forwarding header, so a loopback address says nothing of the real client."""
        path, _, query = target.partition("?")
        if method not in ("GET", "HEAD"):
            return self._page(
                405, "Method not allowed", "The dashboard only reads.", Allow="GET, HEAD"
            )
        if proxied or not is_loopback(client):
            if self.token is None:
                return self._page(
                    403,
                    "Forbidden",
                    "The dashboard answers other machines, and requests through a proxy, "
                    "only when a token is configured ([web] token).",
                )
            if not token_matches(authorization, self.token):
                return self._page(
                    401,
                    "Token required",
                    "Send the configured token as a bearer token or as the Basic password.",
                    **{"WWW-Authenticate": 'Basic realm="monitor", charset="UTF-8"'},
                )
        try:
            return self._route(path, parse_qs(query))
        except Exception:
            log.exception("dashboard: %s failed", path)
            return self._page(500, "Error", "The page could not be read; the log says why.")

    def _route(self, path: str, query: dict[str, list[str]]) -> Response:
        names = dict(self.names())

        def one(key: str) -> str | None:
            values = query.get(key)
            return values[0] if values and values[0] else None

        if path == "/favicon.ico":  # browsers ask; no icon, and no error in their console
            return Response(204, b"", "image/x-icon")
        if path == "/static/style.css":
            return Response(200, render.stylesheet().encode(), "text/css; charset=utf-8")
        if path == "/":
            context = render.overview_context(self.views, names, self.feeds())
            return self._ok(render.render("overview.j2", self.links, **context))
        if path == "/alerts":
            return self._ok(
                render.render("alerts.j2", self.links, **render.alerts_context(self.store))
            )
        if path == "/feeds":
            context = render.feeds_context(self.store, self.feeds())
            return self._ok(render.render("feeds.j2", self.links, **context))
        if path.startswith("/watch/"):
            watch = unquote(path.removeprefix("/watch/"))
            page = one("page") or "1"
            if not page.isdigit():
                return self._page(400, "Bad request", "page must be a number")
            context = render.watch_context(
                self.views,
                watch,
                names,
                fact_type=one("type"),
                outlet=one("outlet"),
                page=int(page),
            )
            return self._ok(render.render("watch.j2", self.links, w=context))
        return self._page(404, "Not found", "No such page.")

    @staticmethod
    def _ok(html: str) -> Response:
        return Response(200, html.encode())

    def _page(self, status: int, title: str, message: str, **headers: str) -> Response:
        html = render.render("message.j2", self.links, heading=title, message=message)
        return Response(status, html.encode(), headers=headers)

"""Fetching bytes from file:// and http(s):// locations, politely and with hard limits.

Politeness: a clear User-Agent, conditional GET (``If-None-Match`` / ``If-Modified-Since``),
gzip, at most ``per_host`` requests in flight to one host, and ``Retry-After`` reported back to
the scheduler. Limits that protect the daemon: connect, read and total timeouts (the total
covers everything from connecting to the last body byte), a redirect limit, and a body cap
applied to both the bytes on the wire and the decompressed bytes (a gzip bomb is cut off, never
inflated whole). Every failure is a ``FetchError`` whose ``kind`` is one short word for metrics
and whose message a person can act on.

Two entry points, because trust differs: ``fetch`` reads a location the operator configured;
``fetch_link`` reads a URL found inside a document (see ``guard`` for what that may reach).
Redirects are followed here, hop by hop, and every hop after the first is untrusted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import httpx
from pydantic import BaseModel, IPvAnyNetwork

from monitor.sources.guard import TRUSTED, AddressPolicy, AddressRefused, GuardedTransport, deadline


def _version() -> str:
    try:
        return importlib.metadata.version("monitor")
    except importlib.metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"monitor/{_version()} (conflict news monitor; +https://example.invalid/monitor)"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
RETRY_AFTER_CAP = 24 * 3600.0  # a server asking for more than a day is not taken literally
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    "text/html;q=0.8, */*;q=0.5"
)


class FetchError(RuntimeError):
    """The location could not be read; the message says why in one line.

    ``kind`` classifies the failure for metrics (timeout, connect, http_4xx, http_5xx,
    rate_limited, too_large, redirects, decode, file, scheme, refused, other); ``refused``
    means an untrusted URL led somewhere it may not go. ``retry_after`` is the
    server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "other",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class Fetched(BaseModel):
    url: str
    final_url: str
    status: int | None = None
    content_type: str | None = None
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class FetchLimits(BaseModel):
    max_bytes: int = DEFAULT_MAX_BYTES
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_redirects: int = 5
    per_host: int = 2
    user_agent: str = USER_AGENT
    # Non-public networks that links and redirects may reach (the operator's own feeds may
    # always be reached). Empty: public addresses only.
    allow_networks: tuple[IPvAnyNetwork, ...] = ()


def fetch(
    url: str,
    *,
    limits: FetchLimits | None = None,
    client: httpx.Client | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """Read a location the operator configured (a feed): any address, file or http(s)."""
    limits = limits or FetchLimits()
    scheme = urlparse(url).scheme
    if scheme == "file":
        return _fetch_file(url, limits)
    if scheme in ("http", "https"):
        return _fetch_http(url, limits, client, etag, last_modified, trusted=True)
    raise FetchError(f"unsupported URL scheme {scheme!r} in {url}", kind="scheme")


def fetch_link(
    url: str,
    *,
    file_root: Path | None = None,
    limits: FetchLimits | None = None,
    client: httpx.Client | None = None,
) -> Fetched:
    """Read a URL found inside a document: http(s) to an allowed address, or a file: URL
    inside ``file_root`` (given only for links of a local feed file). Refusals raise
    ``FetchError`` with kind ``refused``."""
    limits = limits or FetchLimits()
    scheme = urlparse(url).scheme.lower()
    if scheme == "file":
        return _fetch_file(url, limits, file_root=_file_root(url, file_root))
    if scheme in ("http", "https"):
        return _fetch_http(url, limits, client, None, None, trusted=False)
    raise FetchError(f"{url}: refused: only http(s) links are followed", kind="refused")


def _file_root(url: str, root: Path | None) -> Path:
    """The directory a file: link may read from, or the reason it may not be read at all."""
    if root is None:
        raise FetchError(
            f"{url}: refused: file: links are read only from local feed files", kind="refused"
        )
    host = urlparse(url).netloc
    if host not in ("", "localhost"):
        raise FetchError(f"{url}: refused: file: link to another host", kind="refused")
    return root


def file_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def read_file_capped(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of a file; a larger one (or a device that never ends) is refused
    after reading one byte more than the cap, never read whole."""
    with path.open("rb") as handle:
        body = handle.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise FetchError(f"{path}: larger than the {max_bytes}-byte limit", kind="too_large")
    return body


def _fetch_file(url: str, limits: FetchLimits, file_root: Path | None = None) -> Fetched:
    path = file_path(url)
    if "\x00" in str(path):
        raise FetchError(f"{url!r}: refused: a NUL in a file path", kind="refused")
    if file_root is not None:
        real, root = path.resolve(), file_root.resolve()
        if not real.is_relative_to(root):
            raise FetchError(
                f"{url}: refused: file: link outside the feed's directory {root} "
                "(the feed's files_under, or replay --files-under, widens it)",
                kind="refused",
            )
    try:
        body = read_file_capped(path, limits.max_bytes)
    except OSError as exc:
        raise FetchError(f"{path}: {exc.strerror or exc}", kind="file") from exc
    return Fetched(url=url, final_url=url, body=body)


class _Releasing(httpx.SyncByteStream):
    """A response body that gives its host slot back when closed, exactly once."""

    def __init__(self, inner: httpx.SyncByteStream, slot: threading.Semaphore) -> None:
        self._inner = inner
        self._slot: threading.Semaphore | None = slot

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            slot, self._slot = self._slot, None
            if slot is not None:
                slot.release()


class HostLimitedTransport(httpx.BaseTransport):
    """At most ``per_host`` requests in flight to one host:port, however many feeds share it.

    A slot is held from sending the request until its body is closed; waiting for a slot is
    bounded by ``wait`` seconds and then fails like a pool timeout.
    """

    def __init__(self, inner: httpx.BaseTransport, per_host: int, wait: float) -> None:
        self._inner = inner
        self._per_host = max(1, per_host)
        self._wait = wait
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def slot(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            if host not in self._slots:
                self._slots[host] = threading.BoundedSemaphore(self._per_host)
            return self._slots[host]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = f"{request.url.host}:{request.url.port or request.url.scheme}"
        slot = self.slot(host)
        if not slot.acquire(timeout=self._wait):
            raise httpx.PoolTimeout(f"{self._per_host} requests to {host} already in flight")
        try:
            response = self._inner.handle_request(request)
        except BaseException:
            slot.release()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _Releasing(response.stream, slot)
        return response

    def close(self) -> None:
        self._inner.close()


def new_client(limits: FetchLimits | None = None) -> httpx.Client:
    """One client per process: connection reuse, per-host limits, the address policy, our
    headers. Proxy environment variables are not used: the address check needs the direct
    connection. Redirects are followed by ``fetch``, one checked hop at a time."""
    limits = limits or FetchLimits()
    timeout = httpx.Timeout(
        min(limits.read_timeout, limits.total_timeout),
        connect=min(limits.connect_timeout, limits.total_timeout),
        pool=limits.total_timeout,
    )
    transport = HostLimitedTransport(
        GuardedTransport(
            AddressPolicy(limits.allow_networks),
            httpx.Limits(max_connections=32, max_keepalive_connections=8),
        ),
        limits.per_host,
        wait=limits.total_timeout,
    )
    return httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        headers={
            "User-Agent": limits.user_agent,
            "Accept": ACCEPT,
            # Only what we can decode with a bound on the output: no br, no zstd.
            "Accept-Encoding": "gzip, deflate",
        },
    )


def _fetch_http(
    url: str,
    limits: FetchLimits,
    client: httpx.Client | None,
    etag: str | None,
    last_modified: str | None,
    *,
    trusted: bool,
) -> Fetched:
    own = client is None
    client = client or new_client(limits)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    ends = time.monotonic()
    try:
        with deadline(limits.total_timeout) as ends:
            return _follow(client, url, headers, limits, trusted)
    except AddressRefused as exc:
        raise FetchError(f"{url}: refused: {exc}", kind="refused") from exc
    except httpx.TimeoutException as exc:
        if time.monotonic() >= ends:
            message = f"{url}: took longer than {limits.total_timeout:g} s in total"
        else:
            message = f"{url}: timed out ({type(exc).__name__})"
        raise FetchError(message, kind="timeout") from exc
    except httpx.ConnectError as exc:
        raise FetchError(f"{url}: cannot connect: {exc}", kind="connect") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            client.close()


def _follow(
    client: httpx.Client, url: str, headers: dict[str, str], limits: FetchLimits, trusted: bool
) -> Fetched:
    """GET ``url``, following redirects; each redirect target is an untrusted link."""
    location = url
    for _hop in range(limits.max_redirects + 1):
        with client.stream("GET", location, headers=headers, extensions={TRUSTED: trusted}) as resp:
            target = resp.headers.get("location")
            if resp.is_redirect and target:
                location = urljoin(str(resp.url), target.strip())
                if urlparse(location).scheme.lower() not in ("http", "https"):
                    raise FetchError(
                        f"{url}: refused: redirect to {location} (only http(s) is followed)",
                        kind="refused",
                    )
                trusted = False
                continue
            if resp.status_code == 304:
                etag, modified = headers.get("If-None-Match"), headers.get("If-Modified-Since")
                return Fetched(
                    url=url,
                    final_url=str(resp.url),
                    status=304,
                    body=b"",
                    etag=resp.headers.get("etag") or etag,
                    last_modified=resp.headers.get("last-modified") or modified,
                    not_modified=True,
                )
            if resp.status_code >= 400:
                raise _status_error(url, resp)
            body = _read_capped(resp, limits.max_bytes, url)
            return Fetched(
                url=url,
                final_url=str(resp.url),
                status=resp.status_code,
                content_type=resp.headers.get("content-type"),
                body=body,
                etag=resp.headers.get("etag"),
                last_modified=resp.headers.get("last-modified"),
            )
    raise FetchError(f"{url}: more than {limits.max_redirects} redirects", kind="redirects")


def _status_error(url: str, resp: httpx.Response) -> FetchError:
    status = resp.status_code
    retry_after = parse_retry_after(resp.headers.get("retry-after"))
    kind = "rate_limited" if status == 429 else "http_5xx" if status >= 500 else "http_4xx"
    hint = f" (retry after {retry_after:.0f} s)" if retry_after is not None else ""
    return FetchError(
        f"{url}: HTTP {status}{hint}", kind=kind, status=status, retry_after=retry_after
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


class _Decoder:
    """Content-Encoding undone chunk by chunk, never producing more than the cap allows."""

    def __init__(self, encoding: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1:
            raise FetchError(f"stacked content encodings {encoding!r}", kind="decode")
        self.coding = codings[0] if codings else None
        if self.coding in ("gzip", "x-gzip"):
            self._z: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._z = zlib.decompressobj()
        elif self.coding is None:
            self._z = None
        else:
            raise FetchError(f"unsupported content encoding {self.coding!r}", kind="decode")
        self._first = True

    def decode(self, chunk: bytes, room: int) -> tuple[bytes, bool]:
        """(output, overflow): at most ``room + 1`` bytes; overflow when more would follow."""
        if self._z is None:
            return chunk, len(chunk) > room
        try:
            out = self._z.decompress(chunk, room + 1)
        except zlib.error:
            if self.coding == "deflate" and self._first:
                # Some servers send raw deflate without the zlib header.
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                self._first = False
                return self.decode(chunk, room)
            raise
        self._first = False
        return out, len(out) > room or bool(self._z.unconsumed_tail)


def _read_capped(resp: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            f"{url}: {declared} bytes exceeds the {max_bytes}-byte limit", kind="too_large"
        )
    decoder = _Decoder(resp.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    wire = size = 0
    try:
        for raw in resp.iter_raw():
            wire += len(raw)
            out, overflow = decoder.decode(raw, max_bytes - size)
            size += len(out)
            if overflow or wire > max_bytes:
                raise FetchError(
                    f"{url}: body exceeds the {max_bytes}-byte limit", kind="too_large"
                )
            chunks.append(out)
    except zlib.error as exc:
        raise FetchError(f"{url}: cannot decode the body: {exc}", kind="decode") from exc
    return b"".join(chunks)

"""Where a fetch may go, checked on the connection actually made, and when it must end.

Trust: the feed locations the operator configured are trusted. Every other URL (a link found
inside a feed, the target of a redirect) is not: it must be http(s), and the address the socket
actually connected to must be public unless ``allow_networks`` covers it. Checking the
connected peer rather than a DNS answer obtained beforehand covers DNS rebinding and redirects
alike, and the check happens before a byte of the request is sent. Trusted and untrusted
requests use separate connection pools, so a connection opened for a trusted feed on an
internal host is never reused for an untrusted link to that host.

Time: httpx bounds each socket operation, not the request, so a server that sends one byte a
second (in its headers or its body) never trips a read timeout. Every socket operation made
here is also bounded by the deadline of the fetch it belongs to (``deadline``), and so is the
name lookup before the connection: ``getaddrinfo`` takes no timeout and a slow resolver can
hold it for tens of seconds, so it runs on a helper thread the fetch stops waiting for.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

# Request extension: True when the URL is the operator's own (a configured feed location).
TRUSTED = "monitor.trusted"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_deadline: ContextVar[float | None] = ContextVar("monitor_fetch_deadline", default=None)


class AddressRefused(httpx.TransportError):
    """An untrusted URL led to an address that is not public and not allowed."""


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Bound every socket operation of this thread's fetch to ``seconds`` from now."""
    ends = time.monotonic() + seconds
    token = _deadline.set(ends)
    try:
        yield ends
    finally:
        _deadline.reset(token)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """The operation's own timeout, cut to what is left of the fetch's deadline."""
    ends = _deadline.get()
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise expired("the fetch's total time limit was reached")
    return left if timeout is None else min(timeout, left)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses of ``host``, in the resolver's order, or ConnectTimeout after ``timeout``.

    The lookup runs on a daemon thread so an abandoned one never holds up the fetch or exit.
    """
    if _is_address(host):
        return [host]
    found: list[list[str]] = []
    failed: list[OSError] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found.append(list(dict.fromkeys(str(info[4][0]) for info in infos)))
        except OSError as exc:
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    if not done.wait(timeout):
        raise httpcore.ConnectTimeout(f"looking up {host} took longer than {timeout:.1f} s")
    if failed:
        raise httpcore.ConnectError(f"{host}: {failed[0]}")
    return found[0]


class AddressPolicy:
    """Public addresses, plus the operator's ``allow_networks``; nothing else."""

    def __init__(self, allow: Iterable[Network | str] = ()) -> None:
        self.allow = tuple(ipaddress.ip_network(n) for n in allow)

    def refusal(self, host: str) -> str | None:
        """Why a connection to ``host`` (an IP address) is refused, or None when allowed."""
        addr = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self.allow):
            return None
        if addr.is_global and not addr.is_multicast:
            return None
        return f"{addr} is not a public address (fetch.allow_networks can allow it)"


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation also ends at the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """TCP connections bounded by the deadline; with a policy, to allowed peers only."""

    def __init__(self, policy: AddressPolicy | None) -> None:
        self._inner = httpcore.SyncBackend()
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._connect_any(host, port, timeout, local_address, socket_options)
        if self._policy is not None:
            peer = stream.get_extra_info("server_addr")
            reason = self._policy.refusal(str(peer[0]))
            if reason is not None:
                stream.close()
                raise AddressRefused(f"{host}:{port}: {reason}")
        return _DeadlineStream(stream)

    def _connect_any(
        self,
        host: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.NetworkStream:
        """The first of the host's addresses that accepts, every step inside the deadline."""
        addresses = resolve(host, port, _bounded(timeout, httpcore.ConnectTimeout))
        last: Exception | None = None
        for address in addresses:
            bounded = _bounded(timeout, httpcore.ConnectTimeout)
            try:
                return self._inner.connect_tcp(
                    address, port, bounded, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # getaddrinfo never answers with an empty list
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _httpx_error(exc: Exception) -> Exception:
    """httpcore's exception as the httpx one of the same name (they mirror each other)."""
    for cls in type(exc).__mro__:
        if cls.__module__.startswith("httpcore") and isinstance(
            getattr(httpx, cls.__name__, None), type
        ):
            return getattr(httpx, cls.__name__)(str(exc))
    return exc


class _Body(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class GuardedTransport(httpx.BaseTransport):
    """HTTP/1.1 over two connection pools: trusted requests, and the rest under the policy.

    A request is trusted only when it carries the ``TRUSTED`` extension set to True.
    """

    def __init__(self, policy: AddressPolicy, limits: httpx.Limits) -> None:
        context = httpx.create_ssl_context()

        def pool(guard: AddressPolicy | None) -> httpcore.ConnectionPool:
            return httpcore.ConnectionPool(
                ssl_context=context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=_GuardedBackend(guard),
            )

        self._trusted = pool(None)
        self._untrusted = pool(policy)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        pool = self._trusted if request.extensions.get(TRUSTED) is True else self._untrusted
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions={"timeout": request.extensions.get("timeout", {})},
        )
        try:
            resp = pool.handle_request(core)
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        assert isinstance(resp.stream, Iterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_Body(resp.stream),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        self._trusted.close()
        self._untrusted.close()

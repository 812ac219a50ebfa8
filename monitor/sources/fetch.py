"""Fetching bytes from file:// and http(s):// locations, with limits that protect the daemon.

A page or feed larger than ``max_bytes`` is cut off and reported as an error, never read whole
into memory; timeouts and redirects are bounded; errors become ``FetchError`` with a reason a
person can act on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
from pydantic import BaseModel

USER_AGENT = "monitor/0.1 (conflict news monitor; +https://example.invalid/monitor)"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class FetchError(RuntimeError):
    """The location could not be read; ``reason`` says why in one line."""


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
    max_redirects: int = 5


def fetch(
    url: str,
    *,
    limits: FetchLimits | None = None,
    client: httpx.Client | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    limits = limits or FetchLimits()
    scheme = urlparse(url).scheme
    if scheme == "file":
        return _fetch_file(url, limits)
    if scheme in ("http", "https"):
        return _fetch_http(url, limits, client, etag, last_modified)
    raise FetchError(f"unsupported URL scheme {scheme!r} in {url}")


def file_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def _fetch_file(url: str, limits: FetchLimits) -> Fetched:
    path = file_path(url)
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise FetchError(f"{path}: {size} bytes exceeds the {limits.max_bytes}-byte limit")
        body = path.read_bytes()
    except OSError as exc:
        raise FetchError(f"{path}: {exc.strerror or exc}") from exc
    return Fetched(url=url, final_url=url, body=body)


def new_client(limits: FetchLimits | None = None) -> httpx.Client:
    limits = limits or FetchLimits()
    timeout = httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout)
    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
    )


def _fetch_http(
    url: str,
    limits: FetchLimits,
    client: httpx.Client | None,
    etag: str | None,
    last_modified: str | None,
) -> Fetched:
    own = client is None
    client = client or new_client(limits)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with client.stream("GET", url, headers=headers) as resp:
            if resp.status_code == 304:
                return Fetched(url=url, final_url=str(resp.url), status=304, body=b"", not_modified=True)
            if resp.status_code >= 400:
                raise FetchError(f"{url}: HTTP {resp.status_code}")
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
    except httpx.TooManyRedirects as exc:
        raise FetchError(f"{url}: more than {limits.max_redirects} redirects") from exc
    except httpx.TimeoutException as exc:
        raise FetchError(f"{url}: timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            client.close()


def _read_capped(resp: httpx.Response, max_bytes: int, url: str) -> bytes:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"{url}: {declared} bytes exceeds the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"{url}: body exceeds the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)

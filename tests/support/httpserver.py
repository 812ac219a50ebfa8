"""A real HTTP server on 127.0.0.1 for tests: static files, scripted routes, a request log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from monitor.sources.fetch import FetchLimits

# Links and redirects may reach the test server's address (127.0.0.1) and no other private one.
LOCAL = ("127.0.0.1/32",)
LOCAL_LIMITS = FetchLimits(allow_networks=LOCAL)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Route = Callable[[Request], Reply]


class TestServer:
    """Serves ``root`` (if given) and any route added with ``route``; records every request.

    ``host`` is a loopback address: 127.0.0.2 stands in for an internal host in SSRF tests.
    """

    __test__ = False

    def __init__(self, root: Path | None = None, host: str = "127.0.0.1") -> None:
        self.root = root
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                req = Request(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                server.requests.append(req)
                reply = server.dispatch(req)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.send_length and "content-length" not in {k.lower() for k in reply.headers}:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_HEAD = _handle

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, handler: Route | Reply) -> None:
        self.routes[path] = handler if callable(handler) else (lambda _req, r=handler: r)

    def dispatch(self, req: Request) -> Reply:
        path = req.path.split("?", 1)[0]
        if path in self.routes:
            return self.routes[path](req)
        if self.root is not None:
            target = (self.root / path.lstrip("/")).resolve()
            if target.is_file() and self.root.resolve() in target.parents:
                ctype = (
                    "text/html; charset=utf-8" if target.suffix == ".html" else "application/xml"
                )
                return Reply(200, target.read_bytes(), {"Content-Type": ctype})
        return Reply(404, b"not found")

    def __enter__(self) -> TestServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

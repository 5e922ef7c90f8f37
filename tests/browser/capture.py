"""A plain-HTTP loopback endpoint standing in for the app's redirect URI (test-only, stdlib server).

``/callback`` records what it receives (query string, form body) and answers 200; any other path serves
the HTML put in ``pages`` (a page on a foreign origin), or 404.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CAPTURED_PAGE = "<!DOCTYPE html><title>captured</title><p id='captured'>captured</p>"


@dataclass(frozen=True)
class Capture:
    """One request the redirect target received."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]


@dataclass
class CaptureServer:
    port: int = 0
    received: list[Capture] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The redirect URI registered for Graph Functions."""
        return f"{self.origin}/callback"

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.pages.clear()

    def only(self) -> Capture:
        """The single request received so far."""
        with self.lock:
            assert len(self.received) == 1, self.received
            return self.received[0]

    def answer(self, method: str, target: str, body: str) -> tuple[int, str]:
        parts = urlsplit(target)
        with self.lock:
            if parts.path == "/callback":
                self.received.append(Capture(method, parts.path, _flat(parts.query), _flat(body)))
                return 200, CAPTURED_PAGE
            if parts.path in self.pages:
                return 200, self.pages[parts.path]
        return 404, "<!DOCTYPE html><title>not found</title>"


def _flat(raw: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


@contextmanager
def capture_server() -> Iterator[CaptureServer]:
    """Serve on a free loopback port (the OS picks it) in a background thread."""
    capture = CaptureServer()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            status, page = capture.answer(self.command, self.path, body)
            payload = page.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    capture.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="capture-server", daemon=True)
    thread.start()
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

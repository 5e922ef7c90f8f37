"""A tiny HTTPS webhook receiver on loopback for the change-notification tests.

It serves with the local tenant's own server certificate (``tls/server.pem``, signed by the local CA, named
127.0.0.1), so the tenant's delivery client trusts it exactly as it would an app whose certificate the local
CA signed. It records every request and answers through a replaceable ``behaviour``: by default the
validation handshake (200, text/plain, the decoded token) and 202 for notifications.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def validation_token(self) -> str | None:
        values = self.query.get("validationToken")
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 202
    content_type: str = "text/plain"
    body: bytes = b""
    delay: float = 0.0


def default_behaviour(req: Received) -> Answer:
    token = req.validation_token
    if token is not None:
        return Answer(200, "text/plain; charset=utf-8", token.encode())
    return Answer(202)


@dataclass
class Receiver:
    base: str
    received: list[Received] = field(default_factory=list)
    behaviour: Callable[[Received], Answer] = default_behaviour
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/api/graph/notifications", query: str = "") -> str:
        return f"{self.base}{path}" + (f"?{query}" if query else "")

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
        self.behaviour = default_behaviour

    def notifications(self, path: str | None = None) -> list[Received]:
        """The non-validation POSTs (optionally to one path)."""
        with self.lock:
            return [
                r for r in self.received if r.validation_token is None and (path is None or r.path == path)
            ]

    def items(self, path: str | None = None) -> list[dict[str, Any]]:
        return [item for r in self.notifications(path) for item in r.json()["value"]]

    def validations(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.validation_token is not None]


@contextmanager
def https_receiver(state_dir: Path, cert: Path | None = None, key: Path | None = None) -> Iterator[Receiver]:
    """Serve a :class:`Receiver` on 127.0.0.1 (a free port) until the block ends; with the tenant's server
    certificate unless ``cert``/``key`` name another."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            req = Received(
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                {k.lower(): v for k, v in self.headers.items()},
                body,
                time.monotonic(),
            )
            receiver = holder[0]
            with receiver.lock:
                receiver.received.append(req)
            answer = receiver.behaviour(req)
            if answer.delay:
                time.sleep(answer.delay)
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:  # the tenant gave up waiting (its deadline passed) and closed the connection
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(
        str(cert or state_dir / "tls" / "server.pem"), str(key or state_dir / "tls" / "server.key")
    )
    server.socket = context.wrap_socket(server.socket, server_side=True)
    holder.append(Receiver(f"https://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()

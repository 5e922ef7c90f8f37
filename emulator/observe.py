"""Observation and fault injection: the request log, counters, and injected failures.

One ASGI middleware wraps every service. It records each request (service, method, route, status,
client id, duration) with secret-bearing query parameters redacted, and applies fault rules set
through the control API before the service sees the request. The client id of both the log and the
fault rules is the one the service itself sees (:mod:`emulator.request_client`): at the token endpoint
that is in the form body, which the middleware reads in full and replays to the service unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.errors import fault_response
from emulator.request_client import ClientResolver
from emulator.tenants.scope import request_tenant

#: Test-only header naming the client when a test wants to attribute a request by hand (kept for
#: compatibility; a rule's ``clientId`` matches it as well as the client the service sees).
CLIENT_ID_HEADER = "x-emulator-client-id"

SENSITIVE_PARAMS = {
    "client_secret",
    "code",
    "refresh_token",
    "client_assertion",
    "password",
    "assertion",
    "code_verifier",
    "id_token",
    "access_token",
    "id_token_hint",
}


def redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() in SENSITIVE_PARAMS else v) for k, v in pairs])


@dataclass
class FaultRule:
    """Fail requests whose path matches ``path`` (a regex, searched) on ``service`` (or any)."""

    path: str
    status: int = 503
    service: str | None = None
    method: str | None = None
    rate: float = 1.0  # probability in [0, 1]
    retry_after: int | None = None
    latency_ms: int = 0  # added before the request proceeds (or fails)
    drop: bool = False  # drop the connection mid-response instead of answering
    times: int | None = None  # how many more times it may fire; None = unlimited
    client_id: str | None = None
    #: Only requests for this organisation: the tenant id of a login path (``/{tid}/…``) or the bearer
    #: token's ``tid`` (Graph, SharePoint); see emulator/docs/multi-tenant.md.
    tenant_id: str | None = None
    id: int = 0
    fired: int = 0
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(
        self,
        service: str,
        method: str,
        path: str,
        client_ids: tuple[str | None, ...],
        tenant: str | None = None,
    ) -> bool:
        """``client_ids``: the request's client as the service sees it, then the test header's value;
        client ids (GUIDs) compare case-insensitively."""
        if self._regex is None:
            self._regex = re.compile(self.path)
        return (
            (self.service is None or self.service == service)
            and (self.method is None or self.method.upper() == method)
            and (
                self.client_id is None
                or self.client_id.lower() in {c.lower() for c in client_ids if c is not None}
            )
            and (self.tenant_id is None or self.tenant_id.lower() == (tenant or "").lower())
            and (self.times is None or self.times > 0)
            and self._regex.search(path) is not None
        )

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_regex", None)
        return data


class Observatory:
    """The request log (bounded), per-endpoint and per-client counters, and the fault rules."""

    def __init__(self, max_entries: int = 20_000, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self.by_endpoint: Counter[str] = Counter()
        self.by_client: Counter[str] = Counter()
        self.faults: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._rng = random.Random(seed)

    def add_fault(self, rule: FaultRule) -> FaultRule:
        rule.id = next(self._ids)
        re.compile(rule.path)  # fail early on a bad pattern
        with self._lock:
            self.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def pick_fault(
        self,
        service: str,
        method: str,
        path: str,
        client_ids: tuple[str | None, ...] = (),
        tenant: str | None = None,
    ) -> FaultRule | None:
        with self._lock:
            for rule in self.faults:
                if rule.matches(service, method, path, client_ids, tenant) and self._rng.random() < rule.rate:
                    rule.fired += 1
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def record(self, entry: dict[str, Any]) -> None:
        entry["seq"] = next(self._seq)
        with self._lock:
            self.entries.append(entry)
            self.by_endpoint[f"{entry['service']} {entry['method']} {entry['route']}"] += 1
            if entry.get("client_id"):
                self.by_client[str(entry["client_id"])] += 1

    def reset(self) -> None:
        with self._lock:
            self.entries.clear()
            self.by_endpoint.clear()
            self.by_client.clear()
            self.faults.clear()

    def snapshot(self, since: int = 0, service: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(e)
                for e in self.entries
                if e["seq"] > since and (service is None or e["service"] == service)
            ]


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """Every ``http.request`` message of a request (until ``more_body`` is false, or a disconnect),
    returned as the joined body and the messages themselves, for :func:`replaying`."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return body, messages


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` first, then defers to the real one (disconnects)."""
    pending = deque(messages)

    async def replay() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replay


class ObserveMiddleware:
    """Records every request and applies fault rules. ``service`` names the origin it wraps;
    ``resolver`` finds the request's client as that service sees it (none: the test header only)."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        observatory: Observatory,
        control_prefix: str,
        resolver: ClientResolver | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.obs = observatory
        self.control_prefix = control_prefix
        self.resolver = resolver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.control_prefix):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        method, path = scope["method"], scope["path"]
        status_holder: dict[str, int] = {"status": 0}
        state: dict[str, Any] = scope.setdefault("state", {})
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = scope.get("query_string", b"").decode("latin-1")
        client_id: str | None = None
        if self.resolver is not None:
            body = b""
            if self.resolver.needs_body(method, headers):
                body, messages = await read_body(receive)
                receive = replaying(messages, receive)
            client_id = self.resolver.resolve(method, headers, query, body)
        tenant = request_tenant(self.service, path, headers.get("authorization"))
        fault = self.obs.pick_fault(
            self.service, method, path, (client_id, headers.get(CLIENT_ID_HEADER)), tenant
        )

        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            route = scope.get("route")
            self.obs.record(
                {
                    "time": time.time(),
                    "service": self.service,
                    "method": method,
                    "path": path,
                    "query": redact_query(query),
                    "route": getattr(route, "path", None) or state.get("route") or path,
                    "status": status_holder["status"],
                    "client_id": client_id or state.get("client_id"),
                    "tenant": tenant,
                    "grant_type": state.get("grant_type"),
                    "client_auth": state.get("client_auth"),
                    "fault": fault.id if fault is not None else None,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                }
            )

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Record before the last byte leaves: a client that reads the log right after its
                # response must find its own request there.
                record()
            await send(message)

        try:
            if fault is not None and fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if fault is not None and fault.drop:
                # Start a response that promises more bytes than it sends, then abort: the client sees
                # the connection drop mid-response (requests raises ChunkedEncodingError/ConnectionError).
                status_holder["status"] = 0
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-length", b"1000"), (b"content-type", b"application/json")],
                    }
                )
                record()
                await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
                raise ConnectionAbortedError("injected dropped connection")
            if fault is not None and fault.status:
                state["fault"] = fault.id
                await fault_response(self.service, fault.status, fault.retry_after)(
                    scope, receive, send_wrapper
                )
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            record()

"""Test doubles for the app's seams: HTTP transport, clock, token source, MSAL app, credential source.

They implement the small protocols in ``shared`` (Transport, TokenSource, ConfidentialClient,
CredentialSource); nothing here patches msal, azure or requests internals.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.core.http import TransportError
from shared.identity.credentials import ClientCredential


class Headers(dict[str, str]):
    """A case-insensitive header mapping (keys stored lower-case), like requests' CaseInsensitiveDict."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__({k.lower(): v for k, v in (items or {}).items()})

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclasses.dataclass
class FakeResponse:
    status_code: int = 200
    body: Any = None
    raw_text: str | None = None
    headers: Headers = dataclasses.field(default_factory=Headers)

    @property
    def text(self) -> str:
        return self.raw_text if self.raw_text is not None else json.dumps(self.body)

    def raise_for_status(self) -> None:  # MSAL calls it on discovery responses
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}")

    def json(self) -> Any:
        if self.raw_text is not None:
            return json.loads(self.raw_text)
        if self.body is None:
            raise ValueError("no JSON body")
        return self.body


def respond(
    status: int = 200, body: Any = None, headers: Mapping[str, str] | None = None, text: str | None = None
) -> FakeResponse:
    return FakeResponse(status_code=status, body=body, raw_text=text, headers=Headers(headers))


def graph_error(
    status: int,
    code: str,
    message: str = "error",
    request_id: str = "req-1",
    headers: Mapping[str, str] | None = None,
) -> FakeResponse:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": request_id}}}
    return respond(status, body, {"request-id": request_id, **(headers or {})})


@dataclasses.dataclass
class SentRequest:
    method: str
    url: str
    headers: Headers
    params: dict[str, str] | None
    data: Any
    timeout: float


Responder = FakeResponse | Exception | Callable[[SentRequest], "FakeResponse"]


class FakeTransport:
    """Records every request; answers from per-URL-prefix routes or a FIFO queue (first match wins)."""

    def __init__(self, responses: Iterable[Responder] = ()) -> None:
        self.requests: list[SentRequest] = []
        self._queue: list[Responder] = list(responses)
        self._routes: list[tuple[str, Responder]] = []
        self._lock = threading.Lock()

    def queue(self, *responses: Responder) -> None:
        self._queue.extend(responses)

    def route(self, url_prefix: str, responder: Responder) -> None:
        self._routes.append((url_prefix, responder))

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        timeout: float,
    ) -> FakeResponse:
        request = SentRequest(
            method, url, Headers(headers), dict(params) if params is not None else None, data, timeout
        )
        with self._lock:
            self.requests.append(request)
            responder: Responder | None = next((r for p, r in self._routes if url.startswith(p)), None)
            if responder is None:
                if not self._queue:
                    raise AssertionError(f"unexpected request {method} {url}")
                responder = self._queue.pop(0)
        if isinstance(responder, Exception):
            raise responder
        if isinstance(responder, FakeResponse):
            return responder
        return responder(request)


def connection_error(timeout: bool = False) -> TransportError:
    return TransportError("connection refused", timeout=timeout)


class FakeClock:
    """A manual monotonic clock; ``sleep`` advances it and records the waits."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeTokens:
    """TokenSource: hands out ``token-<generation>``; ``invalidate`` moves to the next generation."""

    def __init__(self) -> None:
        self.generation = 1
        self.scopes: list[str] = []
        self.invalidated: list[tuple[str, str | None]] = []

    def get_token(self, scope: str) -> str:
        self.scopes.append(scope)
        return f"token-{self.generation}"

    def invalidate(self, scope: str, token: str | None = None) -> None:
        self.invalidated.append((scope, token))
        self.generation += 1


class FakeConfidentialClient:
    """ConfidentialClient: accepts exactly the credential values in ``valid``; caches tokens per scope."""

    def __init__(
        self,
        credential: ClientCredential,
        *,
        valid: Callable[[], set[str]],
        delay: float = 0.0,
        counter: list[int] | None = None,
        lifetime: int = 3600,
    ) -> None:
        self.credential = credential
        self._valid = valid
        self._delay = delay
        self._cache: dict[str, str] = {}
        self._counter = counter if counter is not None else [0]
        self._lifetime = lifetime
        self.removed = 0

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        scope = scopes[0]
        if scope in self._cache:
            return {"access_token": self._cache[scope], "expires_in": self._lifetime, "token_source": "cache"}
        time.sleep(self._delay)  # widen the race window in single-flight tests
        if str(self.credential.msal_credential) not in self._valid():
            return {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x",
                "error_codes": [7000215],
            }
        self._counter[0] += 1
        token = f"at-{self._counter[0]}"
        self._cache[scope] = token
        return {"access_token": token, "expires_in": self._lifetime, "token_source": "identity_provider"}

    def remove_tokens_for_client(self) -> None:
        self.removed += 1
        self._cache.clear()


class FakeSecretStore:
    """CredentialSource over a mutable secret value; counts loads; can fail."""

    def __init__(self, value: str = "secret-v1", *, delay: float = 0.0) -> None:
        self.value = value
        self.loads = 0
        self.error: Exception | None = None
        self._delay = delay

    def load(self) -> ClientCredential:
        self.loads += 1
        time.sleep(self._delay)
        if self.error is not None:
            raise self.error
        return ClientCredential(
            kind="secret",
            msal_credential=self.value,
            fingerprint=f"fp:{self.value}",
            version=f"v-{self.loads}",
        )

"""devhost's CORS (devhost.cors) against an ASGI app that records what it ran: preflights are answered
without running the function, as Core Tools' ASP.NET Core middleware and the platform's CORS answer them."""

from __future__ import annotations

import pytest
from starlette.types import Receive, Scope, Send

from devhost.cors import CoreToolsCors
from tests.support.asgi import call

SPA = "http://localhost:7071"


class Function:
    """The function behind the middleware: counts its invocations."""

    def __init__(self) -> None:
        self.runs: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.runs.append(scope["method"])
        await send(
            {"type": "http.response.start", "status": 401, "headers": [(b"www-authenticate", b"Bearer")]}
        )
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
def function() -> Function:
    return Function()


def preflight(origin: str, headers: str | None = "authorization") -> dict[str, str]:
    sent = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    return sent


def test_a_preflight_of_an_allowed_origin_is_answered_without_the_function(function: Function) -> None:
    app = CoreToolsCors(function, origins=["https://spa.test", SPA])
    answer = call(app, "OPTIONS", "/api/me", headers=preflight(SPA))
    assert answer.status == 204 and answer.body == b"" and function.runs == []
    assert answer.headers["access-control-allow-origin"] == SPA
    assert answer.headers["access-control-allow-methods"] == "GET"
    assert answer.headers["access-control-allow-headers"] == "authorization"
    assert answer.headers["vary"] == "Origin" and "access-control-allow-credentials" not in answer.headers


def test_a_preflight_of_another_origin_gets_no_cors_headers(function: Function) -> None:
    app = CoreToolsCors(function, origins=[SPA])
    answer = call(app, "OPTIONS", "/api/me", headers=preflight("https://evil.test"))
    assert answer.status == 204 and function.runs == []
    assert not [name for name in answer.headers if name.startswith("access-control-")]


def test_requests_run_and_allowed_origins_can_read_the_answer(function: Function) -> None:
    app = CoreToolsCors(function, origins=[SPA.upper() + "/"])
    allowed = call(app, "GET", "/api/me", headers={"Origin": SPA, "Authorization": "Bearer x"})
    assert allowed.status == 401 and allowed.headers["access-control-allow-origin"] == SPA
    assert "Origin" in allowed.headers["vary"]
    other = call(app, "GET", "/api/me", headers={"Origin": "https://evil.test"})
    same_origin = call(app, "GET", "/api/me")
    assert "access-control-allow-origin" not in other.headers | same_origin.headers
    assert function.runs == ["GET", "GET", "GET"]  # CORS never stops a request: the browser does
    plain_options = call(app, "OPTIONS", "/api/me", headers={"Origin": SPA})  # not a preflight
    assert plain_options.status == 401 and function.runs[-1] == "OPTIONS"


def test_any_origin_and_credentials(function: Function) -> None:
    anyone = CoreToolsCors(function, origins=["*"])
    answer = call(anyone, "OPTIONS", "/api/me", headers=preflight("https://x.test", headers=None))
    assert answer.headers["access-control-allow-origin"] == "*" and "vary" not in answer.headers
    assert "access-control-allow-headers" not in answer.headers
    with_credentials = CoreToolsCors(function, origins=["*"], credentials=True)
    answer = call(with_credentials, "GET", "/api/me", headers={"Origin": "https://x.test"})
    assert answer.headers["access-control-allow-origin"] == "https://x.test"  # never * with credentials
    assert answer.headers["access-control-allow-credentials"] == "true"

"""Assertions the integration tests share: the documented error envelope, paging through the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.support.apphost import documented_error_codes

DOCUMENTED = documented_error_codes()


def call(
    host: DevHostProcess,
    path: str,
    token: str | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> requests.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return requests.get(host.url(path), params=params, headers=sent, timeout=timeout)


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the documented error envelope with ``status`` and ``code``; returns ``error``."""
    assert code in DOCUMENTED, f"{code} is not in docs/errors.md"
    assert DOCUMENTED[code] == status, f"docs/errors.md gives {code} status {DOCUMENTED[code]}"
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "requestId"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"].strip()
    assert error["requestId"] == response.headers["x-request-id"]
    lowered = error["message"].lower()
    assert "traceback" not in lowered and "bearer ey" not in lowered
    return dict(error)


def list_all(
    host: DevHostProcess, token: str, params: Mapping[str, str] | None = None, max_pages: int = 50
) -> tuple[list[dict[str, Any]], int]:
    """Every user through ``nextCursor`` (asserting each page is a 200); returns (users, pages)."""
    users: list[dict[str, Any]] = []
    response = call(host, "/api/users", token, params=params)
    pages = 0
    while True:
        assert response.status_code == 200, (response.status_code, response.text[:500])
        body = response.json()
        assert set(body) == {"value", "nextCursor"}
        users.extend(body["value"])
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            return users, pages
        assert pages < max_pages, "paging does not end"
        response = call(host, "/api/users", token, params={"cursor": cursor})


def wait_for_recovery(host: DevHostProcess, token: str, *, what: str, timeout: float = 30) -> list[int]:
    """Poll ``GET /api/users`` until it answers 200; every answer before that must be the documented 503
    ``credential_unavailable``. Returns the statuses seen, the final 200 included."""
    seen: list[int] = []

    def recovered() -> bool:
        response = call(host, "/api/users", token, {"top": "1"})
        seen.append(response.status_code)
        if response.status_code != 200:
            assert_error(response, 503, "credential_unavailable")
        return response.status_code == 200

    wait_until(recovered, timeout=timeout, what=what)
    return seen

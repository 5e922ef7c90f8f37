"""The tenant's clock (`/_emulator/clock`): it only moves forward, what it dates follows it, reset rewinds."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from tests.support.tenant import LocalTenant


def app_token(tenant: LocalTenant) -> str:
    reply = requests.post(
        f"{tenant.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.env["CALLER_CLIENT_ID"],
            "client_secret": tenant.env["CALLER_CLIENT_SECRET"],
            "scope": f"{tenant.env['GRAPH_ENDPOINT']}/.default",
        },
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def claims_of(token: str) -> dict[str, int]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_advance_dates_tokens_and_reset_rewinds(fresh: LocalTenant) -> None:
    users = f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users?$top=1"
    assert fresh.control("GET", "/clock")["offsetSeconds"] == 0
    first = app_token(fresh)
    assert abs(claims_of(first)["iat"] - time.time()) < 60
    assert requests.get(users, headers={"Authorization": f"Bearer {first}"}, timeout=30).status_code != 401

    assert fresh.advance_clock(7200) == 7200
    second = app_token(fresh)
    assert claims_of(second)["iat"] - claims_of(first)["iat"] >= 7200
    reading = fresh.control("GET", "/clock")
    assert reading["offsetSeconds"] == 7200 and reading["unixTime"] - time.time() > 7190
    # Two hours later on the tenant's clock the first token (at most 90 minutes) has expired; the new one
    # has not.
    expired = requests.get(users, headers={"Authorization": f"Bearer {first}"}, timeout=30)
    assert expired.status_code == 401, expired.text
    assert requests.get(users, headers={"Authorization": f"Bearer {second}"}, timeout=30).status_code != 401

    fresh.reset()
    assert fresh.control("GET", "/clock")["offsetSeconds"] == 0


@pytest.mark.parametrize(
    "body", [{"advanceSeconds": -1}, {"advanceSeconds": "5"}, {}, {"advanceSeconds": True}]
)
def test_the_clock_never_moves_back_and_refuses_nonsense(fresh: LocalTenant, body: dict[str, object]) -> None:
    fresh.control("POST", "/clock", body, expect=400)
    assert fresh.control("GET", "/clock")["offsetSeconds"] == 0


def test_delete_returns_to_real_time(fresh: LocalTenant) -> None:
    fresh.advance_clock(10)
    assert fresh.control("DELETE", "/clock")["offsetSeconds"] == 0


def test_a_frozen_clock_moves_only_when_advanced(fresh: LocalTenant) -> None:
    fresh.freeze_clock()
    first = fresh.control("GET", "/clock")
    time.sleep(1.1)  # real time passes; the tenant's does not
    assert fresh.control("GET", "/clock")["unixTime"] == first["unixTime"] and first["frozen"] is True
    fresh.advance_clock(30)
    assert fresh.control("GET", "/clock")["unixTime"] == first["unixTime"] + 30
    thawed = fresh.control("POST", "/clock", {"frozen": False})
    assert thawed["frozen"] is False and thawed["unixTime"] >= first["unixTime"] + 30 + 1.1  # never back
    fresh.freeze_clock()
    fresh.reset()
    assert fresh.control("GET", "/clock")["frozen"] is False

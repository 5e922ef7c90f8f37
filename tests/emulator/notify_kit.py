"""Helpers of the change-notification tests: subscribe, flush, read the delivery log."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import requests

from tests.emulator.graph_kit import bearer, mint
from tests.emulator.webhook_receiver import Receiver
from tests.support.tenant import LocalTenant

#: One pooled connection to the tenant's Graph origin (a new TLS connection costs ~0.2 s on a loaded machine).
HTTP = requests.Session()
_TOKENS: dict[tuple[str, tuple[str, ...], str | None], str] = {}
_MEMBERS: dict[str, str] = {}


def graph(tenant: LocalTenant, path: str) -> str:
    return f"{tenant.env['GRAPH_ENDPOINT']}/v1.0{path}"


def token_for(tenant: LocalTenant, *roles: str, appid: str | None = None) -> str:
    """A cached app-only Graph token with ``roles`` (minting reads the signing key from disk)."""
    key = (str(tenant.state_dir), roles, appid)
    if key not in _TOKENS:
        _TOKENS[key] = mint(tenant, roles=roles, appid=appid)
    return _TOKENS[key]


def app_token(tenant: LocalTenant, *roles: str) -> str:
    return token_for(tenant, *(roles or ("Mail.Read", "User.Read.All")))


def tenant_now(tenant: LocalTenant) -> dt.datetime:
    return dt.datetime.fromtimestamp(tenant.control("GET", "/clock")["unixTime"], dt.UTC)


def expiry(tenant: LocalTenant, minutes: float) -> str:
    return (tenant_now(tenant) + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def member_id(tenant: LocalTenant) -> str:
    if str(tenant.state_dir) not in _MEMBERS:
        upn = quote(tenant.env["DEMO_USER_USERNAME"])
        reply = HTTP.get(
            graph(tenant, f"/users/{upn}?$select=id"), headers=bearer(app_token(tenant)), timeout=30
        )
        assert reply.status_code == 200, reply.text
        _MEMBERS[str(tenant.state_dir)] = str(reply.json()["id"])
    return _MEMBERS[str(tenant.state_dir)]


def subscribe(
    tenant: LocalTenant,
    receiver: Receiver,
    token: str | None = None,
    expect: int = 201,
    **fields: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "changeType": "created,updated",
        "notificationUrl": receiver.url(),
        "resource": f"users/{member_id(tenant)}/mailFolders('inbox')/messages",
        "expirationDateTime": expiry(tenant, 60),
        "clientState": "secret-client-state",
    }
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    reply = HTTP.post(
        graph(tenant, "/subscriptions"), json=body, headers=bearer(token or app_token(tenant)), timeout=30
    )
    assert reply.status_code == expect, reply.text
    return dict(reply.json()) if reply.content else {}


def add_message(tenant: LocalTenant, user: str, **fields: Any) -> str:
    body = {"subject": "Quarterly numbers", "body": "<p>hi</p>", **fields}
    return str(tenant.control("POST", f"/users/{quote(user)}/messages", body, expect=201)["id"])


def flush(tenant: LocalTenant) -> list[dict[str, Any]]:
    return list(tenant.control("POST", "/graph/notifications/flush")["value"])


def events(entries: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["event"] == name]


def log_seq(tenant: LocalTenant) -> int:
    return int(tenant.control("GET", "/graph/notifications/log?since=999999999")["last"])


def log_since(tenant: LocalTenant, seq: int) -> list[dict[str, Any]]:
    return list(tenant.control("GET", f"/graph/notifications/log?since={seq}")["value"])

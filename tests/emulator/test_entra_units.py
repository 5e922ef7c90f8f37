"""In-process checks of the Entra building blocks: scope parsing, audiences, consent gaps, store sweeping."""

from __future__ import annotations

import time

import pytest

from emulator.config import GRAPH_APP_ID, EmulatorConfig
from emulator.directory.seed import build_directory
from emulator.entra.grants import UNCONFIGURED, missing_consent
from emulator.entra.scopes import ScopeError, admin_only, parse
from emulator.entra.store import SESSION_MAX_AGE, AuthCode, EntraStore, Session

CONFIG = EmulatorConfig(port=9443, users=10)
DIRECTORY, IDS = build_directory(CONFIG)


def test_scope_parsing_and_rendering() -> None:
    req = parse(DIRECTORY, "openid user.read OFFLINE_ACCESS https://graph.microsoft.com/mail.read profile")
    assert req.oidc == ["openid", "offline_access", "profile"]
    graph = req.resources[0]
    assert graph.app.app_id == GRAPH_APP_ID and graph.names == ["User.Read", "Mail.Read"]
    assert (
        graph.identifier is None
        and graph.audience == GRAPH_APP_ID
        and graph.render("User.Read") == "User.Read"
    )
    sp = parse(DIRECTORY, f"{CONFIG.sharepoint_origin}/AllSites.Read").resources[0]
    assert (
        sp.audience == CONFIG.sharepoint_origin
        and sp.render("AllSites.Read") == f"{CONFIG.sharepoint_origin}/AllSites.Read"
    )
    api = parse(DIRECTORY, f"api://{IDS.app.app_id}/.default").resources[0]
    assert api.default and api.audience == IDS.app.app_id  # v2 resource: aud is the client id
    cloud = parse(DIRECTORY, "https://graph.microsoft.com//.default").resources[0]
    assert cloud.audience == "https://graph.microsoft.com"


@pytest.mark.parametrize(
    "raw,kind",
    [
        ("https://graph.microsoft.com", "invalid"),
        ("https://nothing.example/.default", "unknown_resource"),
        ("User.Fly", "unknown_scope"),
        ("https://graph.microsoft.com/.default User.Read", "default_mixed"),
        ("User.Read https://graph.microsoft.com/.default", "default_mixed"),
    ],
)
def test_scope_errors(raw: str, kind: str) -> None:
    with pytest.raises(ScopeError) as info:
        parse(DIRECTORY, raw)
    assert info.value.kind == kind


def test_consent_gaps() -> None:
    member = IDS.member
    seeded = parse(DIRECTORY, "openid profile offline_access User.Read")
    assert missing_consent(DIRECTORY, IDS.app, seeded, member) == {}
    gap = missing_consent(DIRECTORY, IDS.app, parse(DIRECTORY, "User.Read Mail.Read User.Read.All"), member)
    assert gap == {GRAPH_APP_ID: {"Mail.Read", "User.Read.All"}} and admin_only(gap)
    unconfigured = missing_consent(
        DIRECTORY, IDS.caller, parse(DIRECTORY, "https://vault.azure.net/.default"), member
    )
    assert UNCONFIGURED in next(iter(unconfigured.values()))


def test_store_sweep() -> None:
    store = EntraStore()
    now = time.time()
    old = AuthCode("c", "r", "u", "s", None, None, None, "tenant", "sid", 0, now - 700, now - 100)
    fresh = AuthCode("c", "r", "u", "s", None, None, None, "tenant", "sid", 0, now, now + 600)
    store.codes.update({"old": old, "fresh": fresh})
    store.used_jti.update({"a:1": now - 1, "a:2": now + 100})
    store.sessions.update(
        {"s1": Session("s1", "u", 0, now - SESSION_MAX_AGE - 1), "s2": Session("s2", "u", 0, now)}
    )
    store.sweep(now)
    assert set(store.codes) == {"fresh"} and set(store.used_jti) == {"a:2"} and set(store.sessions) == {"s2"}

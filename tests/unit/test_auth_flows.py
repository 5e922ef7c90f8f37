"""FlowStore logic: flows sealed into the browser's cookie (nothing stored), bound to their state,
expiring, tamper-evident, never a vault read for the version a cookie names."""

from __future__ import annotations

import datetime
import secrets

import pytest

from shared.core.errors import AuthFlowMismatch, AuthFlowUnknown
from shared.signin.flows import FLOW_LIFETIME_SECONDS, MAX_COOKIE_CHARS, FlowStore
from shared.storage.tables import EnsuredTable
from tests.unit.test_session_keys import Clock, FakeKeys, ring
from tests.unit.test_sessions import FakeService, FakeTable, Wall


def flows(table: FakeTable, wall: Wall, keys: FakeKeys | None = None) -> FlowStore:
    ensured = EnsuredTable(FakeService(table), "authflows")  # type: ignore[arg-type]
    return FlowStore(ensured, ring(keys or FakeKeys(), Clock()), now=wall)


def msal_flow() -> dict[str, object]:
    return {
        "state": secrets.token_urlsafe(16),
        "nonce": "n-" + secrets.token_hex(8),
        "code_verifier": "VERIFIER-" + secrets.token_urlsafe(32),
        "auth_uri": "https://login.example/authorize?" + "x" * 600,
    }


def test_put_stores_nothing_and_the_cookie_holds_no_secret_in_clear() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    cookie = store.put(flow, extra={"next": "/users?page=2"})
    assert table.rows == {} and table.writes == 0  # anonymous traffic costs storage nothing
    assert len(cookie) < 600  # the authorize URL is not kept
    for secret in (str(flow["state"]), str(flow["code_verifier"]), str(flow["nonce"]), "/users"):
        assert secret not in cookie
    taken = store.take(str(flow["state"]), cookie)
    assert taken.flow == {k: v for k, v in flow.items() if k != "auth_uri"}
    assert taken.extra == {"next": "/users?page=2"} and "VERIFIER" not in repr(taken)


def test_another_browsers_state_or_a_modified_or_missing_cookie_is_a_mismatch() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    cookie = store.put(flow)
    other = store.put(msal_flow())
    version, _, body = cookie.partition(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for wrong in (None, "", other, f"{version}.{flipped}", "x" * 500, f"{version}.{'A' * 5000}"):
        with pytest.raises(AuthFlowMismatch):
            store.take(str(flow["state"]), wrong)
    assert store.take(str(flow["state"]), cookie).flow["state"] == flow["state"]


def test_malformed_and_expired_states() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    cookie = store.put(flow)
    for state in (None, "", "short", "has space in it", "x" * 300):
        with pytest.raises(AuthFlowUnknown):
            store.take(state, cookie)
    wall.now += datetime.timedelta(seconds=FLOW_LIFETIME_SECONDS)
    with pytest.raises(AuthFlowUnknown):
        store.take(str(flow["state"]), cookie)
    with pytest.raises(ValueError, match="state"):
        store.put({"nonce": "no state"})


def test_an_invented_key_version_costs_the_vault_nothing() -> None:
    table, wall, keys = FakeTable(), Wall(), FakeKeys()
    store = flows(table, wall, keys)
    flow = msal_flow()
    cookie = store.put(flow)
    reads = len(keys.reads)
    body = cookie.partition(".")[2]
    for _ in range(20):
        with pytest.raises(AuthFlowMismatch):
            store.take(str(flow["state"]), f"{secrets.token_hex(16)}.{body}")
    assert len(keys.reads) == reads


def test_a_next_too_long_for_a_cookie_returns_home() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    cookie = store.put(flow, extra={"next": "/users?search=" + secrets.token_urlsafe(3000)})
    assert len(cookie) <= MAX_COOKIE_CHARS
    assert store.take(str(flow["state"]), cookie).extra["next"] == "/"
